// The agent's sessions with the standby: rsync runs (one at a time, the one in
// flight abortable and watched for liveness), the flush that makes a pass
// durable, the check before each full reconcile, and the receiver's refusals
// told apart from other failures. It owns the ssh ControlMaster; close() ends it.
import { StandbyError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { excludesOf, type AgentConfig, type SyncRoot } from '../config/agent.ts';
import { emptyFoldersIn, EPOCH_VAR, FLUSHED_LINE, hasLine, isFenced, refusalIn } from '../protocol/receiver.ts';
import { PassLiveness } from './liveness.ts';
import type { RootEnds, RsyncSettings } from './rsync-args.ts';
import { asDir, describeExit, RSYNC_OK, runRsync, type RsyncResult, type RsyncRun } from './rsync.ts';
import { localRsyncVersion, standbyRsyncVersion } from './rsync-version.ts';
import { CONNECT_TIMEOUT_S, ControlMaster, destination, remoteDir, rsyncShell, runRemote } from './ssh.ts';
import type { Destination } from './push-destination.ts';
import { PassProgress } from './pass-progress.ts';

/** The receiver's refusals that mean this host must stop pushing: fenced under a newer epoch, or its key revoked. */
export type Refusal = 'EPOCH_STALE' | 'HOST_REVOKED';

/** Which of the fencing refusals the standby's receiver printed (its line, read by protocol/receiver.ts's refusalIn), if any. */
export function refusalOf(stderr: string): Refusal | undefined {
  const refusal = refusalIn(stderr);
  if (!refusal || !isFenced(refusal)) return undefined;
  return refusal.code === 'STANDBY_ERR_HOST_REVOKED' ? 'HOST_REVOKED' : 'EPOCH_STALE';
}

/** The error a refused pass fails with; the engine stops pushing on its code. Both refusals carry STANDBY_ERR_EPOCH_STALE: either way this epoch may write no more. */
export function refusedError(refusal: Refusal, epoch: number | undefined): StandbyError {
  const why = refusal === 'HOST_REVOKED' ? "this host's key was revoked (fenced by a failover, or removed by the admin)" : 'it was fenced under a newer one';
  return new StandbyError('STANDBY_ERR_EPOCH_STALE', `the standby refused this agent's epoch ${epoch ?? 0}: ${why} [STANDBY_ERR_EPOCH_STALE]`, { epoch });
}

/** Whether a pass failed because the standby refused this writer (see refusedError). */
export function isRefusal(err: unknown): boolean {
  return err instanceof StandbyError && err.code === 'STANDBY_ERR_EPOCH_STALE';
}

/** What a pass to a destination that was ended fails with: not a failure of that destination, nothing is retried there. */
export class DestinationEnded extends Error {
  override name = 'DestinationEnded';
}

/** One rsync run against the standby. */
export interface PushResult extends RsyncResult {
  /** the standby's receiver flushed what it wrote before the session ended (asked with settings(root, { flush: true })): no flush() needed */
  flushed: boolean;
}

/** sessions so far in this process: each gets a control socket of its own (a destination given up may still be closing its own when it is taken up again) */
let sessions = 0;

export class StandbyPush {
  /** where this session pushes (one per destination: a new target gets a new session) */
  readonly destination: Destination;
  #config: AgentConfig;
  #log: Logger;
  #ended = false;
  #progress: PassProgress | undefined;
  #epoch: () => number | undefined;
  /** read at each run: the exclude patterns in force (the proxy may push others) */
  #excludes: () => readonly string[];
  #master: ControlMaster;
  #liveness: PassLiveness;
  #rsync: RsyncRun | undefined;
  #rsyncVersions: { here?: string; standby?: string } = {};
  /** the standby's receiver said it flushes a transfer when asked (at the last prepare) */
  #receiverFlushes = false;
  /** the roots' folders (SyncRoot.remote) the standby's receiver said held nothing at the last prepare */
  #emptyRoots = new Set<string>();

  /** `epoch`: the one the proxy granted this writer now (undefined: no proxy, or not primary), told to the receiver with every run */
  constructor(config: AgentConfig, destination: Destination, log: Logger, epoch: () => number | undefined, excludes?: () => readonly string[]) {
    this.destination = destination;
    this.#config = config;
    this.#log = log;
    this.#epoch = epoch;
    const own = excludesOf(config);
    this.#excludes = excludes ?? (() => own);
    this.#master = new ControlMaster(destination.ssh, config.runDir, log, String(++sessions));
    this.#liveness = new PassLiveness(2 * config.sync.ioTimeoutS * 1000);
  }

  /** Starts the ssh ControlMaster if it is down; only the check before a full pass waits for it (prepare), other runs fall back to their own connection. */
  ensureLink(): void {
    this.#master.ensure();
  }

  /**
   * What every rsync run into `root` shares now (through the master while it is up).
   * `flush`: the run is the last of its root's pass, so the receiver is asked to flush
   * the root when rsync ends, where it said it does (the result says whether it did).
   */
  settings(root: Pick<SyncRoot, 'include'>, { flush = false }: { flush?: boolean } = {}): RsyncSettings {
    return {
      flush: flush && this.#receiverFlushes,
      ioTimeoutS: this.#config.sync.ioTimeoutS,
      shell: rsyncShell(this.destination.ssh, this.#control()),
      excludes: this.#excludes(),
      epoch: this.#epoch(),
      rsyncPath: this.destination.ssh.rsyncPath,
      include: root.include,
    };
  }

  /**
   * Whether `root`'s folder on the standby held nothing when the last prepare made it, as the receiver said
   * (a plain sshd or an older receiver says nothing: false). A full pass into it may write files in place.
   */
  heldNothing(root: Pick<SyncRoot, 'remote'>): boolean {
    return this.#emptyRoots.has(root.remote);
  }

  ends(root: SyncRoot): RootEnds {
    return { from: asDir(root.local), to: remoteDir(this.destination.ssh, root.remote) };
  }

  /** Runs one rsync; abort() cuts it, alive() watches it. */
  async rsync(args: string[], stdin?: Buffer): Promise<PushResult> {
    this.#stillOn();
    // a full pass reports how far it got: rsync's own progress output (--info=progress2, rsync >= 3.1.0), keyed by the run's destination folder
    const progress = this.#progress;
    const at = `${destination(this.destination.ssh)}:`;
    const onProgress = progress?.run(args.find((a) => a.startsWith(at)) ?? '');
    const run = runRsync(progress ? ['--info=progress2', ...args] : args, { ...(stdin ? { stdin } : {}), ...(onProgress ? { progress: onProgress } : {}) });
    this.#rsync = run;
    this.#liveness.track(run.pid);
    const started = performance.now();
    try {
      const r = await run.result;
      const flushed = hasLine(r.stderr, FLUSHED_LINE);
      this.#log.debug({ durationMs: Math.round(performance.now() - started), code: r.code, files: r.stats.files, filesSent: r.stats.filesTransferred, paths: stdin ? 'listed' : 'all', ...(args.includes('--dry-run') ? { dryRun: true } : {}), ...(args.includes('--inplace') ? { inplace: true } : {}), ...(flushed ? { flushed } : {}) }, 'rsync run done');
      return { ...r, flushed };
    } finally {
      this.#rsync = undefined;
      this.#liveness.track(undefined);
    }
  }

  /** `result` if rsync did what it was asked; else the typed error: the receiver's refusal, or the failure in a few words. */
  check<R extends RsyncResult>(result: R, what: string): R {
    if (RSYNC_OK.has(result.code ?? -1)) return result;
    // the standby's receiver refused this writer's epoch (rsync's own exit code varies with timing)
    const refusal = refusalOf(result.stderr);
    if (refusal) throw refusedError(refusal, this.#epoch());
    const tail = result.stderr.split('\n').filter((l) => l.trim()).slice(-3).join(' | ');
    throw new StandbyError('STANDBY_ERR_RSYNC_FAILED', `${what} failed: ${describeExit(result.code, result.signal)}${tail ? ` (${tail})` : ''}`, { code: result.code, signal: result.signal });
  }

  /** Cuts the rsync in flight, if any (rsync writes each file to a temp name and renames it: it leaves no torn file). */
  abort(): void {
    this.#rsync?.abort();
  }

  /**
   * This destination is given up (the proxy granted another): the rsync in
   * flight is cut (each file lands whole, an incremental pass's not at all; but the file in flight of a full
   * pass written in place into an empty folder, rsync-args.ts fullArgs) and no run of
   * the pass in flight starts after it; close() then ends the ssh master.
   */
  end(): void {
    this.#ended = true;
    this.abort();
  }

  /** A full pass starts (its progress is counted from now) or ends (undefined). */
  set fullPassProgress(progress: PassProgress | undefined) {
    this.#progress = progress;
  }

  /**
   * How far the full pass in flight got, or null when none runs: its rsync's output read now, so a heartbeat
   * or a status carries the newest figures (the timer's reads are 0.5 s apart: a short restore fell between them).
   */
  get progress(): ReturnType<PassProgress['figures']> | null {
    if (!this.#progress) return null;
    this.#rsync?.readProgress();
    return this.#progress.figures();
  }

  #stillOn(): void {
    if (this.#ended) throw new DestinationEnded(`${this.destination.label} was given up for another destination: the pass to it stops here`);
  }

  /** Idle, or the rsync in flight moving data (liveness.ts). */
  alive(): boolean {
    return this.#liveness.alive();
  }

  /**
   * Makes what a pass wrote durable before it counts: one syncfs of the root's
   * filesystem on the standby. It covers the files and the renames --delay-updates
   * makes at the end, at a fraction of the cost of rsync's per-file --fsync.
   */
  async flush(root: SyncRoot): Promise<void> {
    this.#stillOn();
    const started = performance.now();
    const { code, stderr } = await runRemote(this.destination.ssh, this.#control(), ['sync', '-f', root.remote], this.#config.sync.ioTimeoutS * 1000, this.#epochEnv());
    this.#log.debug({ durationMs: Math.round(performance.now() - started), code }, 'flush done');
    const refusal = refusalOf(stderr);
    if (refusal) throw refusedError(refusal, this.#epoch());
    if (code !== 0) {
      throw new StandbyError('STANDBY_ERR_RSYNC_FAILED', `flushing ${root.remote} to disk on the standby failed (${code === null ? 'timed out' : `exit ${code}`})${stderr ? `: ${stderr}` : ''}`, { code });
    }
  }

  /**
   * Before each full reconcile (at start, after failures, periodically: the
   * standby may have been replaced): both ends run an rsync sync works with, and every
   * root's folder exists there. Folders are made with `mkdir -p` because
   * receivers before rsync 3.2.3 lack --mkpath; the standby's receiver checks
   * it like a write (inside a root, epoch, lock). The roots from `optionalFrom`
   * on (code-server's folders) may be refused as outside the receiver's roots:
   * resolves with the receiver's words then, and the pass goes on without them.
   */
  async prepare(roots: readonly SyncRoot[], { optionalFrom = roots.length }: { optionalFrom?: number } = {}): Promise<string | undefined> {
    this.#stillOn();
    // a master just started (the first pass, a new destination, after a drop) is still logging in: without it each
    // session below and the rsync after make a connection of their own (a key exchange and a login each, 0.5 s
    // apiece on the bench machine); it is up within ConnectTimeout or has failed, and a failed one ends the wait
    await this.#master.whenUp(CONNECT_TIMEOUT_S * 1000);
    this.#stillOn();
    const target = this.destination.ssh;
    const control = this.#control();
    const env = this.#epochEnv();
    const timeoutMs = this.#config.sync.ioTimeoutS * 1000;
    // the checks and the folders at once: each is a session and a receiver start on the standby, and
    // neither needs the other's answer (a failed check still fails the pass before any rsync runs)
    this.#emptyRoots = new Set(); // until this prepare's receiver says otherwise
    const required = roots.slice(0, optionalFrom).map((r) => r.remote);
    const making = runRemote(target, control, ['mkdir', '-p', ...required], timeoutMs, env);
    // the optional roots (code-server's folders) apart: a receiver that does not take them must not stop the workspace's sync
    const optional = roots.slice(optionalFrom).map((r) => r.remote);
    const makingOptional = optional.length > 0 ? runRemote(target, control, ['mkdir', '-p', ...optional], timeoutMs, env) : Promise.resolve(undefined);
    const [here, standby, made, madeOptional] = await Promise.all([localRsyncVersion(), standbyRsyncVersion(target, control, timeoutMs, env), making, makingOptional]).catch(async (err: unknown) => {
      await Promise.all([making.catch(() => undefined), makingOptional.catch(() => undefined)]); // no session of this pass outlives it
      throw err;
    });
    const known = this.#rsyncVersions;
    if (known.here !== here.version || known.standby !== standby.version) this.#log.info({ here: here.version, standby: standby.version }, `rsync ${here.version} here, ${standby.version} on the standby`);
    this.#rsyncVersions = { here: here.version, standby: standby.version };
    this.#receiverFlushes = standby.flushes;
    const empty = (m: { code: number | null; stderr: string } | undefined, folders: string[]): string[] => (m?.code === 0 ? [...emptyFoldersIn(m.stderr, folders.length)].map((i) => folders[i]!) : []);
    this.#emptyRoots = new Set([...empty(made, required), ...empty(madeOptional, optional)]);
    const refusal = refusalOf(made.stderr) ?? refusalOf(madeOptional?.stderr ?? '');
    if (refusal) throw refusedError(refusal, this.#epoch());
    for (const m of [made, madeOptional]) {
      if (!m || m.code === 0) continue;
      const refused = refusalIn(m.stderr);
      if (m === madeOptional && refused?.code === 'STANDBY_ERR_COMMAND_REFUSED') return refused.message;
      throw new StandbyError('STANDBY_ERR_RSYNC_FAILED', `creating the sync folders on the standby failed (${m.code === null ? 'timed out' : `exit ${m.code}`})${m.stderr ? `: ${m.stderr}` : ''}`, { code: m.code });
    }
    return undefined;
  }

  /** the rsync versions the last full reconcile's check found, here and on the standby (null before it) */
  get rsyncVersions(): { here: string | null; standby: string | null } {
    return { here: this.#rsyncVersions.here ?? null, standby: this.#rsyncVersions.standby ?? null };
  }

  async close(): Promise<void> {
    await this.#master.close();
  }

  #control(): string | undefined {
    return this.#master.running ? this.#master.path : undefined;
  }

  /** how a remote command names this writer's epoch to the standby's receiver (a plain sshd's shell takes it too) */
  #epochEnv(): Record<string, string> {
    const epoch = this.#epoch();
    return epoch === undefined ? {} : { [EPOCH_VAR]: String(epoch) };
  }
}
