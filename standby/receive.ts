// The standby's receiver (`standby receive`), the forced command of the key
// writers log in with: every write into the standby passes here. It reads
// what the client asked for (receive-request.ts), records itself, takes the
// shared lock, THEN reads the fencing epoch and refuses a writer of an older
// one; otherwise it runs the real rsync (or sync -f) with the lock held for
// the whole transfer and exits with its exit code. rsync gets the lock's
// descriptor too, so a writer outliving this process still holds the lock.
// A transfer that asked for it (STANDBY_FLUSH=1) is flushed before the
// receiver exits, still under the lock, and FLUSHED_LINE says so on stderr.
// After `mkdir -p` it names the folders that hold nothing; it runs rsync
// --inplace only into one (a cut transfer then tears nothing it held).
// Output: stdout belongs to rsync's protocol; this file writes nothing there.
import { spawn } from 'node:child_process';
import { lstatSync, mkdirSync, opendirSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { missingBinary, StandbyError } from '../core/errors.ts';
import { conflictsParent, emptyFoldersLine, FLUSHED_LINE, RECEIVER_FLUSHES, revokedHostMessage, staleEpochMessage, type AuthorizeReport, type FenceReport } from '../protocol/receiver.ts';
import { ensureStateDir, readEpoch } from './epoch-store.ts';
import { FileLock } from './file-lock.ts';
import { parseRequest, realPath, type ReceiveRequest } from './receive-request.ts';
import { processStart, recordReceiver, type ReceiverRecord } from './receiver-registry.ts';
import { liftRevoked, readRevoked } from './revoked-hosts.ts';
import { fenceAtEpoch } from './fence.ts';
import { authorizeHostKey, removeHostKeys } from './writer-keys.ts';

export interface ReceiveOptions {
  /** the sync roots writes may go into */
  roots: readonly string[];
  stateDir: string;
  /** what the ssh client asked for (SSH_ORIGINAL_COMMAND) */
  command: string | undefined;
  /** accept `standby receive --fence <n>` from the client (a proxy's key only) */
  allowFence: boolean;
  lockWaitMs: number;
  /** default wait of a fence asked for over ssh */
  fenceWaitMs: number;
  /** where a fence asked for over ssh prints its result line */
  out: (line: string) => void;
  /** the host this writer key belongs to (its forced command's --host): refused once revoked */
  host?: string;
  /** the proxy's key: the authorized_keys file it manages writer entries in */
  authorizedKeys?: string;
  /** the standby program as sshd should run it in a writer entry (default: $STANDBY_COMMAND, set by bin/standby) */
  program?: string;
  /**
   * this key writes a fenced GPU's unsent changes into a conflicts folder (its one root, beside the
   * workspace): no epoch check, no lock (it never touches the workspace), nothing deleted
   */
  conflictsOnly?: boolean;
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
}

/** Runs one receiver to its end; resolves with the exit code. Refusals throw StandbyError. */
export async function receive(options: ReceiveOptions): Promise<number> {
  if (options.roots.length === 0 && !options.allowFence) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'standby receive: no --root given: name the folders writes may go into, e.g. --root /standby/workspace', {});
  }
  const request = parseRequest(options.command, {
    roots: options.roots.map(realPath),
    cwd: process.cwd(),
    home: process.env['HOME'] ?? '/',
    allowFence: options.allowFence,
    stateDir: options.stateDir,
    conflictsOnly: options.conflictsOnly === true,
  });
  if (request.kind === 'fence' || request.kind === 'revoke') {
    const epoch = request.kind === 'fence' ? request.epoch : 'current';
    const report: FenceReport = await fenceAtEpoch(options.stateDir, epoch, { waitMs: request.waitMs ?? options.fenceWaitMs, revoke: request.revoke });
    // the list above already refuses them; the lines go too, where this key manages the file
    if (options.authorizedKeys && request.revoke.length) report.keysRemoved = request.revoke.reduce((n, id) => n + removeHostKeys(options.authorizedKeys!, id), 0);
    options.out(JSON.stringify(report));
    return 0;
  }
  if (request.kind === 'authorize') {
    if (!options.authorizedKeys || options.roots.length === 0) {
      throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', "this key cannot authorize writers: its forced command lacks --authorized-keys FILE and --root DIR (install the standby with `standby install standby --proxy URL`, which writes them)", {});
    }
    const program = options.program ?? process.env['STANDBY_COMMAND'] ?? 'standby';
    if (request.conflicts !== undefined) {
      // a fenced host's key, for its unsent changes: a folder of their own beside the workspace, never in it;
      // the host stays revoked for the workspace (its line goes with the proxy's next --revoke)
      const dir = join(conflictsParent(options.roots[0]!), request.conflicts);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const { line, replaced } = authorizeHostKey(options.authorizedKeys, request.host, request.key, { program, roots: [dir], stateDir: options.stateDir, conflictsOnly: true });
      options.out(JSON.stringify({ authorized: request.host, replaced, lifted: false, line, roots: [dir] } satisfies AuthorizeReport));
      return 0;
    }
    const { line, replaced } = authorizeHostKey(options.authorizedKeys, request.host, request.key, { program, roots: options.roots, stateDir: options.stateDir });
    const lifted = liftRevoked(options.stateDir, request.host);
    const report: AuthorizeReport = { authorized: request.host, replaced, lifted, line, roots: [...options.roots] };
    options.out(JSON.stringify(report));
    return 0;
  }
  if (request.kind === 'version') return runVersion();
  return runWriter(request, options);
}

