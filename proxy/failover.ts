// The failover state machine: it gathers the signals, asks the detector for a
// verdict, and applies it. Fence before route: a failover logs the new epoch,
// fences the standby under it (retrying until it succeeds or the admin aborts
// it), and only then moves the route. Every step is an event in the durable
// log before it takes effect, so a proxy restarted mid-way resumes where it
// stopped. A first run waits for its GPU (no failover before its agent was
// ever heard at this epoch); an agent's preemption notice is corroborated
// before anything irreversible happens; a switch back to the GPU takes the
// same steps the other way.
//
// Decide, then apply: the detector (`judge`), the reducer (`reduce`) and
// `unfinished` decide from snapshots; every transition is then entered in one
// place (`#enter`), which appends the durable event, sets the freeze, logs the
// change and tells the listeners (metrics, probes' pace, systemd's STATUS).
import type { Logger } from '../core/log.ts';
import type { AgentHub } from './agent-hub.ts';
import { judge, phaseOf, probeDown, type Verdict } from './detector.ts';
import type { Prober } from './prober.ts';
import type { Router } from './router.ts';
import { awaitingGpu, unfinished, type FailoverCause, type GpuRecord, type NewEvent, type Phase, type ProxyState, type Side } from './state.ts';
import type { StateStore } from './state-store.ts';

export interface FenceOutcome {
  waitedMs: number;
  killed: number;
}

/** Why a fence runs: a failover fences (and revokes) the GPU; a switch back fences the standby's receiver for the GPU's new grant. */
export type FencePurpose = 'failover' | 'switch-back';

export interface FailoverDeps {
  store: StateStore;
  /** the agents' connections and heartbeats; final passes and grants go through it */
  hub: Pick<AgentHub, 'agents' | 'requestSync' | 'regrant' | 'requestFreeze'>;
  /** closes a side's sockets when it is frozen or left */
  router: Pick<Router, 'closeAll'>;
  probes: Record<Side, Pick<Prober, 'failures' | 'last' | 'probe'>>;
  /** the GPU in service's host id (the configured one, or the one a recovery switched back to) */
  primaryId(): string;
  windowMs: number;
  /** fences the standby at `epoch` (idempotent); rejects when the standby cannot be fenced */
  fence(epoch: number, purpose: FencePurpose): Promise<FenceOutcome>;
  /** heartbeats are missing: a fence may follow; get ready for it (open the SSH connection) */
  prepareFence?(): void;
  log: Logger;
  /** how long a planned failover waits for the agent's final pass (default 10 s) */
  finalSyncMs?: number;
  /** whether a failure the detector finds (or a preemption notice) fails over by itself (default: yes); no: it is reported, and manual() still fails over. Read at each evaluation (a live setting) */
  autoFailover?(): boolean;
  /** how long an agent's preemption notice waits for corroboration before it is dismissed (default 60 s) */
  preemptionConfirmMs?: number;
  /** how long a switch back waits for the agent's comparison with the standby (default 120 s) */
  verifyMs?: number;
  /** pause between fence attempts (default 1 s) */
  fenceRetryMs?: number;
  /** asks the GPU's agent whether its workspace equals the standby's (switch-back); resolves with what differs, or why it cannot say */
  verifyPrimary?(timeoutMs: number): Promise<{ ok: true; differences: number } | { ok: false; error: string }>;
}

export interface PhaseTiming {
  detectMs: number | null;
  freezeMs: number | null;
  finalSyncMs: number | null;
  fenceMs: number;
  routeMs: number;
  totalMs: number;
}

/** One change of the state machine, as its listeners hear it. */
export interface Transition {
  from: ProxyState;
  to: ProxyState;
  /** the durable event it appended; undefined for a freeze or unfreeze alone */
  event: NewEvent | undefined;
  /** the freeze in force after it */
  frozen: boolean;
}

export type TransitionListener = (t: Transition) => void;

/** How a transition is told in the log: the message (and level) people read, beside the from/to the log line always has. */
interface Telling {
  msg: string;
  level?: 'info' | 'warn';
  fields?: Record<string, unknown>;
}

/** An answer to an admin's request (abort, switch-back): accepted, or refused with the HTTP status and why. */
export type Answer = { accepted: true; message: string } | { accepted: false; status: number; why: string };

/** ms since `from` on the monotonic clock, to the microsecond: what the durable events record (a route takes well under a ms). */
function msSince(from: number): number {
  return Math.round((performance.now() - from) * 1000) / 1000;
}

/** The fence loop stops: the failover was aborted (or the proxy closes). */
class Stopped extends Error {
  override name = 'Stopped';
}

