// Stops and continues the host's user processes when the proxy asks (a
// switch back's freeze: nothing writes during the final pass). Two ways, as
// agent.json's `freeze` says, both usable together:
//  - cgroup: a cgroup v2 folder's cgroup.freeze (the kernel stops the whole
//    unit at once, forks included: the preferred way);
//  - pidFiles: SIGSTOP / SIGCONT of the process tree of each pid file.
// Never the agent itself or what it runs (rsync, ssh: the final pass), never
// sshd or what runs under it (the receiver, the fence), never pid 1. A freeze
// lifts itself after maxMs, at close() and at the agent's exit, and a guard
// process (freeze-guard.ts) lifts it should the agent be killed or stopped:
// a frozen code-server never outlives its agent frozen.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FreezeSettings } from '../config/agent.ts';
import type { Logger } from '../core/log.ts';
import { descendants } from '../core/process-tree.ts';
import { startFreezeGuard, thawStopped, type FreezeGuard } from './freeze-guard.ts';

/** What an agent without a `freeze` section answers a freeze request. */
export const NOTHING_TO_FREEZE = 'nothing to freeze: set freeze.cgroup or freeze.pidFiles in agent.json';

/** The answer to a freeze or thaw: protocol/messages.ts's `frozen` without its type and id. */
export interface FreezeAnswer {
  /** false: something could not be frozen (or thawed); `error` says what, `frozen` what holds now */
  ok: boolean;
  /** the state now: true = some user processes are stopped */
  frozen: boolean;
  /** processes stopped (freeze) or continued (thaw) */
  processes: number;
  error: string | null;
}

export interface FreezerOptions {
  /** how long a freeze waits for the processes to be stopped for real before it answers, ms (default 2000) */
  settleMs?: number;
}

interface ProcStat {
  state: string;
  ppid: number;
  /** start time in clock ticks since boot: with the pid, names one process (pids are reused) */
  start: string;
  comm: string;
}

function procStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name is in parentheses and may hold spaces and parentheses: the last ')' ends it
    const close = stat.lastIndexOf(')');
    const rest = stat.slice(close + 2).split(' ');
    return { state: rest[0] ?? '?', ppid: Number(rest[1]), start: rest[19] ?? '', comm: stat.slice(stat.indexOf('(') + 1, close) };
  } catch {
    return undefined; // gone
  }
}

/** The uids owning a pid file and the process it names, or undefined when either is gone. */
function ownersOf(file: string, pid: number): { file: number; process: number } | undefined {
  try {
    return { file: statSync(file).uid, process: statSync(`/proc/${pid}`).uid };
  } catch {
    return undefined;
  }
}

/** sshd and its per-session processes (OpenSSH 9.8+ runs sshd-session and sshd-auth). */
const isSshd = (comm: string): boolean => comm === 'sshd' || comm.startsWith('sshd-');

/** Stopped: by a signal (T), by a tracer (t), or exited (Z, or gone). */
const isStopped = (s: ProcStat | undefined): boolean => s === undefined || s.state === 'T' || s.state === 't' || s.state === 'Z' || s.state === 'X';

/** At most this many passes over a tree: a process forking while its tree is stopped shows up in the next one. */
const MAX_ROUNDS = 10;

