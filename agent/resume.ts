// The resume command: after a recovery switches back to this host (a grant
// with resume: true, protocol/messages.ts), what this host's own config or
// workspace says to run (agent.json `resume`: a command for sh -c, else the
// executable file .standby/resume in the workspace), e.g. relaunch training
// from the newest complete checkpoint. The proxy never says what to run. A
// workspace file runs as its owner (an agent running as root lends its root to
// nobody who can write the workspace), and not at all when group or others may
// write it.
//
// It runs at most once per agent process and once per epoch: the run is
// recorded in the run folder BEFORE the spawn, so a reconnect, a regrant or a
// restarted agent never runs it twice (a crash between the record and the
// spawn runs it not at all, which is said). The child has its own process
// group and session, its output goes to the log file (0600); it is killed
// (its group: SIGTERM, then SIGKILL) after timeoutS when set, and it is NOT
// killed when the agent exits: a training job outlives the agent's restart.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, fchmodSync, lstatSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from '../config/agent.ts';
import { readStateFile, writeStateFile } from '../core/durable-file.ts';
import type { Logger } from '../core/log.ts';
import type { ResumeState } from '../protocol/messages.ts';
import { runDirOf } from './push-destination.ts';

/** After SIGTERM on its timeout, the group gets SIGKILL this much later, ms. */
const KILL_GRACE_MS = 5_000;

/** What the run folder keeps of a run (wall-clock ms: only to give a restarted agent the ages). */
interface ResumeRecord {
  epoch: number;
  /** what ran: "command" or the file's path */
  what: string;
  startedAt: number;
  pid?: number;
  /** /proc/<pid>/stat's start time: with the pid, names the process (pids are reused) */
  pidStart?: string;
  ended?: { at: number; exitCode: number | null; signal: string | null; error: string | null; failedToStart: boolean };
}

function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined; // gone
  }
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 500);
}

export class Resumer {
  readonly #config: AgentConfig;
  readonly #log: Logger;
  readonly #file: string;
  #record: ResumeRecord | undefined;
  /** performance.now() of the start and end seen by this process (the record's wall clock only for a run before it) */
  #startedMono: number | undefined;
  #endedMono: number | undefined;
  /** this process ran it (or decided not to: nothing to run) */
  #done = false;
  #timers: NodeJS.Timeout[] = [];
  /** closed: what its child does from now on is the next agent's to see */
  #closed = false;
  /** its timeout ended it */
  #timedOut = false;
  /** told whenever the run changes state (the heartbeat client sends a heartbeat at once) */
  onChange: (() => void) | undefined;

