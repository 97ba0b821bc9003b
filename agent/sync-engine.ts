// The sync engine: watch -> batch -> pass -> acknowledge or retry, one pass at
// a time. It owns the watches (workspace-watch.ts), its timers and the standby session
// (standby-push.ts); close() ends them all. When a pass is due is batcher.ts's
// call; whether it may push, push-gate.ts's; what a pass runs, sync-pass.ts;
// what may be deleted, delete-guard.ts; the status answer, sync-status.ts.
import { EventEmitter } from 'node:events';
import { StandbyError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { Backoff } from '../core/backoff.ts';
import { editorRoots, excludesOf, localRoots, syncRoots, type AgentConfig, type SyncRoot } from '../config/agent.ts';
import type { ConfirmDeletesAnswer, SyncPhase, SyncStatus } from '../protocol/agent-status.ts';
import type { PushedSettings, PushTarget } from '../protocol/messages.ts';
import { Batcher } from './batcher.ts';
import { ChangeSet, type Batch, type ChangeKind } from './change-set.ts';
import { copyConflicts, type ConflictsOutcome } from './conflicts.ts';
import { DeleteGuard } from './delete-guard.ts';
import { PushGate } from './push-gate.ts';
import { PassProgress } from './pass-progress.ts';
import { sameTarget, standbyDestination, targetDestination, type Destination } from './push-destination.ts';
import { DestinationEnded, isRefusal, StandbyPush } from './standby-push.ts';
import { fullPass, incrementalPass, type PassParts } from './sync-pass.ts';
import { PassStats, syncStatus } from './sync-status.ts';
import { WorkspaceWatch, type WatchListener } from './workspace-watch.ts';

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

export class SyncEngine extends EventEmitter<EngineEvents> {
  /** the folders synced from this host (what is watched) */
  readonly roots: readonly Pick<SyncRoot, 'local' | 'include'>[];
  /** agent.json's settings */
  #own: AgentConfig;
  /** the settings in force: agent.json's, with the sync settings the proxy pushed over them (applySettings) */
  #config: AgentConfig;
  /** the exclude patterns in force (defaults and the user's), what the watcher and every rsync run use */
  #excludes: string[];
  /** some of the sync settings in force came from the proxy */
  #pushed = false;
  /** what the watch tells (set by start()): a watch made anew for other excludes tells it too */
  #listener: WatchListener | undefined;
  /** a watch being made anew for other excludes (close() waits for it) */
  #rewatching: Promise<void> = Promise.resolve();
  #copyingConflicts = false;
  #log: Logger;
  #changes = new ChangeSet();
  #batcher: Batcher;
  #backoff: Backoff;
  /** the session with where passes go now; undefined: nowhere (no standby section, no target granted) */
  #push: StandbyPush | undefined;
  /** the roots as the current destination takes them */
  #roots: SyncRoot[] = [];
  /** where code-server's roots start in #roots (its length: none) */
  #editorFrom = 0;
  /** why the destination's receiver does not take code-server's roots (a full pass found it); undefined: it does, or not known yet */
  #editorOff: string | undefined;
  /** the target the proxy granted (undefined: the configured standby) */
  #target: PushTarget | undefined;
  #targetKeys = '';
  /** the last failure to take up a target (logged once) */
  #retargetError: string | undefined;
  /** monotonic ms when the current destination was taken up after another (undefined: the one the agent started with) */
  #destinationSince: number | undefined;
  /** counts destination changes: a pass that began under an older one no longer counts */
  #generation = 0;
  /** sessions with given-up destinations, ending (their pass cut, then ssh closed) */
  #retiring = new Set<Promise<void>>();
  #guard: DeleteGuard;
  #gate: PushGate;
  #stats = new PassStats();
  #watch: WorkspaceWatch;
  #phase: SyncPhase = 'starting';
  #ready = false;
  #closed = false;
  #needFull = true;
  #passing: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #fullTimer: NodeJS.Timeout | undefined;

  constructor(config: AgentConfig, log: Logger) {
    super();
    this.#own = config;
    this.#config = config;
    this.#excludes = excludesOf(config);
    this.#log = log;
    this.roots = localRoots(config);
    this.#watch = new WorkspaceWatch(this.roots, this.#excludes, log);
    this.#batcher = new Batcher(config.sync.delayMs, config.sync.maxDelayMs, () => this.#kick());
    this.#backoff = new Backoff(config.sync.retryMinMs, config.sync.retryMaxMs);
    this.#gate = new PushGate(config.proxy !== undefined);
    const standby = standbyDestination(config);
    if (standby) {
      this.#push = new StandbyPush(config, standby, log, () => this.#gate.epoch, () => this.#excludes);
      this.#setRoots(syncRoots(config, standby.ssh.path));
    }
    this.#guard = new DeleteGuard(config.sync.deleteGuard, log, (held) => this.emit('held', held));
  }

  /** The settings in force: agent.json's with the sync settings the proxy pushed over them (verify compares with these). */
  get config(): AgentConfig {
    return this.#config;
  }

  /**
   * The sync settings the proxy pushes with its grants (grant.settings): delayMs, maxDelayMs and exclude
   * over agent.json's, applied without a restart; a field absent (or no settings at all) is agent.json's
   * own again. maxDelayMs is raised to delayMs when below it. New delays apply to the batch open now; new
   * excludes get a watch made anew, and when one is removed, a full pass sends what it kept out (an added
   * one deletes nothing on the standby: rsync never deletes what is excluded there).
   */
  applySettings(pushed: PushedSettings | undefined): void {
    const own = this.#own.sync;
    const delayMs = pushed?.delayMs ?? own.delayMs;
    const maxDelayMs = Math.max(pushed?.maxDelayMs ?? own.maxDelayMs, delayMs);
    const exclude = pushed?.exclude ? [...pushed.exclude] : own.exclude;
    this.#pushed = pushed !== undefined && (pushed.delayMs !== undefined || pushed.maxDelayMs !== undefined || pushed.exclude !== undefined);
    const was = this.#config.sync;
    const delays = delayMs !== was.delayMs || maxDelayMs !== was.maxDelayMs;
    const excludes = JSON.stringify(exclude) !== JSON.stringify(was.exclude);
    if (!delays && !excludes) return;
    this.#config = { ...this.#config, sync: { ...was, delayMs, maxDelayMs, exclude } };
    if (delays) {
      this.#batcher.setDelays(delayMs, maxDelayMs);
      this.#log.info({ delayMs, maxDelayMs, was: { delayMs: was.delayMs, maxDelayMs: was.maxDelayMs }, from: this.#pushed ? 'proxy' : 'agent.json' }, `sync delays now ${delayMs} ms quiet, ${maxDelayMs} ms at most`);
    }
    if (excludes) this.#excludesChanged(was.exclude, exclude);
  }

  #excludesChanged(before: readonly string[], after: readonly string[]): void {
    this.#excludes = excludesOf(this.#config);
    const removed = before.filter((p) => !after.includes(p));
    const added = after.filter((p) => !before.includes(p));
    this.#log.info({ added, removed, from: this.#pushed ? 'proxy' : 'agent.json' }, 'exclude patterns changed: watching anew with them');
    // the new watch is set before the old one goes: no change falls between the two (one seen twice counts once)
    const listener = this.#listener;
    if (listener) {
      this.#rewatching = this.#rewatching.then(async () => {
        if (this.#closed) return;
        const next = new WorkspaceWatch(this.roots, this.#excludes, this.#log);
        const old = this.#watch;
        this.#watch = next;
        const watching = await next.start(listener).catch((err: unknown) => {
          this.#log.error({ err }, 'watching with the new exclude patterns failed: a full reconcile sends whatever was missed');
          return false;
        });
        if (!watching || this.#closed) await next.close();
        await old.close();
        if (!watching && !this.#closed) this.requestFullResync('the watch with new exclude patterns failed');
      });
    } else {
      this.#watch = new WorkspaceWatch(this.roots, this.#excludes, this.#log);
    }
    // what a removed pattern kept out was never sent: a full pass sends it
    if (removed.length > 0) this.requestFullResync(`exclude pattern(s) removed (${removed.join(', ')}): sending what they kept out`);
  }

  /** Whether passes may run: always without a proxy; with one, only while it grants primary; and only with somewhere to push. */
  get pushing(): boolean {
    return this.#gate.pushing && this.#push !== undefined;
  }

  /** where passes go now (undefined: nowhere) */
  get destination(): Destination | undefined {
    return this.#push?.destination;
  }

  get epoch(): number | undefined {
    return this.#gate.epoch;
  }

  /**
   * The epoch the proxy last named, whatever the role: what a comparison the
   * proxy asks for (a dry run, it writes nothing) tells the receiver. A GPU
   * brought back for a switch-back is granted fenced at the current epoch, and
   * must compare its workspace with the standby's before it may push.
   */
  get toldEpoch(): number | undefined {
    return this.#gate.toldEpoch;
  }

  /**
   * The proxy's word: primary under `epoch` (push, and tell the standby's
   * receiver that epoch), or fenced (push nothing from now on; a pass in flight
   * is cut, and rsync's temp-then-rename means it leaves no torn file).
   */
  grant(role: 'primary' | 'fenced', epoch: number, reason: string, target?: PushTarget): void {
    // primary names where to push: `target`, or without one the configured standby
    const moved = role === 'primary' && this.#retarget(target, epoch, reason);
    const change = this.#gate.grant(role, epoch);
    if (!change) {
      if (moved) this.#kick();
      return;
    }
    if (change.now === 'primary') {
      if (this.#push) this.#log.info({ epoch, reason, destination: this.#push.destination.label }, `granted primary: pushing to ${this.#push.destination.label}`);
      else this.#log.warn({ epoch, reason }, 'granted primary, but there is nowhere to push: agent.json has no standby section and the grant names no target; pushing nothing until the proxy grants a target');
      this.#kick();
      return;
    }
    const outstanding = this.#changes.outstandingCount;
    this.#log.warn({ epoch, reason, outstandingPaths: outstanding, watermark: this.#changes.watermark, lastSeq: this.#changes.lastSeq }, change.wasPushing
      ? `fenced: pushing nothing more; ${outstanding} changes here are not on the standby (reported, not pushed)`
      : 'not primary: pushing nothing until the proxy grants it');
    this.#push?.abort();
  }

  /**
   * Makes `target` (undefined: the configured standby) where passes go.
   * Returns false when it already is. A change ends the old destination (its
   * pass in flight cut: each file that landed there is whole, and
   * no later run of that pass starts) and starts afresh: new change numbers,
   * stats and guard (watermark and ready describe the new destination only),
   * then a full pass to it, then incremental passes as usual.
   */
  #retarget(target: PushTarget | undefined, epoch: number, reason: string): boolean {
    // (a target that could not be taken up is tried again at the next grant)
    if (sameTarget(this.#target, target) && !(target && !this.#push)) {
      const keys = JSON.stringify(target?.knownHosts ?? []);
      if (target && keys !== this.#targetKeys) {
        try {
          targetDestination(this.#config, target, { fresh: false }); // the same receiver's keys, listed anew
          this.#targetKeys = keys;
        } catch (err) {
          this.#log.error({ err: (err as Error).message, target: target.id }, `cannot write the host keys the proxy now lists for target ${target.id}: keeping the ones written before`);
        }
      }
      return false;
    }
    const old = this.#push;
    const from = old?.destination.label ?? 'nowhere';
    this.#generation++;
    if (old) {
      old.end();
      const passing = this.#passing;
      const ending: Promise<void> = (async () => {
        await passing;
        await old.close();
      })().finally(() => this.#retiring.delete(ending));
      this.#retiring.add(ending);
    }
    this.#target = target;
    this.#targetKeys = JSON.stringify(target?.knownHosts ?? []);
    let destination: Destination | undefined;
    try {
      destination = target ? targetDestination(this.#config, target, { fresh: true }) : standbyDestination(this.#config);
    } catch (err) {
      // an address ssh would misread, or its known_hosts not written (run folder full, not writable): pushing there unverified is not an option
      const message = (err as Error).message;
      if (message !== this.#retargetError) this.#log.error({ err: message, target: target?.id }, `cannot take up target ${target?.id}: ${message}; pushing nothing, trying again at the next grant`);
      this.#retargetError = message;
    }
    if (destination) this.#retargetError = undefined;
    this.#push = destination ? new StandbyPush(this.#config, destination, this.#log, () => this.#gate.epoch, () => this.#excludes) : undefined;
    this.#setRoots(destination ? syncRoots(this.#config, destination.ssh.path, destination.editor) : []);
    this.#destinationSince = performance.now();
    // the numbers start afresh: nothing is known to be at the new destination
    this.#changes = new ChangeSet();
    this.#stats = new PassStats();
    // why nothing is pushed goes out as the heartbeat's lastError
    if (target && !destination && this.#retargetError) this.#stats.lastError = { message: `cannot take up target ${target.id}: ${this.#retargetError}`, at: performance.now() };
    const entries = this.#guard.treeEntries;
    this.#guard = new DeleteGuard(this.#config.sync.deleteGuard, this.#log, (held) => this.emit('held', held));
    this.#guard.treeEntries = entries;
    this.#backoff.reset();
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    if (this.#fullTimer) clearTimeout(this.#fullTimer);
    this.#fullTimer = undefined;
    this.#batcher.clear();
    this.#gate.retarget();
    this.#ready = false;
    this.#needFull = true;
    if (destination) this.#log.info({ epoch, reason, from, to: destination.label, target: destination.target }, `pushing to ${destination.label} from now on (was ${from}): a full pass first`);
    else if (!target) this.#log.warn({ epoch, reason, from }, 'granted primary without a target, and agent.json has no standby section: pushing nothing (nowhere to push) until the proxy grants a target');
    return true;
  }

  /**
   * A fenced host's unsent changes (every change not acknowledged by its destination) copied into a
   * conflicts folder the proxy opened on the standby (agent/conflicts.ts). Only while not pushing: a
   * primary's changes go to the standby as usual. One copy at a time.
   */
  async copyConflicts(folder: string): Promise<ConflictsOutcome> {
    const none = { ok: false, files: 0, bytes: 0, deletions: 0, paths: [], complete: this.#ready };
    if (this.pushing) return { ...none, error: 'this agent is primary: its changes go to the standby as usual, not to a conflicts folder' };
    if (this.#copyingConflicts) return { ...none, error: 'a copy into a conflicts folder is already running' };
    this.#copyingConflicts = true;
    try {
      // an agent that never completed a pass since it started (restarted after the fence) knows only the changes since its start
      return await copyConflicts(this.#config, this.#changes.outstanding(), folder, this.#log, this.#ready);
    } finally {
      this.#copyingConflicts = false;
    }
  }

  /** Runs a pass now and resolves once every change made before the call is on the standby's disk (or the pass failed). */
  async syncNow(timeoutMs: number): Promise<{ ok: boolean; watermark: number; error: string | null }> {
    const started = performance.now();
    // a write that finished just before the call may have its event still unread: let the watcher catch up first
    const barrierMs = Math.min(1_000, timeoutMs / 2);
    const behind = await this.#watch.caughtUp(barrierMs);
    if (behind) this.#log.warn({ why: behind }, 'sync-now: could not make sure the watcher has seen every earlier write; the pass covers what it has seen');
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
      if (!this.#push) return done({ ok: false, watermark: this.#changes.watermark, error: 'nowhere to push: no standby section in agent.json and no target granted' });
      if (!this.pushing) return done({ ok: false, watermark: this.#changes.watermark, error: 'not primary: this agent may not push' });
      if (this.#changes.watermark >= target && !this.#passing) return done({ ok: true, watermark: this.#changes.watermark, error: null });
      this.#batcher.hurry();
      this.#kick();
    });
  }

  /** Sets the watches, then runs the first full reconcile in the background; resolves once watching. */
  async start(): Promise<void> {
    // the ssh master logs in while the folders are watched (1.2 s at 100,000 files), so the first pass finds it up
    if (this.pushing) this.#push?.ensureLink();
    this.#listener = { change: (root, path, kind, entries) => this.#onChange(root, path, kind, entries), error: (err) => this.#onWatchError(err) };
    const watching = await this.#watch.start(this.#listener);
    if (!watching) return;
    this.#log.info({ roots: this.#roots, destination: this.#push?.destination.label ?? null }, this.#push ? 'watching; starting the first full reconcile' : 'watching; nowhere to push yet (no standby section): waiting for the proxy to grant a target');
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
  confirmDeletes(): ConfirmDeletesAnswer {
    const deletions = this.#guard.confirm();
    this.#log.warn({ deletions }, 'deletions confirmed: applying them in a full reconcile');
    this.requestFullResync('deletions confirmed');
    return { deletions };
  }

  status(): SyncStatus {
    const d = this.#push?.destination;
    const sync = this.#config.sync;
    const settings = { delayMs: sync.delayMs, maxDelayMs: sync.maxDelayMs, exclude: [...sync.exclude], pushed: this.#pushed };
    return { ...this.#snapshot(d), settings };
  }

  #snapshot(d: Destination | undefined): SyncStatus {
    return syncStatus({
      destination: d ? { target: d.target, host: d.ssh.host, port: d.ssh.port, user: d.ssh.user, path: d.ssh.path } : null,
      progress: this.#push?.progress ?? null,
      unsentSince: this.#ready ? undefined : this.#destinationSince,
      hostId: this.#config.hostId,
      ready: this.#ready,
      phase: this.#phase,
      changes: this.#changes,
      stats: this.#stats,
      failingFor: this.#backoff.attempts,
      held: this.#guard.held,
      editorOff: this.#editorOff ?? null,
      treeEntries: this.#guard.treeEntries,
      rsync: this.#push?.rsyncVersions ?? { here: null, standby: null },
      epoch: this.#gate.epoch,
    });
  }

  /** The loop is doing its work: idle, or its rsync moving data (see liveness.ts); systemd's watchdog asks. */
  alive(): boolean {
    return !this.#closed && (this.#push?.alive() ?? true);
  }

  /** Stops watching, cancels the pass in flight (rsync lands files atomically, so a cut pass leaves no torn file) and closes ssh. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#phase = 'stopped';
    this.#batcher.clear();
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    if (this.#fullTimer) clearTimeout(this.#fullTimer);
    this.#push?.abort();
    await this.#rewatching;
    await this.#watch.close();
    await this.#passing;
    await this.#push?.close();
    await Promise.all(this.#retiring);
  }

  /** Waits for the pass in flight, if any (tests and drains). */
  async settled(): Promise<void> {
    await this.#passing;
  }

  /** A destination's roots; whether it takes code-server's is found out by its first full pass. */
  #setRoots(roots: SyncRoot[]): void {
    this.#roots = roots;
    this.#editorFrom = roots.length === 0 ? 0 : roots.length - editorRoots(this.#config).length;
    this.#editorOff = undefined;
  }

  #onChange(root: number, path: string, kind: ChangeKind, entries: number | undefined): void {
    // code-server's folders, while the destination does not take them: not synced, so not pending either (status says why)
    if (this.#editorOff !== undefined && root >= this.#editorFrom) return;
    const seq = this.#changes.record(root, path, kind, entries);
    this.#guard.changeSeen(kind);
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
    if (this.#closed || this.#passing || this.#retryTimer || !this.pushing || !this.#push) return;
    const full = this.#needFull;
    // a full reconcile goes at once; changes wait until the batcher says their batch is due
    if (!full && (this.#changes.pendingCount === 0 || !this.#batcher.passDue())) return;
    this.#batcher.taken();
    // held deletions rejoin the batch once confirmed (a pass in flight may still have been adding to them)
    if (full && this.#guard.confirmed) this.#changes.release();
    const batch = this.#changes.take(full);
    if (full) this.#needFull = false;
    this.#phase = 'syncing';
    this.#passing = this.#runPass(batch, this.#push).finally(() => {
      this.#passing = undefined;
      if (this.#closed) return;
      if (this.#phase === 'syncing') this.#phase = 'idle';
      if (this.#needFull) return this.#kick();
      this.#batcher.passEnded(this.#changes.pendingCount > 0);
    });
  }

  async #runPass(batch: Batch, push: StandbyPush): Promise<void> {
    const started = performance.now();
    const generation = this.#generation;
    push.ensureLink();
    // a full pass tries code-server's roots again (the standby may have been set up since); other passes leave them out while refused
    const roots = batch.full || this.#editorOff === undefined ? this.#roots : this.#roots.slice(0, this.#editorFrom);
    const parts: PassParts = { roots, push, guard: this.#guard, editorFrom: Math.min(this.#editorFrom, roots.length) };
    if (batch.full) push.fullPassProgress = new PassProgress();
    try {
      const out = batch.full ? await fullPass(parts, batch) : await incrementalPass(parts, batch);
      push.fullPassProgress = undefined;
      // the destination changed while the pass ran: it no longer counts (the new one starts with a full pass)
      if (generation !== this.#generation) return;
      let filesSent = 0;
      let bytesSent = 0;
      for (const r of out.results) {
        filesSent += r.stats.filesTransferred;
        bytesSent += r.stats.bytesSent;
      }
      if (batch.full) this.#editorTaken(out.editorRefused);
      this.#changes.complete(batch, out.held, out.requeue);
      this.#onPassOk(batch, started, filesSent, bytesSent);
    } catch (err) {
      push.fullPassProgress = undefined;
      if (generation !== this.#generation || err instanceof DestinationEnded) return;
      this.#changes.fail(batch);
      if (batch.full) this.#needFull = true;
      this.#onPassFailed(batch, started, err);
    }
  }

  /** What a full pass found of code-server's roots at the destination: taken (undefined), or refused with the receiver's words. */
  #editorTaken(refused: string | undefined): void {
    if (this.#editorFrom === this.#roots.length || refused === this.#editorOff) return;
    const where = this.#push?.destination.label ?? 'the destination';
    if (refused === undefined) this.#log.info({ destination: where }, `code-server's folders are synced to ${where} again`);
    else {
      const there = this.#roots.slice(this.#editorFrom).map((r) => r.remote).join(' and ');
      this.#log.warn({ destination: where, refused }, `code-server's folders are not synced to ${where}: its receiver does not take ${there} (${refused}). The workspace is synced. Name where code-server keeps them there: agent.json editor.remoteUserDataDir and remoteExtensionsDir (standby install agent --standby-editor-data-dir DIR), or leave them out: --no-editor`);
    }
    this.#editorOff = refused;
  }

  #onPassOk(batch: Batch, started: number, filesSent: number, bytesSent: number): void {
    const now = performance.now();
    const durationMs = now - started;
    this.#stats.passOk(batch.full, durationMs, filesSent, bytesSent, now);
    if (!batch.full) this.#batcher.passTook(durationMs);
    if (this.#backoff.attempts > 0) {
      const downSince = this.#stats.lastError?.at;
      this.#log.info({ failedAttempts: this.#backoff.attempts, downForMs: downSince === undefined ? null : Math.round(now - downSince) }, 'standby reachable again; reconciling the whole tree');
      this.#backoff.reset();
      this.#needFull = !batch.full; // clean up whatever the failed passes left half-done
    }
    if (batch.full) {
      this.#scheduleNextFull();
      if (!this.#ready) {
        this.#ready = true;
        const d = this.#push?.destination;
        this.#log.info({ durationMs: Math.round(durationMs), entries: this.#guard.treeEntries, target: d?.target ?? null }, d?.target ? `first full pass to ${d.label} done: it holds the workspace, kept current from now on` : 'first full reconcile done: standby in sync');
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
    const first = this.#backoff.attempts === 0;
    const changed = this.#stats.lastError?.message !== message;
    // an rsync missing or too old on either end: no pass can succeed until someone installs one, so none is tried;
    // the standby is checked again at the slowest retry pace (installing rsync there resumes sync, no restart needed)
    const cannot = err instanceof StandbyError && (err.code === 'STANDBY_ERR_RSYNC_UNSUPPORTED' || err.code === 'STANDBY_ERR_MISSING_BINARY');
    const delay = cannot ? (this.#backoff.next(), this.#config.sync.retryMaxMs) : this.#backoff.next();
    if (first || changed) {
      // once per change of state, not per attempt
      const outstandingPaths = this.#changes.outstandingCount;
      if (cannot) this.#log.fatal({ err: message, outstandingPaths, checkAgainInMs: delay }, `sync cannot run: ${message}`);
      else this.#log.error({ err: message, outstandingPaths, retryInMs: delay }, first ? 'sync failing: keeping every change and retrying with backoff' : 'sync still failing, for another reason');
    }
    this.#stats.passFailed(message, performance.now());
    // Fenced by the standby itself (the proxy's word may not reach this host): stop pushing, no retry.
    const refused = isRefusal(err);
    if (refused) {
      this.grant('fenced', this.#gate.refuse(), 'the standby refused this epoch: a newer one fenced it');
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
}