export class Freezer {
  readonly #settings: FreezeSettings | undefined;
  readonly #log: Logger;
  readonly #settleMs: number;
  /** processes this freezer stopped, by pid, with their start time (only they are continued) */
  readonly #held = new Map<number, string>();
  #cgroupFrozen = false;
  #timer: NodeJS.Timeout | undefined;
  #guard: FreezeGuard | undefined;
  /** counts thaws: a freeze still waiting for its processes to settle sees one happened */
  #thaws = 0;
  #closed = false;
  readonly #onExit = (): void => {
    this.thaw('the agent is exiting');
  };

  constructor(settings: FreezeSettings | undefined, log: Logger, o: FreezerOptions = {}) {
    this.#settings = settings;
    this.#log = log;
    this.#settleMs = o.settleMs ?? 2_000;
  }

  /** Whether some user processes are stopped now (the heartbeat's `frozen`). */
  get frozen(): boolean {
    return this.#cgroupFrozen || this.#held.size > 0;
  }

  /**
   * Stops the configured processes, and lifts that by itself after `maxMs` (default freeze.maxMs).
   * While frozen, a freeze extends it to `maxMs` from now and stops what appeared since. Answers once the
   * processes are stopped for real (or settleMs passed); what could not be frozen is in the error.
   */
  async freeze(maxMs?: number): Promise<FreezeAnswer> {
    const settings = this.#settings;
    if (!settings) return { ok: false, frozen: false, processes: 0, error: NOTHING_TO_FREEZE };
    if (this.#closed) return { ok: false, frozen: false, processes: 0, error: 'the agent is stopping: nothing is frozen' };
    const errors: string[] = [];
    if (settings.cgroup !== undefined) this.#freezeCgroup(settings.cgroup, errors);
    for (const file of settings.pidFiles) this.#stopTree(file, errors);
    const thaws = this.#thaws;
    const guardFailed = (err: Error): void => this.#log.error({ err }, 'cannot start the freeze guard: should this agent be killed while frozen, the frozen processes stay stopped until someone continues them (kill -CONT, or 0 to cgroup.freeze)');
    if (this.frozen) {
      const ms = maxMs ?? settings.maxMs;
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#log.warn({ maxMs: ms }, 'freeze lifted by itself: the proxy did not lift it within maxMs');
        this.thaw(`maxMs (${ms} ms) passed`);
      }, ms);
      this.#timer.unref(); // the agent's exit thaws too (#onExit); the timer must not hold the process up
      process.removeListener('exit', this.#onExit);
      process.once('exit', this.#onExit);
      // a guard for what is frozen now (a freeze while frozen may have stopped more), then the old one goes
      const old = this.#guard;
      this.#guard = undefined;
      try {
        this.#guard = startFreezeGuard(this.#held, this.#cgroupFrozen ? settings.cgroup : undefined, ms, guardFailed);
      } catch (err) {
        guardFailed(err as Error);
      }
      old?.stop();
    }
    await this.#settle(settings.cgroup, errors, () => this.#thaws !== thaws);
    if (this.#thaws !== thaws) return { ok: false, frozen: this.frozen, processes: this.#count(), error: 'thawed before the freeze had settled' };
    const answer = { ok: errors.length === 0, frozen: this.frozen, processes: this.#count(), error: errors.length > 0 ? errors.join('; ').slice(0, 2000) : null };
    if (answer.frozen) this.#log.info({ processes: answer.processes, maxMs: maxMs ?? settings.maxMs, ...(answer.error ? { problems: answer.error } : {}) }, "froze the host's user processes");
    else this.#log.warn({ why: answer.error }, "could not freeze the host's user processes");
    return answer;
  }

  /** Continues what this freezer stopped (idempotent); `why` goes to the log. */
  thaw(why: string): FreezeAnswer {
    this.#thaws++;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    process.removeListener('exit', this.#onExit);
    this.#guard?.stop();
    this.#guard = undefined;
    if (!this.frozen) return { ok: true, frozen: false, processes: 0, error: null };
    const cgroup = this.#cgroupFrozen ? this.#settings?.cgroup : undefined;
    const inCgroup = cgroup !== undefined ? this.#cgroupPids(cgroup).length : 0;
    const { processes: continued, cgroupThawed, errors } = thawStopped(this.#held, cgroup);
    const processes = continued + (cgroup !== undefined && cgroupThawed ? inCgroup : 0);
    // a cgroup that could not be thawed stays frozen (the error says so); every stopped process was tried
    if (cgroupThawed) this.#cgroupFrozen = false;
    this.#held.clear();
    const error = errors.length > 0 ? errors.join('; ').slice(0, 2000) : null;
    if (error) this.#log.error({ why, error }, "could not thaw all of the host's user processes");
    else this.#log.info({ why, processes }, "thawed the host's user processes");
    return { ok: error === null, frozen: this.frozen, processes, error };
  }

  /** Thaws (the agent is stopping) and refuses later freezes. */
  close(): void {
    this.#closed = true;
    this.thaw('the agent is stopping');
  }

  #count(): number {
    const inCgroup = this.#cgroupFrozen && this.#settings?.cgroup !== undefined ? this.#cgroupPids(this.#settings.cgroup).length : 0;
    return inCgroup + this.#held.size;
  }

  #freezeCgroup(cgroup: string, errors: string[]): void {
    const file = join(cgroup, 'cgroup.freeze');
    let pids: number[];
    try {
      readFileSync(file, 'utf8');
      pids = this.#cgroupPids(cgroup, true);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      errors.push(code === 'ENOENT' ? `freeze.cgroup ${cgroup} has no cgroup.freeze: not a cgroup v2 folder (on a cgroup v1 host, use freeze.pidFiles)` : `cannot read freeze.cgroup ${cgroup} (${code ?? (err as Error).message})`);
      return;
    }
    // the agent's rsync and ssh are in its cgroup unless something moved them: the agent's pid stands for them
    const refused = pids.find((pid) => pid === process.pid || pid === 1 || isSshd(procStat(pid)?.comm ?? ''));
    if (refused !== undefined) {
      const who = refused === process.pid ? `the agent (pid ${refused})` : refused === 1 ? 'pid 1' : `sshd (pid ${refused})`;
      errors.push(`freeze.cgroup ${cgroup} holds ${who}: freezing it would stop the final pass; give code-server's own unit`);
      return;
    }
    try {
      writeFileSync(file, '1');
      this.#cgroupFrozen = true;
    } catch (err) {
      errors.push(`cannot write 1 to ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): the agent needs write access to it`);
    }
  }

  /** The pids in the cgroup and its sub-cgroups (`strict`: errors thrown, else none counted). */
  #cgroupPids(cgroup: string, strict = false, depth = 0): number[] {
    try {
      const pids = readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
      if (depth >= 16) return pids;
      for (const entry of readdirSync(cgroup, { withFileTypes: true })) {
        if (entry.isDirectory()) pids.push(...this.#cgroupPids(join(cgroup, entry.name), strict, depth + 1));
      }
      return pids;
    } catch (err) {
      if (strict && depth === 0) throw err;
      return [];
    }
  }

  /** SIGSTOPs the process named by `file` and its descendants, bar the untouchable; problems go to `errors`. */
  #stopTree(file: string, errors: string[]): void {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      errors.push(code === 'ENOENT' ? `freeze.pidFiles: ${file} is missing (is its process running?)` : `freeze.pidFiles: cannot read ${file} (${code ?? (err as Error).message})`);
      return;
    }
    const root = /^\d{1,10}$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(root) || root < 1) {
      errors.push(`freeze.pidFiles: ${file} holds no pid (${JSON.stringify(text.slice(0, 40))})`);
      return;
    }
    const rootStat = procStat(root);
    if (!rootStat || rootStat.state === 'Z') {
      errors.push(`freeze.pidFiles: pid ${root} from ${file} is not running`);
      return;
    }
    if (root === 1 || root === process.pid || isSshd(rootStat.comm)) {
      errors.push(`freeze.pidFiles: pid ${root} from ${file} is ${root === 1 ? 'pid 1' : root === process.pid ? 'the agent itself' : 'sshd'}: not stopped`);
      return;
    }
    // a pid file its user can write names only that user's processes (systemd's PIDFile= rule): a
    // root agent must not stop a root daemon because a user's pid file says so
    const owners = ownersOf(file, root);
    if (owners && owners.file !== 0 && owners.file !== owners.process) {
      errors.push(`freeze.pidFiles: pid ${root} from ${file} runs as uid ${owners.process} but the file belongs to uid ${owners.file}: not stopped (a pid file not owned by root may only name its owner's processes)`);
      return;
    }
    // the walk stops at the agent (code-server's terminal may have started it) and at sshd: they and
    // what they run go on (the final pass, the fence). A tree under the agent is stopped like any other.
    const untouchable = new Set<number>([1]);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      let stopped = 0;
      for (const pid of descendants(root)) {
        if (untouchable.has(pid) || this.#held.has(pid)) continue;
        const s = procStat(pid);
        if (!s || s.state === 'Z') continue;
        if (pid === process.pid || isSshd(s.comm)) {
          for (const p of descendants(pid)) untouchable.add(p);
          continue;
        }
        try {
          process.kill(pid, 'SIGSTOP');
          this.#held.set(pid, s.start);
          stopped++;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ESRCH') errors.push(`cannot stop pid ${pid} from ${file}: ${(err as Error).message}`);
        }
      }
      if (stopped === 0) return;
    }
  }

  /** Waits (up to settleMs) until the stopped processes are stopped for real and the cgroup says frozen. */
  async #settle(cgroup: string | undefined, errors: string[], thawed: () => boolean): Promise<void> {
    const deadline = performance.now() + this.#settleMs;
    const running = (): string[] => {
      const stats = new Map([...this.#held.keys()].map((pid) => [pid, procStat(pid)] as const));
      const stoppedParents = new Set([...stats.values()].filter((s) => s !== undefined && isStopped(s)).map((s) => s!.ppid));
      // a parent in D with a stopped child: a vfork() (dash, posix_spawn) waiting for a child we stopped
      // before its exec. It cannot run until the child does, and takes its SIGSTOP then: it is stopped
      return [...stats].filter(([pid, s]) => !isStopped(s) && !(s!.state === 'D' && stoppedParents.has(pid))).map(([pid, s]) => `${pid} (${s!.state})`);
    };
    const cgroupSettled = (): boolean => {
      if (!this.#cgroupFrozen || cgroup === undefined) return true;
      try {
        return /^frozen 1$/m.test(readFileSync(join(cgroup, 'cgroup.events'), 'utf8'));
      } catch {
        return true; // no events file to watch (an older kernel): the write was taken
      }
    };
    for (;;) {
      if (thawed()) return;
      const left = running();
      const settled = cgroupSettled();
      if (left.length === 0 && settled) return;
      if (performance.now() > deadline) {
        if (left.length > 0) errors.push(`${left.length} process(es) not stopped within ${this.#settleMs} ms (pid and state: ${left.slice(0, 10).join(', ')}): in uninterruptible I/O? they stop once it ends`);
        if (!settled) errors.push(`freeze.cgroup ${cgroup} not frozen within ${this.#settleMs} ms (cgroup.events says frozen 0)`);
        return;
      }
      await sleep(10);
    }
  }
}