export class Failover {
  #deps: FailoverDeps;
  #busy: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** fires when the GPU's silence alone would change the verdict */
  #silenceTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #listeners = new Set<TransitionListener>();
  /** a freeze in force: the active side's browser sockets are closed and pages get the transition page (set by #enter only) */
  #frozen = false;
  lastVerdict: Verdict = { kind: 'healthy' };
  lastFenceError: string | null = null;
  /** performance.now() of the last evaluation: the watchdog's proof that the loop runs */
  lastEvaluatedAt = performance.now();
  lastTiming: PhaseTiming | undefined;
  /** a preemption notice the proxy received itself (provider status), in force until the failover */
  notice: { source: string; reason: string } | undefined;
  /** an agent's preemption notice being corroborated: its source and deadline */
  corroborating: { source: string; until: number } | undefined;
  /** performance.now() when heartbeats were first seen missing in the current episode */
  #suspectSince: number | undefined;
  /** an agent notice was dismissed (not corroborated, or aborted): ignored until the agent's heartbeats stop carrying it */
  #noticeDismissed = false;
  /** the failure (or notice) last reported but not acted on because autoFailover is off: logged once per episode */
  #heldBack: string | undefined;
  /** the admin asked to abort: the fence loop starts no new attempt */
  #aborting = false;
  /** a switch back is being checked (standby frozen, the agent verifying) */
  #checking = false;
  /** the fence attempt in flight, if any (an abort waits for it: it may still succeed) */
  #attempt: Promise<unknown> | undefined;

  constructor(deps: FailoverDeps) {
    this.#deps = deps;
  }

  get state(): ProxyState {
    return this.#deps.store.state;
  }

  get frozen(): boolean {
    return this.#frozen;
  }