  constructor(config: AgentConfig, log: Logger) {
    this.#config = config;
    this.#log = log;
    // one record per host id: agents sharing a run folder (tests, the local provider) keep theirs apart
    const id = createHash('sha256').update(config.hostId).digest('hex').slice(0, 12);
    this.#file = join(runDirOf(config), `resume-${id}.json`);
    const text = readStateFile(this.#file, { what: 'the resume record' });
    if (text !== undefined) {
      try {
        this.#record = JSON.parse(text) as ResumeRecord;
      } catch (err) {
        log.warn({ file: this.#file, err: errorText(err) }, 'the resume record is not JSON: ignored (the resume command may run again on its next grant)');
      }
    }
  }

  /** A grant arrived: a primary one with resume: true runs the command, unless it ran for this epoch already. */
  granted(g: { role: string; epoch: number; resume?: true }): void {
    if (g.role !== 'primary' || g.resume !== true || this.#done) return;
    this.#done = true;
    if (this.#record?.epoch === g.epoch) {
      this.#log.info({ epoch: g.epoch }, 'resume: already ran for this epoch (the run folder says): not again');
      return;
    }
    this.#run(g.epoch);
  }

  #save(): boolean {
    try {
      writeStateFile(this.#file, JSON.stringify(this.#record), { what: 'the resume record' });
      return true;
    } catch (err) {
      this.#log.error({ err: errorText(err) }, 'resume: the run folder cannot record the run');
      return false;
    }
  }

  #run(epoch: number): void {
    const settings = this.#config.resume;
    const workspace = this.#config.workspace;
    let argv: [string, string[]];
    let what: string;
    /** a workspace file runs as its owner: the agent's root is not lent to whoever can write the workspace */
    let as: { uid: number; gid: number } | undefined;
    let refused: string | undefined;
    if (settings.command !== undefined) {
      argv = ['sh', ['-c', settings.command]];
      what = 'command';
    } else {
      const file = join(workspace, settings.file);
      try {
        lstatSync(file);
      } catch {
        this.#log.info({ file }, 'resume: switched back to this host; no resume command (agent.json resume.command) and no resume file: nothing to run');
        return;
      }
      argv = [file, []];
      what = file;
      try {
        const st = statSync(file);
        if ((st.mode & 0o022) !== 0) refused = `${file} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}): chmod go-w it`;
        else if (process.getuid?.() === 0 && st.uid !== 0) as = { uid: st.uid, gid: st.gid };
      } catch (err) {
        refused = `did not start: ${errorText(err)}`; // a link to nothing: said below as it is
      }
    }
    this.#startedMono = performance.now();
    this.#record = { epoch, what, startedAt: Date.now() };
    // recorded before the spawn: a crash now never leads to a second run
    if (!this.#save()) return this.#ended({ exitCode: null, signal: null, error: 'the run folder could not record the run, so it did not start', failedToStart: true });
    if (refused !== undefined) return this.#ended({ exitCode: null, signal: null, error: refused, failedToStart: true });
    const logFile = settings.logFile ?? join(runDirOf(this.#config), 'resume.log');
    let fd: number;
    try {
      fd = openSync(logFile, 'a', 0o600);
      fchmodSync(fd, 0o600);
    } catch (err) {
      return this.#ended({ exitCode: null, signal: null, error: `its log file ${logFile} cannot be opened: ${errorText(err)}`, failedToStart: true });
    }
    this.#log.warn({ epoch, what, logFile }, 'resume: switched back to this host: running the resume command');
    try {
      // its own session and process group: the agent's end (or a signal to its group) does not reach it
      const child = spawn(argv[0], argv[1], { cwd: workspace, detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, STANDBY_RESUME_EPOCH: String(epoch) }, ...as });
      child.on('error', (err) => {
        if (child.pid === undefined) this.#ended({ exitCode: null, signal: null, error: `did not start: ${errorText(err)}`, failedToStart: true });
        else this.#log.warn({ err: errorText(err) }, 'resume: its process reported an error');
      });
      child.on('spawn', () => {
        const pid = child.pid!;
        this.#record = { ...this.#record!, pid, ...(procStart(pid) ? { pidStart: procStart(pid) } : {}) };
        this.#save();
        this.#log.info({ pid }, 'resume: started');
        this.onChange?.();
        if (settings.timeoutS > 0) this.#timers.push(setTimeout(() => this.#timeout(pid), settings.timeoutS * 1000));
      });
      child.on('exit', (code, signal) => {
        const late = this.#timedOut;
        this.#ended({ exitCode: code, signal, error: late ? `killed after its timeout (resume.timeoutS ${settings.timeoutS})` : null, failedToStart: false });
      });
      child.unref();
    } catch (err) {
      this.#ended({ exitCode: null, signal: null, error: `did not start: ${errorText(err)}`, failedToStart: true });
    } finally {
      closeSync(fd);
    }
  }

  #timeout(pid: number): void {
    if (this.#record?.ended) return;
    this.#timedOut = true;
    this.#log.warn({ pid, timeoutS: this.#config.resume.timeoutS }, 'resume: the command ran past its timeout: ending its process group');
    const kill = (signal: NodeJS.Signals) => {
      try {
        process.kill(-pid, signal);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') this.#log.error({ err: errorText(err), pid }, 'resume: cannot signal its process group');
      }
    };
    kill('SIGTERM');
    this.#timers.push(setTimeout(() => kill('SIGKILL'), KILL_GRACE_MS));
  }

  #ended(e: Omit<NonNullable<ResumeRecord['ended']>, 'at'>): void {
    if (!this.#record || this.#record.ended || this.#closed) return;
    this.#endedMono = performance.now();
    this.#record = { ...this.#record, ended: { ...e, at: Date.now() } };
    this.#save();
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
    const fields = { exitCode: e.exitCode, signal: e.signal, error: e.error };
    if (e.failedToStart || e.error) this.#log.error(fields, 'resume: the resume command failed');
    else this.#log.info(fields, 'resume: the resume command exited');
    this.onChange?.();
  }

  /** The run as the heartbeat carries it, or null when none ran here. */
  view(): ResumeState | null {
    const r = this.#record;
    if (!r) return null;
    // a run a previous agent process started: is it still there? (not our child: its exit code is not ours to see)
    if (!r.ended && this.#startedMono === undefined) {
      const alive = r.pid !== undefined && r.pidStart !== undefined && procStart(r.pid) === r.pidStart;
      if (!alive) {
        this.#record = { ...r, ended: { at: Date.now(), exitCode: null, signal: null, error: r.pid === undefined ? 'the agent stopped before it started' : 'it ended while the agent was not running: its exit code was not seen', failedToStart: r.pid === undefined } };
        this.#endedMono = performance.now();
        this.#save();
      }
    }
    const rec = this.#record!;
    const now = performance.now();
    const wallAge = (at: number) => Math.max(0, Date.now() - at);
    const startedAgeMs = this.#startedMono !== undefined ? Math.round(now - this.#startedMono) : wallAge(rec.startedAt);
    const ended = rec.ended;
    return {
      epoch: rec.epoch,
      state: ended ? (ended.failedToStart ? 'failed-to-start' : 'exited') : 'running',
      ...(rec.pid !== undefined ? { pid: rec.pid } : {}),
      exitCode: ended?.exitCode ?? null,
      signal: ended?.signal ?? null,
      startedAgeMs,
      endedAgeMs: ended ? (this.#endedMono !== undefined ? Math.round(now - this.#endedMono) : wallAge(ended.at)) : null,
      error: ended?.error ?? null,
    };
  }

  /** Stops the timeout's timers. The command itself goes on (it outlives the agent). */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
  }
}