/** `rsync --version` of the rsync writers get: the agent checks it can work with it before it syncs, and reads on stderr that this receiver flushes when asked. */
async function runVersion(): Promise<number> {
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn('rsync', ['--version'], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', (err) => {
      const e = err as NodeJS.ErrnoException;
      reject(e.code === 'ENOENT' ? missingBinary('rsync', 'rsync', 'the standby', err) : err);
    });
    child.once('exit', (c, signal) => resolve(exitCodeOf(c, signal)));
  });
  if (code === 0) process.stderr.write(`${RECEIVER_FLUSHES}\n`);
  return code;
}

/** Exit codes of a receiving rsync after which the writer's flush runs: done, or done but for files that vanished on the sender. */
const FLUSH_AFTER = new Set([0, 24]);

/** What a writer runs, by request kind, and the Debian package that brings it. */
const PROGRAMS = { rsync: 'rsync', sync: 'coreutils', mkdir: 'coreutils' } as const;

async function runWriter(request: Extract<ReceiveRequest, { kind: 'rsync' | 'sync' | 'mkdir' }>, options: ReceiveOptions): Promise<number> {
  ensureStateDir(options.stateDir);
  const lockPath = join(options.stateDir, 'lock');
  const lock = new FileLock(lockPath);
  const record: ReceiverRecord = { pid: process.pid, start: processStart(process.pid) ?? '', epoch: request.epoch, kind: request.kind, target: request.target, ...(options.host ? { host: options.host } : {}) };
  // recorded before the lock is taken: a fence that finds the lock held can find every holder
  const forget = recordReceiver(options.stateDir, record);
  let child: ReturnType<typeof spawn> | undefined;
  let stopped: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    stopped ??= signal;
    // the writer runs in its own process group (rsync forks): the signal goes to all of it
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    }
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  try {
    // a conflicts key writes beside the workspace, never in it: no fence concerns it (its line goes with --revoke)
    if (!options.conflictsOnly && !(await lock.acquire('shared', options.lockWaitMs))) {
      throw new StandbyError('STANDBY_ERR_LOCK_TIMEOUT', `the standby's write lock ${lockPath} stayed held exclusively for ${options.lockWaitMs} ms (a fence is running or stuck): nothing was written; retry, and if it persists look for a stuck "standby receive --fence" on the standby`, { lockPath });
    }
    if (stopped) return exitCodeOf(null, stopped);
    const { host } = options;
    const r = host === undefined || options.conflictsOnly ? undefined : readRevoked(options.stateDir)[host];
    if (host !== undefined && r) {
      throw new StandbyError('STANDBY_ERR_HOST_REVOKED', revokedHostMessage(host, r.at, r.epoch), { host });
    }
    const stored = readEpoch(options.stateDir);
    if (request.epoch < stored && !options.conflictsOnly) {
      throw new StandbyError('STANDBY_ERR_EPOCH_STALE', staleEpochMessage(request.epoch, stored), { epoch: request.epoch, standbyEpoch: stored });
    }
    if (request.kind === 'rsync' && request.inplace && !holdsNothing(request.target, { orIsMissing: true })) {
      // read under the lock, as rsync will write: a writer of an older epoch is refused above, none other runs
      throw new StandbyError('STANDBY_ERR_COMMAND_REFUSED', `refused --inplace into ${request.target}: it holds files, and a transfer cut off while writing one in place would leave it torn. --inplace is accepted only into a folder that holds nothing (use --delay-updates)`, { target: request.target });
    }
    const program = request.kind;
    const running = spawn(program, request.args, { stdio: ['inherit', 'inherit', 'inherit', lock.fd], detached: true });
    child = running;
    if (stopped && running.pid !== undefined) process.kill(-running.pid, stopped); // a signal came while it started
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      running.once('error', (err) => {
        const e = err as NodeJS.ErrnoException;
        reject(e.code === 'ENOENT' ? missingBinary(program, PROGRAMS[program], 'the standby', err) : err);
      });
      running.once('exit', (code, signal) => resolve({ code, signal }));
    });
    if (running.pid !== undefined) {
      recordReceiver(options.stateDir, { ...record, child: { pid: running.pid, start: processStart(running.pid) ?? '' } });
    }
    const { code, signal } = await exited;
    if (request.kind === 'rsync' && request.flush && code !== null && FLUSH_AFTER.has(code) && !stopped) {
      // sync's failure is the writer's to see: no FLUSHED_LINE, so it flushes in a session of its own and reads why
      if ((await runFlush(request.target, (c) => (child = c))) && !stopped) process.stderr.write(`${FLUSHED_LINE}\n`);
    }
    if (request.kind === 'mkdir' && code === 0 && !stopped) {
      // read under the lock, as the writer's full pass that follows will write: no other writer of this epoch runs meanwhile
      const line = emptyFoldersLine(request.folders.flatMap((folder, place) => (holdsNothing(folder) ? [place] : [])));
      if (line) process.stderr.write(`${line}\n`);
    }
    return exitCodeOf(code, signal);
  } finally {
    for (const s of signals) process.off(s, onSignal);
    forget();
    lock.close();
  }
}

/**
 * Whether `folder` is a folder of its own (not a link to one) with no entry; `orIsMissing`: or nothing
 * is there at all. A look that fails otherwise says "no": nothing is then written in place.
 */
function holdsNothing(folder: string, { orIsMissing = false } = {}): boolean {
  try {
    const st = lstatSync(folder, { throwIfNoEntry: false });
    if (st === undefined) return orIsMissing;
    if (!st.isDirectory()) return false;
    const dir = opendirSync(folder);
    try {
      return dir.readSync() === null;
    } finally {
      dir.closeSync();
    }
  } catch {
    return false; // unreadable: taken as holding files, so nothing is written in place
  }
}

/** `sync -f <target>` in its own process group (a fence's signal reaches it as it reaches rsync); true when it exited 0. */
function runFlush(target: string, started: (child: ReturnType<typeof spawn>) => void): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('sync', ['-f', target], { stdio: ['ignore', 'ignore', 'inherit'], detached: true });
    started(child);
    child.once('error', (err) => {
      process.stderr.write(`standby receive: the flush after rsync could not start: ${err.message}\n`);
      resolve(false);
    });
    child.once('exit', (code) => resolve(code === 0));
  });
}
