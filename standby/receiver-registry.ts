// The receivers alive on the standby: one small JSON file per receiver in
// <state-dir>/receivers/, written before it takes the lock and removed after
// its rsync has exited, so a fence can find (and, past its wait, kill) the
// writers of an older epoch that still hold the lock. A receiver that was
// killed leaves its file behind; it is recognised as gone by its process
// start time (a recycled pid does not match) and removed by the next reader.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ProcessRef {
  pid: number;
  /** the process's start time in clock ticks since boot (/proc/<pid>/stat field 22): tells a recycled pid apart */
  start: string;
}

export interface ReceiverRecord extends ProcessRef {
  /** the epoch the writer claimed */
  epoch: number;
  kind: 'rsync' | 'sync' | 'mkdir';
  target: string;
  /** the host its key's forced command pins (--host), when it does */
  host?: string;
  /** the rsync (or sync) it runs, leader of its own process group */
  child?: ProcessRef;
}

/** A process's start time, or undefined when no such process runs (a zombie has ended: it only waits to be reaped). */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name is in parentheses and may hold spaces; the fields after it start with the state (field 3)
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' || fields[0] === 'X' ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

function isAlive(ref: ProcessRef): boolean {
  return processStart(ref.pid) === ref.start;
}

function folder(stateDir: string): string {
  return join(stateDir, 'receivers');
}

/** Writes (or rewrites) this receiver's record; returns the function that removes it. */
export function recordReceiver(stateDir: string, record: ReceiverRecord): () => void {
  const dir = folder(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${record.pid}.json`);
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(record));
  renameSync(tmp, file); // a fence never reads half a record
  return () => rmSync(file, { force: true });
}

/** Records of receivers whose process or child still runs; files of the gone ones are removed. */
export function liveReceivers(stateDir: string): ReceiverRecord[] {
  const dir = folder(stateDir);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: ReceiverRecord[] = [];
  for (const name of names) {
    if (!name.endsWith('.json')) continue;
    const file = join(dir, name);
    let record: ReceiverRecord;
    try {
      record = JSON.parse(readFileSync(file, 'utf8')) as ReceiverRecord;
    } catch {
      continue; // removed while we read it
    }
    if (isAlive(record) || (record.child && isAlive(record.child))) out.push(record);
    else rmSync(file, { force: true });
  }
  return out;
}

/** Signals a receiver and its child's process group (rsync forks a second process). Returns whether anything was signalled. */
export function signalReceiver(record: ReceiverRecord, signal: NodeJS.Signals): boolean {
  let sent = false;
  const send = (target: number): void => {
    try {
      process.kill(target, signal);
      sent = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  };
  // only while the leader is the process we recorded: a group id is a pid, and pids are recycled
  if (record.child && isAlive(record.child)) send(-record.child.pid);
  if (isAlive(record)) send(record.pid);
  return sent;
}