  /** Calls `listener` after every transition (an event appended, or a freeze set or lifted); returns what stops it. */
  onTransition(listener: TransitionListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The one place the state machine changes: the event is appended to the durable log before it takes
   * effect, then the freeze is set, the change logged, and the listeners told. A listener's error is
   * logged, never lets a transition half-happen.
   */
  #enter(change: { event?: NewEvent; frozen?: boolean }, telling: Telling = { msg: 'phase' }): ProxyState {
    const from = this.state;
    const to = change.event ? this.#deps.store.append(change.event) : from;
    if (change.frozen !== undefined) this.#frozen = change.frozen;
    const fields = { from: from.phase, to: to.phase, ...(change.event ? { event: change.event.type, reason: change.event.reason } : {}), ...(change.frozen !== undefined ? { frozen: change.frozen } : {}), ...telling.fields };
    this.#deps.log[telling.level ?? 'info'](fields, telling.msg);
    const t: Transition = { from, to, event: change.event, frozen: this.#frozen };
    for (const listener of this.#listeners) {
      try {
        listener(t);
      } catch (err) {
        this.#deps.log.error({ err }, 'a transition listener failed');
      }
    }
    return to;
  }

  /**
   * Starts watching; resumes a failover (or a switch back) a previous run left half-done.
   * `everyMs`: the safety loop. Signals (heartbeats, probe results, disconnects) evaluate at
   * once, and the moments silence alone changes the verdict (half the window: warm the fence;
   * the window) have timers of their own, so the loop is not what detection waits on.
   */
  start(everyMs = 100): void {
    const left = unfinished(this.state);
    if (left) {
      this.#deps.log.warn({ epoch: this.state.epoch, step: left, phase: this.state.phase }, 'resuming a failover the previous run left unfinished');
      this.#run(this.#resume(left, this.state.phase === 'switching_back' ? 'primary' : 'standby'));
    }
    this.#timer = setInterval(() => this.evaluate(), everyMs);
  }

  /** Reads the signals and acts on the verdict; cheap, called on a timer and on every signal. */
  evaluate(): void {
    this.lastEvaluatedAt = performance.now();
    const s = this.state;
    if (this.#closed || this.#busy || s.active !== 'primary' || s.phase === 'failing_over' || s.phase === 'switching_back') return;
    const agent = this.#deps.hub.agents.get(this.#deps.primaryId());
    if (awaitingGpu(s)) {
      if (agent?.connected && agent.heartbeats > 0) {
        // durable: a restarted proxy knows this GPU was there, so its silence then means a failure
        this.#enter(
          { event: { type: 'gpu-seen', epoch: s.epoch, reason: `first heartbeat of ${this.#deps.primaryId()} at epoch ${s.epoch}` } },
          { msg: "the GPU's agent is here: its silence now triggers a failover", fields: { hostId: this.#deps.primaryId(), epoch: s.epoch } },
        );
      } else {
        // nothing was ever synced from this GPU at this epoch: failing over would fence and revoke a GPU that never was
        const reason = `waiting for the GPU: ${this.#deps.primaryId()}'s agent has not sent a heartbeat at epoch ${s.epoch}`;
        this.lastVerdict = { kind: 'waiting', reason };
        if (this.notice) {
          this.#deps.log.warn({ notice: this.notice }, 'a preemption notice while waiting for the GPU: nothing to fail over from; ignored');
          this.notice = undefined;
        }
        this.#setPhase('waiting', reason);
        return;
      }
    }
    const probe = this.#deps.probes.primary;
    const now = performance.now();
    const agentNotice = agent?.connected ? agent.last?.preemption ?? null : null;
    if (agentNotice === null) this.#noticeDismissed = false;
    const auto = this.#deps.autoFailover?.() ?? true;
    if (agentNotice !== null && !this.#noticeDismissed && this.notice === undefined && !auto) {
      // no freeze, no final pass: nothing happens by itself; the admin's failover still takes its planned path
      this.#holdBack('agent-notice', `preemption notice from the agent (${agentNotice.source})`);
    } else if (agentNotice !== null && !this.#noticeDismissed && this.notice === undefined) {
      this.lastVerdict = { kind: 'suspect', reason: `preemption notice from the agent (${agentNotice.source}): corroborating` };
      this.#run(this.#corroborate(agentNotice.source));
      return;
    }
    const connectionLost = agent !== undefined && !agent.connected && agent.disconnectedAt !== undefined;
    const verdict = judge({
      silenceMs: agent ? now - agent.lastHeartbeatAt : Infinity,
      connectionLost,
      windowMs: this.#deps.windowMs,
      probeFailures: probe.failures,
      probeError: probe.last?.error ?? null,
      preempted: this.notice !== undefined,
      preemptionSource: this.notice?.source,
    });
    this.lastVerdict = verdict;
    if (verdict.kind === 'healthy' && agentNotice === null) this.#heldBack = undefined;
    if (verdict.kind === 'healthy') this.#suspectSince = undefined;
    else this.#suspectSince ??= now;
    // Half the window without a heartbeat, or a failed probe: a fence may be near, so its SSH
    // connection is opened now, off the path the switch waits on (it fences nothing by itself).
    const silenceMs = agent ? now - agent.lastHeartbeatAt : Infinity;
    if (verdict.kind !== 'healthy' || silenceMs > this.#deps.windowMs / 2 || probe.failures > 0) this.#deps.prepareFence?.();
    if (verdict.kind !== 'failed') this.#armSilence(silenceMs);
    if (verdict.kind === 'failed' && !auto) {
      const reason = this.#holdBack(verdict.planned ? 'notice' : 'failed', verdict.reason);
      this.#setPhase('suspect', reason);
      return;
    }
    if (verdict.kind === 'failed') {
      const cause: FailoverCause = verdict.planned ? { kind: 'preemption', source: this.notice?.source ?? 'unknown', by: 'proxy' } : { kind: connectionLost ? 'connection-lost' : 'silence', probeError: probe.last?.error ?? null };
      this.#run(this.#failover(cause, verdict.reason));
      return;
    }
    this.#setPhase(phaseOf(verdict), verdict.kind === 'healthy' ? 'heartbeats flowing' : verdict.reason);
  }

  /** A failure (or notice) found while autoFailover is off: reported (the log once per episode, the status's verdict), not acted on. Returns the reason as reported. */
  #holdBack(kind: string, what: string): string {
    const reason = `${what}; automatic failover is off (autoFailover): run standby failover to fail over`;
    if (this.#heldBack !== kind) {
      this.#deps.log.warn({ what }, 'the GPU looks failed, but automatic failover is off (autoFailover false): not failing over by itself; standby failover (or POST /_standby/api/v1/failover) does it');
      this.#heldBack = kind;
    }
    return reason;
  }

  /** A preemption notice from a watcher of the proxy's own (the provider's word): a planned failover, no corroboration needed. */
  preemptionNotice(source: string, reason: string): void {
    this.#deps.log.warn({ source, reason }, 'preemption notice');
    this.notice ??= { source, reason };
    this.evaluate();
  }

  /** A failover someone asked for (API, CLI): planned, so the agent gets a final pass first. Works while waiting for the GPU too. */
  manual(reason: string, kind: 'manual' | 'drill' = 'manual'): { accepted: boolean; why: string } {
    if (this.state.active !== 'primary') return { accepted: false, why: 'the standby already serves' };
    if (this.state.phase === 'switching_back') return { accepted: false, why: 'a switch back to the GPU is under way' };
    if (this.corroborating) {
      // the admin's word corroborates the agent's notice: the corroboration loop goes on to the failover
      this.notice ??= { source: 'admin', reason };
      return { accepted: true, why: reason };
    }
    if (this.#busy || this.state.phase === 'failing_over') return { accepted: false, why: 'a failover is already under way' };
    this.#run(this.#failover({ kind }, reason));
    return { accepted: true, why: reason };
  }

  /** Resolves when no failover step is running. */
  async idle(): Promise<void> {
    while (this.#busy) await this.#busy;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    clearTimeout(this.#silenceTimer);
  }

  /** Evaluates again when this silence reaches half the window, then the window: re-armed by every evaluation. */
  #armSilence(silenceMs: number): void {
    const half = this.#deps.windowMs / 2;
    const next = silenceMs < half ? half - silenceMs : silenceMs < this.#deps.windowMs ? this.#deps.windowMs - silenceMs : undefined;
    clearTimeout(this.#silenceTimer);
    this.#silenceTimer = next === undefined ? undefined : setTimeout(() => this.evaluate(), Math.ceil(next) + 1);
  }

  #run(p: Promise<void>): void {
    const busy = p
      .catch((err: unknown) => {
        if (err instanceof Stopped) this.#deps.log.warn({ why: err.message }, 'failover stopped');
        else this.#deps.log.error({ err }, 'failover step failed');
      })
      .finally(() => {
        if (this.#busy === busy) this.#busy = undefined;
      });
    this.#busy = busy;
  }

  /** A phase the verdict leads to (not a switch): entered only when it is not the phase in force. */
  #setPhase(phase: Phase, reason: string): void {
    if (this.state.phase === phase) return;
    this.#enter({ event: { type: 'phase', phase, reason } });
  }

  /** Freezes the side that serves: its browser sockets close, pages get the transition page. */
  #freeze(side: Side): number {
    const started = performance.now();
    this.#enter({ frozen: true }, { msg: 'freeze', fields: { side } });
    const closed = this.#deps.router.closeAll(side);
    this.#deps.log.info({ side, closed }, 'frozen: connections closed, pages get the transition page');
    return performance.now() - started;
  }

  /** What corroborates an agent's preemption notice now, or undefined: the provider's word, the GPU's silence, its code-server down. */
  #corroboration(): string | undefined {
    if (this.notice) return `${this.notice.source}: ${this.notice.reason}`;
    const agent = this.#deps.hub.agents.get(this.#deps.primaryId());
    if (!agent?.connected) return "the agent's connection closed";
    const silenceMs = performance.now() - agent.lastHeartbeatAt;
    if (silenceMs >= this.#deps.windowMs) return `no heartbeat for ${Math.round(silenceMs)} ms`;
    const probe = this.#deps.probes.primary;
    if (probeDown(probe.failures, probe.last?.error ?? null)) return `code-server probe failing (${probe.last?.error ?? 'no answer'})`;
    return undefined;
  }

  /**
   * An agent said its host is being preempted. The reversible part runs at once (freeze, final pass: what
   * makes a planned failover lose nothing); the irreversible part (epoch, fence, revocation) waits until
   * the proxy sees it too: the provider says so, or the GPU goes silent or its code-server down.
   */
  async #corroborate(source: string): Promise<void> {
    const confirmMs = this.#deps.preemptionConfirmMs ?? 60_000;
    const started = performance.now();
    this.corroborating = { source, until: started + confirmMs };
    try {
      this.#enter(
        { event: { type: 'notice', source, outcome: 'corroborating', reason: `preemption notice from ${this.#deps.primaryId()}'s agent (${source}): frozen, final pass, waiting up to ${confirmMs} ms for the proxy to see it too` } },
        { msg: "an agent's preemption notice: freezing and taking the final pass; failing over once corroborated", level: 'warn', fields: { source, confirmMs } },
      );
      const freezeMs = this.#freeze('primary');
      const t = performance.now();
      const synced = await this.#deps.hub.requestSync(this.#deps.primaryId(), this.#deps.finalSyncMs ?? 10_000);
      const finalSyncMs = performance.now() - t;
      this.#deps.log.info({ answer: synced ?? null, ms: Math.round(finalSyncMs) }, 'final pass before the corroboration');
      for (let i = 0; i < 1_000_000 && !this.#closed && !this.#aborting; i++) {
        const why = this.#corroboration();
        if (why) {
          this.#enter({ event: { type: 'notice', source, outcome: 'corroborated', reason: `preemption notice (${source}) corroborated: ${why}` } }, { msg: 'preemption notice corroborated', level: 'warn', fields: { source } });
          this.corroborating = undefined;
          return await this.#failover({ kind: 'preemption', source, by: 'agent' }, `preemption notice (${source}), corroborated: ${why}`, { startedAt: started, freezeMs });
        }
        if (performance.now() - started >= confirmMs) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      if (this.#closed) return;
      const why = this.#aborting ? 'aborted by the admin' : `not corroborated within ${confirmMs} ms: the provider did not confirm it, the GPU's heartbeats and code-server go on`;
      this.#enter(
        { event: { type: 'notice', source, outcome: 'not-corroborated', reason: `preemption notice (${source}) ${why}: the GPU serves again` }, frozen: false },
        { msg: 'preemption notice not corroborated: unfrozen, the GPU serves again', level: 'warn', fields: { source, why } },
      );
      this.corroborating = undefined;
      this.#noticeDismissed = true;
    } finally {
      // stopped half-way (the proxy closes, or a step failed): the GPU serves again, unfrozen
      if (this.corroborating) {
        this.corroborating = undefined;
        this.#noticeDismissed = true;
        if (this.#frozen) this.#enter({ frozen: false }, { msg: 'preemption notice dropped: unfrozen', fields: { source } });
      }
    }
  }

  async #failover(cause: FailoverCause, reason: string, pre: { startedAt: number; freezeMs: number } | undefined = undefined): Promise<void> {
    const planned = cause.kind !== 'silence' && cause.kind !== 'connection-lost';
    const started = pre?.startedAt ?? performance.now();
    const detectMs = this.#suspectSince !== undefined && !pre ? started - this.#suspectSince : null;
    this.#deps.log.warn({ planned, reason }, 'failing over to the standby');
    let freezeMs: number | null = pre?.freezeMs ?? null;
    let finalSyncMs: number | null = null;
    let finalWatermark: number | undefined;
    if (planned) {
      // Freeze: the developer stops writing on the GPU before its last pass.
      if (!pre) freezeMs = this.#freeze('primary');
      const t = performance.now();
      const synced = await this.#deps.hub.requestSync(this.#deps.primaryId(), this.#deps.finalSyncMs ?? 10_000);
      finalSyncMs = performance.now() - t;
      if (this.#closed) return; // stopped while waiting: nothing was logged, a restarted proxy decides again
      if (synced?.ok) finalWatermark = synced.watermark;
      if (synced?.ok) this.#deps.log.info({ watermark: synced.watermark, ms: Math.round(finalSyncMs) }, 'final sync pass done');
      else this.#deps.log.warn({ answer: synced ?? null }, 'no final sync pass from the agent: failing over with what the standby has');
    }
    const agent = this.#deps.hub.agents.get(this.#deps.primaryId());
    const hb = agent?.last;
    // the last sign of life, on this proxy's clock: where an unplanned failover's detection (and its MTTR) starts
    const heartbeatAt = agent && agent.heartbeats > 0 ? agent.lastHeartbeatAt : undefined;
    // the RPO: what the last heartbeat said, unless a final pass landed since (its watermark covers every change
    // numbered before it; what the last heartbeat numbered above it, if anything, is still outstanding)
    const watermark = finalWatermark ?? hb?.sync.watermark ?? null;
    const pending = hb && watermark !== null ? Math.max(0, hb.sync.lastSeq - watermark) : null;
    const oldestPendingAgeMs = finalWatermark !== undefined && pending === 0 ? null : hb?.sync.oldestPendingAgeMs ?? null;
    this.#aborting = false;
    this.#enter(
      {
        event: {
          type: 'epoch', epoch: this.state.epoch + 1, planned, watermark, pending, reason,
          cause, heartbeatAgeMs: heartbeatAt === undefined ? null : msSince(heartbeatAt), oldestPendingAgeMs, leadMs: msSince(started),
        },
      },
      { msg: 'new epoch: fencing the standby under it', level: 'warn', fields: { epoch: this.state.epoch + 1, planned } },
    );
    // the old primary hears "fenced" at once if it can still hear (a grant, not a revocation: that waits for the fence)
    this.#deps.hub.regrant(this.#deps.primaryId());
    const fenceMs = await this.#fence('failover');
    const routeMs = this.#route('standby', planned ? started : heartbeatAt);
    this.lastTiming = { detectMs, freezeMs, finalSyncMs, fenceMs, routeMs, totalMs: performance.now() - started + (detectMs ?? 0) };
    this.#deps.log.warn({ epoch: this.state.epoch, timing: this.lastTiming }, 'failed over: the standby serves');
  }

  /** `startedAt`: the switch's start on this process's clock (unknown when resuming a previous run's) */
  async #resume(step: 'fence' | 'route', to: Side, startedAt?: number): Promise<void> {
    if (to === 'primary' && !this.#frozen) this.#enter({ frozen: true }, { msg: 'resuming a switch back: the standby stays frozen until the GPU serves' });
    if (step === 'fence') await this.#fence(to === 'standby' ? 'failover' : 'switch-back');
    this.#route(to, startedAt);
    if (to === 'primary') this.#deps.hub.regrant(this.#deps.primaryId());
  }

  /** Fences at the current epoch, retrying until it works or the admin aborts: traffic never moves to an unfenced standby. */
  async #fence(purpose: FencePurpose): Promise<number> {
    const epoch = this.state.epoch;
    const started = performance.now();
    for (let attempt = 1; !this.#closed; attempt++) {
      if (this.#aborting) throw new Stopped(`the failover to epoch ${epoch} was aborted before its fence succeeded`);
      const tried = this.#deps.fence(epoch, purpose);
      this.#attempt = tried.catch(() => undefined);
      try {
        const r = await tried;
        const ms = performance.now() - started;
        this.lastFenceError = null;
        this.#enter({ event: { type: 'fenced', epoch, waitedMs: r.waitedMs, killed: r.killed, ms: msSince(started), reason: `fenced in ${Math.round(ms)} ms` } }, { msg: 'standby fenced', fields: { epoch, purpose } });
        return ms;
      } catch (err) {
        this.lastFenceError = (err as Error).message;
        this.#deps.log.error({ err: this.lastFenceError, attempt, epoch }, 'cannot fence the standby: traffic stays off it until the fence succeeds (or the admin aborts: standby failover --abort)');
        if (this.#aborting) throw new Stopped(`the failover to epoch ${epoch} was aborted before its fence succeeded`);
        await new Promise((r) => setTimeout(r, this.#deps.fenceRetryMs ?? 1_000));
      } finally {
        this.#attempt = undefined;
      }
    }
    throw new Stopped('proxy closed while fencing');
  }

  /** `startedAt`: the switch's start (see the routed event's totalMs), when this process knows it */
  #route(side: Side, startedAt?: number): number {
    const t = performance.now();
    const from: Side = side === 'standby' ? 'primary' : 'standby';
    const closed = this.#deps.router.closeAll(from);
    const event: NewEvent = { type: 'routed', side, epoch: this.state.epoch, ms: msSince(t), ...(startedAt === undefined ? {} : { totalMs: msSince(startedAt) }), reason: `closed ${closed} connections to the ${from === 'primary' ? 'GPU' : 'standby'}` };
    this.#enter({ event, frozen: false }, { msg: 'routed', fields: { side } });
    // a notice is about the GPU that was left: a GPU switched back to later starts without one
    this.notice = undefined;
    return performance.now() - t;
  }

  /** The GPU answers: its code-server's probe is ok, or its agent heartbeats within the window. */
  #primaryAnswers(): string | undefined {
    const probe = this.#deps.probes.primary;
    if (probe.last?.ok && probe.failures === 0) return 'its code-server answers';
    const agent = this.#deps.hub.agents.get(this.#deps.primaryId());
    if (agent?.connected && agent.heartbeats > 0 && performance.now() - agent.lastHeartbeatAt < this.#deps.windowMs) return 'its agent heartbeats';
    return undefined;
  }

  /**
   * Calls off a failover whose fence has not completed, while the GPU still answers: the GPU serves
   * again under the new epoch (so the standby's receiver accepts its writes whether or not a fence
   * attempt raised its epoch). A fence that completed cannot be undone: that is a switch back.
   */
  async abort(reason: string): Promise<Answer> {
    const s = this.state;
    if (this.corroborating && s.phase !== 'failing_over') {
      this.#aborting = true;
      await this.idle();
      this.#aborting = false;
      return { accepted: true, message: 'the preemption notice is dismissed: unfrozen, the GPU serves' };
    }
    if (s.phase === 'switching_back') return this.#abortSwitchBack(reason);
    if (s.phase !== 'failing_over') {
      return { accepted: false, status: 409, why: s.active === 'standby' ? `the failover completed (the standby serves at epoch ${s.epoch}): nothing to abort; to go back run standby switch-back` : 'no failover is under way: nothing to abort' };
    }
    if (s.fencedEpoch >= s.epoch) {
      return { accepted: false, status: 409, why: `the standby was fenced at epoch ${s.fencedEpoch}: the failover is past its fence and cannot be aborted (the standby may already hold writes the GPU lacks); once it serves, go back with standby switch-back` };
    }
    const answers = this.#primaryAnswers();
    if (!answers) return { accepted: false, status: 409, why: 'the GPU does not answer: aborting would leave no backend (neither its code-server nor its agent answers)' };
    this.#aborting = true;
    // a fence attempt in flight may still succeed: its outcome decides
    await this.#attempt;
    if (this.state.fencedEpoch >= this.state.epoch) {
      this.#aborting = false;
      return { accepted: false, status: 409, why: `the fence at epoch ${this.state.epoch} succeeded while aborting: the failover goes on; go back with standby switch-back` };
    }
    this.#enter(
      { event: { type: 'aborted', epoch: this.state.epoch, reason: `${reason}: the fence had not completed and the GPU answers (${answers})` }, frozen: false },
      { msg: 'failover aborted: the GPU serves again under the new epoch', level: 'warn', fields: { epoch: this.state.epoch } },
    );
    this.notice = undefined;
    this.#noticeDismissed = true;
    this.lastFenceError = null;
    this.lastVerdict = { kind: 'healthy' };
    this.#deps.hub.regrant(this.#deps.primaryId()); // primary again, at the new epoch
    await this.idle();
    this.#aborting = false;
    return { accepted: true, message: `aborted: the GPU serves again at epoch ${this.state.epoch} (${answers})` };
  }

  /** Calls off a switch back whose fence has not completed, while the standby answers: it serves again (the GPU stays fenced). */
  async #abortSwitchBack(reason: string): Promise<Answer> {
    if (this.state.fencedEpoch >= this.state.epoch) {
      return { accepted: false, status: 409, why: `the standby's receiver was fenced at epoch ${this.state.fencedEpoch} for the switch back: it cannot be aborted; the route moves to the GPU next` };
    }
    const probe = this.#deps.probes.standby;
    if (!probe.last?.ok) return { accepted: false, status: 409, why: "the standby does not answer: aborting would leave no backend (its code-server does not answer the proxy's probe)" };
    this.#aborting = true;
    await this.#attempt;
    if (this.state.fencedEpoch >= this.state.epoch) {
      this.#aborting = false;
      return { accepted: false, status: 409, why: `the fence at epoch ${this.state.epoch} succeeded while aborting: the switch back goes on` };
    }
    this.#enter(
      { event: { type: 'aborted', epoch: this.state.epoch, side: 'standby', reason: `${reason}: the switch back's fence had not completed; the standby serves again` }, frozen: false },
      { msg: 'switch back aborted: the standby serves again', level: 'warn', fields: { epoch: this.state.epoch } },
    );
    this.lastFenceError = null;
    this.#deps.hub.regrant(this.#deps.primaryId()); // still fenced, at the new epoch
    await this.idle();
    this.#aborting = false;
    return { accepted: true, message: `aborted: the standby serves again at epoch ${this.state.epoch}` };
  }

  /**
   * Moves the URL back to the GPU after a failover, once its agent is connected and heartbeating (granted
   * fenced at the current epoch) and its code-server answers, and its workspace is the standby's: checked
   * by the agent when the proxy can ask it (verifyPrimary), otherwise confirmed by the admin who restored
   * it. Then: freeze the standby, new epoch, fence the standby's receiver under it, route, grant primary.
   */
  async switchBack(reason: string, o: { confirmRestored?: boolean } = {}): Promise<Answer> {
    const s = this.state;
    if (s.active !== 'standby') return { accepted: false, status: 409, why: s.phase === 'switching_back' ? 'a switch back is already under way' : 'the GPU already serves: nothing to switch back from' };
    if (s.phase !== 'failed_over' || this.#busy) return { accepted: false, status: 409, why: `the proxy is busy (phase ${s.phase}): try again when the standby serves` };
    if (this.#checking) return { accepted: false, status: 409, why: 'a switch back is already being checked' };
    const id = this.#deps.primaryId();
    const agent = this.#deps.hub.agents.get(id);
    if (!agent?.connected || !agent.last) return { accepted: false, status: 409, why: `${id}'s agent is not connected: bring the GPU back (standby hosts add ${id}, install its agent) and wait until it connects` };
    if (agent.fenced !== undefined) return { accepted: false, status: 409, why: `${id}'s agent is connected but fenced for good (${agent.fenced.split(':')[0]}): bring the GPU back (standby hosts add ${id}, install its agent) and wait until it connects with its new credentials` };
    const silenceMs = performance.now() - agent.lastHeartbeatAt;
    if (silenceMs >= this.#deps.windowMs) return { accepted: false, status: 409, why: `${id}'s agent sent no heartbeat for ${Math.round(silenceMs)} ms` };
    if (!this.#deps.verifyPrimary && o.confirmRestored !== true) {
      return { accepted: false, status: 409, why: `the proxy cannot yet have ${id}'s agent compare its workspace with the standby's: restore it from the standby by hand (docs/operations.md, Switching back by hand), then confirm with --restored; work on the standby that is not on ${id} is overwritten by its first pass` };
    }
    this.#checking = true;
    const probe = this.#deps.probes.primary;
    // the last tick may predate the GPU's return (asked for right as it comes back): a probe now decides, not a stale failure
    const answered = probe.last?.ok ? probe.last : await probe.probe();
    if (!answered.ok) {
      this.#checking = false;
      return { accepted: false, status: 409, why: `${id}'s code-server does not answer the proxy's probe (${answered.error ?? 'not probed yet'})` };
    }
    const started = performance.now();
    let done = false;
    try {
      // freeze first: the standby's copy stops changing, so what was compared (or restored) still holds when the GPU takes over
      this.#freeze('standby');
      let checked = `restored by the admin (confirmed)`;
      if (this.#deps.verifyPrimary) {
        const verdict = await this.#deps.verifyPrimary(this.#deps.verifyMs ?? 120_000);
        // differences always refuse; a comparison that could not run needs the admin's word that the restore is done
        if (verdict.ok && verdict.differences > 0) return { accepted: false, status: 409, why: `${id}'s workspace differs from the standby's in ${verdict.differences} paths: restore it from the standby (docs/operations.md, Switching back by hand), then run this again` };
        if (!verdict.ok && o.confirmRestored !== true) return { accepted: false, status: 409, why: `${id} could not compare its workspace with the standby's (${verdict.error}): fix that, or restore it from the standby by hand and confirm with --restored` };
        checked = verdict.ok ? 'its workspace equal to the standby\'s (compared by its agent)' : `restored by the admin (confirmed; its agent could not compare: ${verdict.error})`;
      }
      this.#enter(
        { event: { type: 'switch-back', epoch: s.epoch + 1, reason: `${reason}: ${id}'s agent connected and heartbeating, its code-server answering, ${checked}` } },
        { msg: 'switching back to the GPU: fencing the standby under the new epoch, then the route moves', level: 'warn', fields: { epoch: s.epoch + 1, hostId: id } },
      );
      done = true;
    } finally {
      this.#checking = false;
      if (!done) this.#enter({ frozen: false }, { msg: 'switch back refused: the standby serves on, unfrozen' });
    }
    this.#run(this.#resume('fence', 'primary', started));
    return { accepted: true, message: `switching back to ${id}: epoch ${this.state.epoch}, fencing the standby's receiver under it, then the route moves and ${id} is granted primary` };
  }

  /**
   * A recovery's switch back to the new GPU it restored (proxy/recovery.ts): freeze the standby (its browser
   * sockets closed, the transition page, its user processes stopped by its agent), the standby's agent's final
   * pass to the new GPU, then the new epoch with the new GPU as the GPU in service, the fence (the standby's
   * receiver and the new GPU's, so the standby's agent can push no more), the route, and the new GPU's agent
   * granted primary. Resolves once routed, or with why it could not start (the standby serves on, unfrozen).
   */
  async recoverySwitchBack(gpu: GpuRecord, o: { standbyId: string; finalSyncMs: number; freezeMaxMs: number; reason: string }): Promise<Answer> {
    const s = this.state;
    if (s.active !== 'standby' || s.phase !== 'recovering') return { accepted: false, status: 409, why: `the standby does not serve a recovery (phase ${s.phase})` };
    if (this.#busy || this.#checking) return { accepted: false, status: 409, why: 'a switch is already under way' };
    this.#checking = true;
    const started = performance.now();
    let done = false;
    let processesFrozen = false;
    try {
      const freezeMs = this.#freeze('standby');
      const frozen = await this.#deps.hub.requestFreeze(o.standbyId, true, 5_000, o.freezeMaxMs);
      processesFrozen = frozen?.ok === true;
      if (!processesFrozen) this.#deps.log.warn({ answer: frozen ?? null }, "the standby's user processes could not be stopped: the switch back relies on the transition page alone");
      const t = performance.now();
      const synced = await this.#deps.hub.requestSync(o.standbyId, o.finalSyncMs);
      const finalSyncMs = performance.now() - t;
      if (this.#closed) return { accepted: false, status: 503, why: 'the proxy is closing' };
      if (!synced?.ok) return { accepted: false, status: 409, why: `the standby's final pass to ${gpu.id} did not complete (${synced?.error ?? `no answer within ${o.finalSyncMs} ms`}): the standby serves on` };
      this.#enter(
        { event: { type: 'switch-back', epoch: s.epoch + 1, gpu, reason: `${o.reason}: final pass to ${gpu.id} done (watermark ${synced.watermark}) in ${Math.round(finalSyncMs)} ms, freeze ${Math.round(freezeMs)} ms${processesFrozen ? ", the standby's processes stopped" : ''}` } },
        { msg: 'switching back to the new GPU: fencing the standby under the new epoch, then the route moves', level: 'warn', fields: { epoch: s.epoch + 1, hostId: gpu.id } },
      );
      done = true;
    } finally {
      this.#checking = false;
      if (!done) {
        this.#enter({ frozen: false }, { msg: 'switch back not started: the standby serves on, unfrozen' });
        if (processesFrozen) void this.#deps.hub.requestFreeze(o.standbyId, false, 5_000);
      }
    }
    this.#run(this.#resume('fence', 'primary', started).then(async () => {
      this.#deps.hub.regrant(o.standbyId);
      if (processesFrozen) await this.#deps.hub.requestFreeze(o.standbyId, false, 5_000);
    }));
    await this.idle();
    if (this.state.active !== 'primary') return { accepted: false, status: 503, why: 'the switch back did not reach its route (the proxy is closing)' };
    return { accepted: true, message: `switched back to ${gpu.id} at epoch ${this.state.epoch}` };
  }
}
