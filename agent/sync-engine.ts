// The sync engine: watch -> batch -> rsync over ssh, one pass at a time.
// It owns the watchers, the control master, the running rsync and its timers;
// close() ends them all. It keeps the watermark (change-set.ts) and the sync
// state that heartbeats will carry.
import { EventEmitter } from 'node:events';
import { StandbyError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { Backoff } from '../core/backoff.ts';
import { Batcher } from './batcher.ts';
import { ChangeSet, isDeletion, type Batch, type Change, type ChangeKind } from './change-set.ts';
import { excludesOf, syncRoots, type AgentConfig, type SyncRoot } from '../config/agent.ts';
import { PassLiveness } from './liveness.ts';
import { excludeArgs, excludeMatcher } from './exclude.ts';
import { filterRules, planPass } from './pass-plan.ts';
import { EPOCH_VAR } from '../standby/receive-request.ts';
import { asDir, describeExit, onlyMissing, RSYNC_MAX_DELETE, RSYNC_OK, runRsync, type RsyncResult, type RsyncRun } from './rsync.ts';
import { localRsyncVersion, standbyRsyncVersion } from './rsync-version.ts';
import { ControlMaster, remoteDir, rsyncShell, runRemote } from './ssh.ts';
import { createWatchBarrier, type WatchBarrier } from './watch-barrier.ts';
import { watchRoot, type RootWatch } from './watcher.ts';

export type SyncPhase = 'starting' | 'idle' | 'syncing' | 'retrying' | 'stopped';

/** What the agent knows about its sync, as heartbeats will carry it. Ages are monotonic-clock ms, never timestamps. */
export interface SyncStatus {
  hostId: string;
  ready: boolean;
  phase: SyncPhase;
  /** every change numbered <= watermark is on the standby's disk */
  watermark: number;
  /** the newest change number handed out */
  lastSeq: number;
  /** changes not yet on the standby (pending, in flight and held) */
  pending: number;
  oldestPendingAgeMs: number | null;
  lastPassAgeMs: number | null;
  lastFullPassAgeMs: number | null;
  passes: number;
  fullPasses: number;
  failedPasses: number;
  /** consecutive failures right now */
  failingFor: number;
  lastError: { message: string; ageMs: number } | null;
  bytesSent: number;
  filesSent: number;
  passDurationMs: { last: number | null; p50: number | null; p95: number | null; max: number | null };
  /** deletions the guard is holding until confirmed */
  held: { deletions: number; reason: string; ageMs: number } | null;
  /** files and folders the agent believes the workspace holds */
  treeEntries: number;
  /** the rsync versions of the last full reconcile's check, here and on the standby (null before it) */
  rsync: { here: string | null; standby: string | null };
  /** the epoch the proxy granted this host (null: not primary, or no proxy); what `standby verify` tells the receiver */
  epoch: number | null;
}

const EPOCH_STALE = 'STANDBY_ERR_EPOCH_STALE';
/** the receiver's refusals that mean this host must stop pushing: fenced, or its key revoked */
const FENCED_BY_STANDBY = /\[STANDBY_ERR_(EPOCH_STALE|HOST_REVOKED)\]/;

export interface PassEvent {
  full: boolean;
  ok: boolean;
  durationMs: number;
  watermark: number;
  filesSent: number;
  bytesSent: number;
  error?: string;
}

export interface ChangeEvent {
  seq: number;
  root: number;
  path: string;
  kind: ChangeKind;
  /** monotonic ms when the watcher reported it */
  at: number;
}

interface EngineEvents {
  change: [ChangeEvent];
  pass: [PassEvent];
  ready: [];
  held: [{ deletions: number; reason: string }];
}

const RECENT_PASSES = 200;
/**
 * A pass that deletes sends its other paths in the same run, as filter rules,
 * up to this many (one SSH session and receiver start less: 0.21 s a
 * pass through the standby's receiver). rsync matches every entry of each
 * folder it reads against every rule, so bigger batches take a --files-from
 * run, then a run for the deletions.
 */
const RULES_MAX = 1000;

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export class SyncEngine extends EventEmitter<EngineEvents> {
  readonly roots: readonly SyncRoot[];
  #config: AgentConfig;
  #log: Logger;
  #changes = new ChangeSet();
  #batcher: Batcher;
  #backoff: Backoff;
  #master: ControlMaster;
  #excludes: string[];
  #watches: RootWatch[] = [];
  #barrier: WatchBarrier | undefined;
  #phase: SyncPhase = 'starting';
  #ready = false;
  #closed = false;
  /** with a proxy configured, nothing is pushed until it grants primary: the epoch granted, or undefined */
  #epoch: number | undefined;
  readonly #gated: boolean;
  /** a sync-now request: the next pass starts without waiting for the batch delay */
  #urgent = false;
  #needFull = true;
  #deletesConfirmed = false;
  #passing: Promise<void> | undefined;
  #rsync: RsyncRun | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #fullTimer: NodeJS.Timeout | undefined;
  #lastPassAt: number | undefined;
  #lastFullAt: number | undefined;
  #lastError: { message: string; at: number } | undefined;
  #held: { deletions: number; reason: string; at: number } | undefined;
  #treeEntries = 0;
  #stats = { passes: 0, fullPasses: 0, failedPasses: 0, bytesSent: 0, filesSent: 0 };
  #durations: number[] = [];

  constructor(config: AgentConfig, log: Logger) {
    super();
    this.#config = config;
    this.#log = log;
    this.roots = syncRoots(config);
    this.#excludes = excludesOf(config);
    this.#batcher = new Batcher(config.sync.delayMs, config.sync.maxDelayMs, () => this.#kick());
    this.#backoff = new Backoff(config.sync.retryMinMs, config.sync.retryMaxMs);
    this.#master = new ControlMaster(config.standby, config.runDir, log);
    this.#gated = config.proxy !== undefined;
    this.#liveness = new PassLiveness(2 * config.sync.ioTimeoutS * 1000);
  }

  /** Whether passes may run: always without a proxy; with one, only while it grants primary. */
  get pushing(): boolean {
    return this.#refusedEpoch === undefined && (!this.#gated || this.#epoch !== undefined);
  }

  /** the epoch the standby's receiver refused (fenced by the standby): nothing more is pushed until a proxy grants a newer one */
  #refusedEpoch: number | undefined;
  #liveness: PassLiveness;

  get epoch(): number | undefined {
    return this.#epoch;
  }

  /**
   * The epoch the proxy last named, whatever the role: what a comparison the
   * proxy asks for (a dry run, it writes nothing) tells the receiver. A GPU
   * brought back for a switch-back is granted fenced at the current epoch, and
   * must compare its workspace with the standby's before it may push.
   */
  get toldEpoch(): number | undefined {
    return this.#epoch ?? this.#fencedLogged;
  }

  /**
   * The proxy's word: primary under `epoch` (push, and tell the standby's
   * receiver that epoch), or fenced (push nothing from now on; a pass in flight
   * is cut, and rsync's delayed renames mean it leaves no torn file).
   */
  grant(role: 'primary' | 'fenced', epoch: number, reason: string): void {
    if (role === 'primary') {
      if (this.#epoch === epoch) return; // (a refusal sets no epoch: see #onPassFailed)
      if (this.#refusedEpoch !== undefined && epoch <= this.#refusedEpoch) return; // the standby refused that one already
      this.#refusedEpoch = undefined;
      this.#epoch = epoch;
      this.#log.info({ epoch, reason }, 'granted primary: pushing to the standby');
      this.#kick();
      return;
    }
    if (this.#epoch === undefined && this.#fencedLogged === epoch) return;
    const wasPushing = this.#epoch !== undefined || !this.#gated;
    this.#epoch = undefined;
    this.#fencedLogged = epoch;
    const unsent = this.#changes.outstandingCount;
    this.#log.warn({ epoch, reason, unacknowledgedChanges: unsent, watermark: this.#changes.watermark, lastSeq: this.#changes.lastSeq }, wasPushing
      ? `fenced: pushing nothing more; ${unsent} changes here are not on the standby (reported, not pushed)`
      : 'not primary: pushing nothing until the proxy grants it');
    this.#rsync?.abort();
  }

  #fencedLogged: number | undefined;

  /** Runs a pass now and resolves once every change made before the call is on the standby's disk (or the pass failed). */
  async syncNow(timeoutMs: number): Promise<{ ok: boolean; watermark: number; error: string | null }> {
    const started = performance.now();
    // a write that finished just before the call may have its event still unread: let the watcher catch up first
    const barrierMs = Math.min(1_000, timeoutMs / 2);
    const behind = this.#barrier ? await this.#barrier.pass(barrierMs) : 'not watching yet';
    if (behind !== null && this.#barrier) this.#log.warn({ why: behind }, 'sync-now: could not make sure the watcher has seen every earlier write; the pass covers what it has seen');
    const target = this.#changes.lastSeq;
    timeoutMs = Math.max(0, timeoutMs - (performance.now() - started));
    return new Promise((resolve) => {
      const done = (r: { ok: boolean; watermark: number; error: string | null }) => {
        clearTimeout(timer);
        this.off('pass', onPass);
        resolve(r);
      };
      const onPass = (e: PassEvent) => {
        if (!e.ok) done({ ok: false, watermark: e.watermark, error: e.error ?? 'pass failed' });
        else if (this.#changes.watermark >= target) done({ ok: true, watermark: this.#changes.watermark, error: null });
      };
      const timer = setTimeout(() => done({ ok: false, watermark: this.#changes.watermark, error: `no pass within ${timeoutMs} ms` }), timeoutMs);
      this.on('pass', onPass);
      if (!this.pushing) return done({ ok: false, watermark: this.#changes.watermark, error: 'not primary: this agent may not push' });
      if (this.#changes.watermark >= target && !this.#passing) return done({ ok: true, watermark: this.#changes.watermark, error: null });
      this.#urgent = true;
      this.#kick();
    });
  }

  /** Sets the watches, then runs the first full reconcile in the background; resolves once watching. */
  async start(): Promise<void> {
    const excluded = excludeMatcher(this.#excludes);
    for (const [i, root] of this.roots.entries()) {
      const w = await watchRoot(i, root.local, excluded, {
        change: (r, path, kind) => this.#onChange(r, path, kind),
        error: (err) => this.#onWatchError(err),
      });
      if (this.#closed) {
        await w.close();
        return;
      }
      this.#watches.push(w);
    }
    try {
      this.#barrier = createWatchBarrier();
    } catch (err) {
      this.#log.warn({ err }, 'no watch barrier (the temp folder is not writable?): a sync-now covers the writes the watcher has seen when it comes');
    }
    this.#log.info({ roots: this.roots }, 'watching; starting the first full reconcile');
    this.#kick();
  }

  /** Resolves when the first full reconcile has landed. */
  whenReady(): Promise<void> {
    if (this.#ready) return Promise.resolve();
    return new Promise((resolve) => this.once('ready', resolve));
  }

  get watermark(): number {
    return this.#changes.watermark;
  }

  get lastSeq(): number {
    return this.#changes.lastSeq;
  }

  /** Asks for a full reconcile as soon as the current pass ends. */
  requestFullResync(reason: string): void {
    this.#log.info({ reason }, 'full reconcile requested');
    this.#needFull = true;
    this.#kick();
  }

  /** Applies the deletions the guard held, in a full reconcile that skips the guard once. */
  confirmDeletes(): { deletions: number } {
    const deletions = this.#held?.deletions ?? 0;
    this.#deletesConfirmed = true;
    this.#held = undefined;
    this.#log.warn({ deletions }, 'deletions confirmed: applying them in a full reconcile');
    this.requestFullResync('deletions confirmed');
    return { deletions };
  }

  status(): SyncStatus {
    const now = performance.now();
    const oldest = this.#changes.oldestOutstandingAt;
    const sorted = [...this.#durations].sort((a, b) => a - b);
    return {
      hostId: this.#config.hostId,
      ready: this.#ready,
      phase: this.#phase,
      watermark: this.#changes.watermark,
      lastSeq: this.#changes.lastSeq,
      pending: this.#changes.outstandingCount,
      oldestPendingAgeMs: oldest === undefined ? null : Math.round(now - oldest),
      lastPassAgeMs: this.#lastPassAt === undefined ? null : Math.round(now - this.#lastPassAt),
      lastFullPassAgeMs: this.#lastFullAt === undefined ? null : Math.round(now - this.#lastFullAt),
      ...this.#stats,
      failingFor: this.#backoff.attempts,
      lastError: this.#lastError ? { message: this.#lastError.message, ageMs: Math.round(now - this.#lastError.at) } : null,
      passDurationMs: {
        last: this.#durations.length > 0 ? Math.round(this.#durations[this.#durations.length - 1]!) : null,
        p50: percentile(sorted, 50),
        p95: percentile(sorted, 95),
        max: sorted.length > 0 ? sorted[sorted.length - 1]! : null,
      },
      held: this.#held ? { deletions: this.#held.deletions, reason: this.#held.reason, ageMs: Math.round(now - this.#held.at) } : null,
      treeEntries: this.#treeEntries,
      rsync: { here: this.#rsyncVersions.here ?? null, standby: this.#rsyncVersions.standby ?? null },
      epoch: this.#epoch ?? null,
    };
  }

  /** Stops watching, cancels the pass in flight (rsync lands files atomically, so a cut pass leaves no torn file) and closes ssh. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#phase = 'stopped';
    this.#batcher.clear();
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    if (this.#fullTimer) clearTimeout(this.#fullTimer);
    this.#rsync?.abort();
    await Promise.all(this.#watches.map((w) => w.close()));
    this.#barrier?.close();
    await this.#passing;
    await this.#master.close();
  }

  /** Waits for the pass in flight, if any (tests and drains). */
  async settled(): Promise<void> {
    await this.#passing;
  }

  #onChange(root: number, path: string, kind: ChangeKind): void {
    const seq = this.#changes.record(root, path, kind);
    this.#treeEntries += isDeletion(kind) ? -1 : kind === 'change' ? 0 : 1;
    if (this.listenerCount('change') > 0) this.emit('change', { seq, root, path, kind, at: performance.now() });
    this.#batcher.touch();
  }

  #onWatchError(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC') {
      this.#log.error({ err }, 'out of inotify watches: changes may go unseen until the next full reconcile; raise the limit: sysctl -w fs.inotify.max_user_watches=1048576 (and persist it in /etc/sysctl.d/)');
    } else {
      this.#log.warn({ err }, 'watcher error: running a full reconcile so nothing is missed');
    }
    this.requestFullResync(`watcher error ${code ?? err.message}`);
  }

  /** Starts a pass if one is wanted and none is running or backing off. */
  #kick(): void {
    if (this.#closed || this.#passing || this.#retryTimer || !this.pushing) return;
    const full = this.#needFull;
    if (!full && this.#changes.pendingCount === 0) return;
    if (!full && !this.#urgent) {
      const due = this.#batcher.dueAt;
      if (due !== undefined && due > performance.now()) {
        this.#batcher.poke();
        return;
      }
    }
    this.#batcher.taken();
    this.#urgent = false;
    // held deletions rejoin the batch once confirmed (a pass in flight may still have been adding to them)
    if (full && this.#deletesConfirmed) this.#changes.release();
    const batch = this.#changes.take(full);
    if (full) this.#needFull = false;
    this.#phase = 'syncing';
    this.#passing = this.#runPass(batch).finally(() => {
      this.#passing = undefined;
      if (this.#closed) return;
      if (this.#phase === 'syncing') this.#phase = 'idle';
      if (this.#needFull) return this.#kick();
      // changes put back by the pass (vanished files) start a batch of their own
      if (this.#changes.pendingCount > 0 && this.#batcher.dueAt === undefined) this.#batcher.touch();
      this.#batcher.poke();
    });
  }

  async #runPass(batch: Batch): Promise<void> {
    const started = performance.now();
    this.#master.ensure();
    let filesSent = 0;
    let bytesSent = 0;
    try {
      const hold = batch.full ? await this.#fullPass(batch) : await this.#incrementalPass(batch);
      for (const r of hold.results) {
        filesSent += r.stats.filesTransferred;
        bytesSent += r.stats.bytesSent;
      }
      this.#changes.complete(batch, hold.held, this.#vanished(batch, hold.results));
      this.#onPassOk(batch, started, filesSent, bytesSent);
    } catch (err) {
      this.#changes.fail(batch);
      if (batch.full) this.#needFull = true;
      this.#onPassFailed(batch, started, err);
    }
  }

  #onPassOk(batch: Batch, started: number, filesSent: number, bytesSent: number): void {
    const now = performance.now();
    const durationMs = now - started;
    this.#lastPassAt = now;
    this.#stats.passes++;
    this.#stats.filesSent += filesSent;
    this.#stats.bytesSent += bytesSent;
    this.#durations.push(durationMs);
    if (this.#durations.length > RECENT_PASSES) this.#durations.shift();
    if (!batch.full) this.#batcher.passEstimateMs = this.#passEstimate(durationMs);
    if (this.#backoff.attempts > 0) {
      this.#log.info({ failedAttempts: this.#backoff.attempts, downForMs: this.#lastError ? Math.round(now - this.#lastError.at) : null }, 'standby reachable again; reconciling the whole tree');
      this.#backoff.reset();
      this.#needFull = !batch.full; // clean up whatever the failed passes left half-done
    }
    if (batch.full) {
      this.#stats.fullPasses++;
      this.#lastFullAt = now;
      this.#scheduleNextFull();
      if (!this.#ready) {
        this.#ready = true;
        this.#log.info({ durationMs: Math.round(durationMs), entries: this.#treeEntries }, 'first full reconcile done: standby in sync');
        this.emit('ready');
      }
    }
    this.#log.debug({ full: batch.full, changes: batch.changes.length, durationMs: Math.round(durationMs), filesSent, bytesSent, watermark: this.#changes.watermark }, 'pass done');
    this.emit('pass', { full: batch.full, ok: true, durationMs, watermark: this.#changes.watermark, filesSent, bytesSent });
  }

  #onPassFailed(batch: Batch, started: number, err: unknown): void {
    if (this.#closed) return; // cancelled by close(): not a failure
    if (!this.pushing) return; // cut by a fence: the changes wait, nothing is retried until granted again
    const message = err instanceof Error ? err.message : String(err);
    this.#stats.failedPasses++;
    const first = this.#backoff.attempts === 0;
    const changed = this.#lastError?.message !== message;
    // an rsync missing or too old on either end: no pass can succeed until someone installs one, so none is tried;
    // the standby is checked again at the slowest retry pace (installing rsync there resumes sync, no restart needed)
    const cannot = err instanceof StandbyError && (err.code === 'STANDBY_ERR_RSYNC_UNSUPPORTED' || err.code === 'STANDBY_ERR_MISSING_BINARY');
    const delay = cannot ? (this.#backoff.next(), this.#config.sync.retryMaxMs) : this.#backoff.next();
    if (first || changed) {
      // once per change of state, not per attempt
      if (cannot) this.#log.fatal({ err: message, pending: this.#changes.outstandingCount, checkAgainInMs: delay }, `sync cannot run: ${message}`);
      else this.#log.error({ err: message, pending: this.#changes.outstandingCount, retryInMs: delay }, first ? 'sync failing: keeping every change and retrying with backoff' : 'sync still failing, for another reason');
    }
    this.#lastError = { message, at: performance.now() };
    // Fenced by the standby itself (the proxy's word may not reach this host): stop pushing, no retry.
    const refused = err instanceof StandbyError && err.code === EPOCH_STALE;
    if (refused) {
      this.#refusedEpoch = this.#epoch ?? 0;
      this.grant('fenced', this.#epoch ?? 0, 'the standby refused this epoch: a newer one fenced it');
      this.#backoff.reset();
    }
    this.#phase = refused ? 'idle' : 'retrying';
    this.emit('pass', { full: batch.full, ok: false, durationMs: performance.now() - started, watermark: this.#changes.watermark, filesSent: 0, bytesSent: 0, error: message });
    if (refused) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#kick();
    }, delay);
  }

  /** a smoothed pass time (incremental passes only: full ones are not what a batch waits for) */
  #passEstimate(latest: number): number {
    const prev = this.#batcher.passEstimateMs;
    return prev === 0 ? latest : 0.7 * prev + 0.3 * latest;
  }

  /** Changes whose file vanished while rsync sent the pass: not on the standby, so not acknowledged (a later event covers the path). */
  #vanished(batch: Batch, results: RsyncResult[]): Change[] {
    const gone = new Set<string>();
    for (const r of results) {
      for (const abs of r.vanished) {
        const root = this.roots.findIndex((x) => abs.startsWith(asDir(x.local)));
        if (root >= 0) gone.add(`${root}\0${abs.slice(asDir(this.roots[root]!.local).length)}`);
      }
    }
    if (gone.size === 0) return [];
    return batch.changes.filter((c) => gone.has(`${c.root}\0${c.path}`));
  }

  /** The listed paths rsync found missing, relative to the root; every listed path when one does not map back (sending or deleting one more is harmless). */
  #goneFrom(result: RsyncResult, root: SyncRoot, listed: readonly string[]): string[] {
    const prefix = asDir(root.local);
    const rel = result.missing.map((abs) => (abs.startsWith(prefix) ? abs.slice(prefix.length) : undefined));
    const known = new Set(listed);
    return rel.every((p) => p !== undefined && known.has(p)) ? (rel as string[]) : [...listed];
  }

  #scheduleNextFull(): void {
    if (this.#fullTimer) clearTimeout(this.#fullTimer);
    const s = this.#config.sync.fullResyncS;
    if (s <= 0) return;
    this.#fullTimer = setTimeout(() => {
      this.#fullTimer = undefined;
      this.requestFullResync('periodic');
    }, s * 1000);
    this.#fullTimer.unref();
  }

  #baseArgs(): string[] {
    const s = this.#config.sync;
    const args = [
      '-a',
      '--delay-updates', // files land at the end of the pass, never half-written in place
      `--timeout=${s.ioTimeoutS}`,
      '--stats',
      '-e', rsyncShell(this.#config.standby, this.#master.running ? this.#master.path : undefined),
      ...excludeArgs(this.#excludes),
    ];
    const rsyncPath = this.#config.standby.rsyncPath ?? 'rsync';
    // Under a proxy the standby's receiver checks the writer's epoch, given as an env assignment
    // (a plain sshd runs it as one too).
    if (this.#epoch !== undefined) args.push(`--rsync-path=${EPOCH_VAR}=${this.#epoch} ${rsyncPath}`);
    else if (this.#config.standby.rsyncPath) args.push(`--rsync-path=${rsyncPath}`);
    return args;
  }

  async #runRsync(args: string[], stdin?: Buffer): Promise<RsyncResult> {
    const run = runRsync(args, stdin ? { stdin } : {});
    this.#rsync = run;
    this.#liveness.track(run.pid);
    try {
      return await run.result;
    } finally {
      this.#rsync = undefined;
      this.#liveness.track(undefined);
    }
  }

  /** The loop is doing its work: idle, or its rsync moving data (see liveness.ts); systemd's watchdog asks. */
  alive(): boolean {
    return !this.#closed && this.#liveness.alive();
  }

  /**
   * Makes what a pass wrote durable before it counts: one syncfs of the root's
   * filesystem on the standby. It covers the files and the renames --delay-updates
   * makes at the end, at a fraction of the cost of rsync's per-file --fsync.
   */
  async #flush(root: SyncRoot): Promise<void> {
    const control = this.#master.running ? this.#master.path : undefined;
    const { code, stderr } = await runRemote(this.#config.standby, control, ['sync', '-f', root.remote], this.#config.sync.ioTimeoutS * 1000, this.#epochEnv());
    if (FENCED_BY_STANDBY.test(stderr)) throw this.#refusedError(stderr);
    if (code !== 0) {
      throw new StandbyError('STANDBY_ERR_RSYNC_FAILED', `flushing ${root.remote} to disk on the standby failed (${code === null ? 'timed out' : `exit ${code}`})${stderr ? `: ${stderr}` : ''}`, { code });
    }
  }

  /**
   * Before each full reconcile (at start, after failures, periodically: the
   * standby may have been replaced): both ends run an rsync sync works with, and every
   * root's folder exists there. Folders are made with `mkdir -p` because
   * receivers before rsync 3.2.3 lack --mkpath; the standby's receiver checks
   * it like a write (inside a root, epoch, lock).
   */
  async #prepareStandby(): Promise<void> {
    const target = this.#config.standby;
    const control = this.#master.running ? this.#master.path : undefined;
    const env = this.#epochEnv();
    const timeoutMs = this.#config.sync.ioTimeoutS * 1000;
    const [here, standby] = await Promise.all([localRsyncVersion(), standbyRsyncVersion(target, control, timeoutMs, env)]);
    const known = this.#rsyncVersions;
    if (known.here !== here.version || known.standby !== standby.version) this.#log.info({ here: here.version, standby: standby.version }, `rsync ${here.version} here, ${standby.version} on the standby`);
    this.#rsyncVersions = { here: here.version, standby: standby.version };
    const made = await runRemote(target, control, ['mkdir', '-p', ...this.roots.map((r) => r.remote)], timeoutMs, env);
    if (FENCED_BY_STANDBY.test(made.stderr)) throw this.#refusedError(made.stderr);
    if (made.code !== 0) {
      throw new StandbyError('STANDBY_ERR_RSYNC_FAILED', `creating the sync folders on the standby failed (${made.code === null ? 'timed out' : `exit ${made.code}`})${made.stderr ? `: ${made.stderr}` : ''}`, { code: made.code });
    }
  }

  #rsyncVersions: { here?: string; standby?: string } = {};

  /** how a remote command names this writer's epoch to the standby's receiver (a plain sshd's shell takes it too) */
  #epochEnv(): Record<string, string> {
    return this.#epoch === undefined ? {} : { [EPOCH_VAR]: String(this.#epoch) };
  }

  #refusedError(stderr: string): StandbyError {
    const why = stderr.includes('[STANDBY_ERR_HOST_REVOKED]') ? "this host's key was revoked (fenced by a failover, or removed by the admin)" : 'it was fenced under a newer one';
    return new StandbyError('STANDBY_ERR_EPOCH_STALE', `the standby refused this agent's epoch ${this.#epoch ?? 0}: ${why} [${EPOCH_STALE}]`, { epoch: this.#epoch });
  }

  #check(result: RsyncResult, what: string): RsyncResult {
    if (RSYNC_OK.has(result.code ?? -1)) return result;
    // the standby's receiver refused this writer's epoch (rsync's own exit code varies with timing)
    if (FENCED_BY_STANDBY.test(result.stderr)) throw this.#refusedError(result.stderr);
    const tail = result.stderr.split('\n').filter((l) => l.trim()).slice(-3).join(' | ');
    throw new StandbyError('STANDBY_ERR_RSYNC_FAILED', `${what} failed: ${describeExit(result.code, result.signal)}${tail ? ` (${tail})` : ''}`, { code: result.code, signal: result.signal });
  }

  #guardTrips(deletions: number, entriesBefore: number): boolean {
    const g = this.#config.sync.deleteGuard;
    return !this.#deletesConfirmed && deletions >= g.minFiles && deletions > g.fraction * entriesBefore;
  }

  #hold(deletions: number, reason: string): void {
    const total = (this.#held?.deletions ?? 0) + deletions;
    this.#held = { deletions: total, reason, at: this.#held?.at ?? performance.now() };
    this.#log.warn({ deletions, reason }, 'held a pass that would delete most of the standby copy; nothing was deleted. If it is intended, run: standby sync --confirm-deletes');
    this.emit('held', { deletions, reason });
  }

  async #incrementalPass(batch: Batch): Promise<{ results: RsyncResult[]; held: Change[] }> {
    let deletions = 0;
    for (const c of batch.changes) if (isDeletion(c.kind)) deletions++;
    let held: Change[] = [];
    let send: readonly Change[] = batch.changes;
    if (deletions > 0 && this.#guardTrips(deletions, this.#treeEntries + deletions)) {
      held = batch.changes.filter((c) => isDeletion(c.kind));
      send = batch.changes.filter((c) => !isDeletion(c.kind));
      this.#hold(deletions, `${deletions} of about ${this.#treeEntries + deletions} files deleted in the workspace`);
    }
    const results: RsyncResult[] = [];
    for (const [i, root] of this.roots.entries()) {
      const mine = send.filter((c) => c.root === i);
      const plan = planPass(mine);
      if (plan.entries === 0 && plan.deletions === 0) continue;
      let deleting = plan.deletions > 0;
      const deleted = mine.filter((c) => isDeletion(c.kind));
      if (deleting && !this.#deletesConfirmed && deleted.some((c) => c.kind === 'unlinkDir')) {
        // A folder's deletion takes all it held, which the watcher did not count:
        // rsync counts it first, in a dry run of the deletions.
        const dry = this.#check(await this.#runRsync([...this.#rulesArgs(root), '--dry-run'], plan.deletionRules), `counting the deletions in ${root.local}`);
        const count = dry.stats.filesDeleted;
        const before = this.#treeEntries + deleted.length; // the watcher took one entry off per deleted path
        if (this.#guardTrips(count, before)) {
          held = [...held, ...deleted];
          this.#hold(count, `${count} of about ${before} files deleted in ${root.local} (folders among them)`);
          deleting = false;
        } else {
          this.#treeEntries -= count - deleted.length;
        }
      }
      if (deleting && plan.entries <= RULES_MAX) {
        // one run for everything: what is here is sent, what is gone goes (a path deleted since it was seen included)
        results.push(this.#check(await this.#runRsync(this.#rulesArgs(root), plan.rules), `pass of ${plan.entries + plan.deletions} paths in ${root.local}`));
      } else {
        let gone: string[] = [];
        if (plan.entries > 0) {
          const sent = await this.#runRsync(this.#transferArgs(root), plan.list);
          // listed paths deleted since they were seen: rsync sent everything else, and the run below
          // takes them (gone for good: deleted on the standby; back by then: sent as they are)
          if (onlyMissing(sent)) gone = this.#goneFrom(sent, root, plan.paths);
          results.push(gone.length > 0 ? sent : this.#check(sent, `incremental pass of ${plan.entries} paths in ${root.local}`));
        }
        // what is new or changed landed first, then what is gone goes: a rename never leaves the standby with neither name
        if (deleting || gone.length > 0) {
          const rules = filterRules(deleting ? plan.deleted : [], gone);
          results.push(this.#check(await this.#runRsync(this.#rulesArgs(root), rules), `deleting ${deleting ? plan.deletions : 0} paths (and ${gone.length} gone since they were seen) in ${root.local}`));
        }
      }
      await this.#flush(root);
    }
    return { results, held };
  }

  #transferArgs(root: SyncRoot): string[] {
    return [
      ...this.#baseArgs(),
      '-r', // listed folders that are new are sent whole
      '--files-from=-',
      '--from0',
      '--force',
      '--delete', // a new folder sent whole mirrors exactly
      '--ignore-times', // compare content of the listed paths: a same-size rewrite in the same second must go
      asDir(root.local),
      remoteDir(this.#config.standby, root.remote),
    ];
  }

  /**
   * Makes the standby match this host for the paths the filter rules on stdin
   * name (pass-plan.ts), and nothing else: deletes what is gone here, sends
   * what is here (content compared). A deleted path that is back by now is
   * sent as it is, so the standby never keeps a version older than the
   * deletion it acknowledges.
   */
  #rulesArgs(root: SyncRoot): string[] {
    return [
      ...this.#baseArgs(), // the user's excludes come first, so what they exclude stays protected
      '--delete',
      '--force',
      '--ignore-times',
      '--from0',
      '--include-from=-',
      '--exclude=*',
      asDir(root.local),
      remoteDir(this.#config.standby, root.remote),
    ];
  }

  async #fullPass(batch: Batch): Promise<{ results: RsyncResult[]; held: Change[] }> {
    await this.#prepareStandby();
    const results: RsyncResult[] = [];
    let entries = 0;
    let heldHere = 0;
    for (const root of this.roots) {
      const args = [...this.#baseArgs(), '--delete', '--delete-delay', asDir(root.local), remoteDir(this.#config.standby, root.remote)];
      const guarded = !this.#deletesConfirmed;
      // First without deleting anything: rsync counts what it would delete, so the guard can decide before any is gone.
      const first = await this.#runRsync(guarded ? [...args, '--max-delete=0'] : args);
      if (first.code === RSYNC_MAX_DELETE) {
        const skipped = first.stats.deletionsSkipped;
        const before = first.stats.files + skipped;
        if (this.#guardTrips(skipped, before)) {
          heldHere += skipped;
          this.#hold(skipped, `the standby holds ${skipped} entries of about ${before} that ${root.local} no longer has`);
          results.push(first);
          await this.#flush(root);
          entries += first.stats.files;
          continue;
        }
        results.push(this.#check(await this.#runRsync(args), `full reconcile of ${root.local}`));
      } else {
        results.push(this.#check(first, `full reconcile of ${root.local}`));
      }
      await this.#flush(root);
      entries += first.stats.files;
    }
    this.#treeEntries = entries;
    this.#deletesConfirmed = false;
    if (heldHere === 0) {
      if (this.#held?.reason.startsWith('the standby holds')) this.#held = undefined;
      return { results, held: [] };
    }
    return { results, held: batch.changes.filter((c) => isDeletion(c.kind)) };
  }
}
