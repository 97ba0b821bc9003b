// Lifting a freeze (agent/freeze.ts): continuing the processes it stopped and
// unfreezing its cgroup, in the agent, and in a guard process that outlives
// it. The agent's own timer and exit handler cannot run when it is SIGKILLed
// (the OOM killer, systemd's stop timeout) or stopped itself; its guard, a
// small process holding a pipe from the agent, thaws the host as soon as that
// pipe ends (the agent is gone) or the freeze's time is up, whichever comes
// first, or when it is told to stop (SIGTERM: systemd stopping the agent's
// unit signals every process in it). The agent ends its guard when it thaws
// by itself. What to thaw comes on the pipe, as one JSON line
// ({ms, cgroup, held: [[pid, start], ...]}: a tree may hold more pids than an
// argument may):
//   node agent/freeze-guard.ts
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A stopped process: its pid and its start time (clock ticks since boot), which tell a reused pid apart. */
export type Held = readonly [pid: number, start: string];

/** The start time of a process (field 22 of /proc/<pid>/stat), or undefined when it is gone. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Writes 0 to the cgroup's cgroup.freeze, and SIGCONTs the held processes that are still the ones stopped. */
export function thawStopped(held: Iterable<Held>, cgroup: string | undefined): { processes: number; cgroupThawed: boolean; errors: string[] } {
  const errors: string[] = [];
  let processes = 0;
  let cgroupThawed = cgroup === undefined;
  if (cgroup !== undefined) {
    try {
      writeFileSync(join(cgroup, 'cgroup.freeze'), '0');
      cgroupThawed = true;
    } catch (err) {
      errors.push(`cannot write 0 to ${join(cgroup, 'cgroup.freeze')} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): its processes stay frozen; write it by hand`);
    }
  }
  for (const [pid, start] of held) {
    // a pid reused since (another start time) is not ours to continue
    if (startTimeOf(pid) !== start) continue;
    try {
      process.kill(pid, 'SIGCONT');
      processes++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') errors.push(`cannot continue pid ${pid}: ${(err as Error).message}`);
    }
  }
  return { processes, cgroupThawed, errors };
}

export interface FreezeGuard {
  /** ends the guard without thawing (the agent thawed, or a newer guard took over) */
  stop(): void;
}

/** Time the guard gives the agent's own timer to lift the freeze first (and log it) before it does. */
const GUARD_SLACK_MS = 1_000;

/** Starts a guard that thaws `held` and `cgroup` when this process dies or after `ms`; `failed` hears of a guard that could not start. */
export function startFreezeGuard(held: Iterable<Held>, cgroup: string | undefined, ms: number, failed: (err: Error) => void): FreezeGuard {
  const spec = JSON.stringify({ ms: ms + GUARD_SLACK_MS, cgroup: cgroup ?? null, held: [...held] });
  // not through setpriv --pdeathsig: it must outlive the agent. stderr is the agent's (the journal under systemd)
  const child = spawn(process.execPath, [import.meta.filename], { stdio: ['pipe', 'ignore', 'inherit'] });
  child.on('error', failed); // a spawn that failed: the freeze goes on without its guard
  child.stdin!.on('error', () => undefined); // the guard gone first: nothing to tell it
  child.stdin!.write(`${spec}\n`);
  // neither the guard nor its pipe holds the agent's exit up
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  return {
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** The guard process: reads what to thaw, waits for the agent's pipe to end, the time to be up or a stop signal, thaws, exits. */
function guard(): void {
  let spec: { ms: number; cgroup: string | null; held: Held[] } | undefined;
  let line = '';
  let done = false;
  const thaw = (why: string): void => {
    if (done) return;
    done = true;
    if (!spec) process.exit(0); // the agent died before it said what: it froze nothing yet that it could not thaw itself
    const r = thawStopped(spec.held, spec.cgroup ?? undefined);
    process.stderr.write(`${JSON.stringify({ level: r.errors.length > 0 ? 50 : 40, msg: "freeze guard: thawed the host's user processes", why, processes: r.processes, ...(r.errors.length > 0 ? { errors: r.errors } : {}) })}\n`);
    process.exit(r.errors.length > 0 ? 1 : 0);
  };
  process.stdin.on('data', (d: Buffer) => {
    if (spec) return;
    line += d.toString();
    const end = line.indexOf('\n');
    if (end < 0) return;
    spec = JSON.parse(line.slice(0, end)) as { ms: number; cgroup: string | null; held: Held[] };
    const ms = spec.ms;
    setTimeout(() => thaw(`the freeze's maxMs (${ms} ms with slack) passed and the agent did not lift it (is it stopped?)`), ms);
  });
  process.stdin.on('end', () => thaw('the agent is gone (its pipe closed) while the host was frozen'));
  process.stdin.on('error', () => thaw('the agent is gone (its pipe failed) while the host was frozen'));
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => thaw(`${signal}: the agent's unit is stopping`));
}

if (import.meta.filename === process.argv[1]) guard();
