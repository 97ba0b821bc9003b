// The failover state machine: it gathers the signals, asks the detector for a
// verdict, and applies it. Fence before route: a failover logs the new epoch,
// fences the standby under it (retrying until it succeeds), and only then
// moves the route. Every step is an event in the durable log before it takes
// effect, so a proxy restarted mid-way resumes where it stopped.
import type { Logger } from '../log.ts';
import type { AgentHub } from './agent-hub.ts';
import { judge, phaseOf, type Verdict } from './detector.ts';
import type { Prober } from './prober.ts';
import type { Router } from './router.ts';
import { unfinished, type Phase, type ProxyState, type Side } from './state.ts';
import type { StateStore } from './state-store.ts';

export interface FenceOutcome {
  waitedMs: number;
  killed: number;
}

export interface FailoverDeps {
  store: StateStore;
  hub: AgentHub;
  router: Router;
  probes: Record<Side, Prober>;
  primaryId: string;
  windowMs: number;
  /** fences the standby at `epoch` (idempotent); rejects when the standby cannot be fenced */
  fence(epoch: number): Promise<FenceOutcome>;
  /** heartbeats are missing: a fence may follow; get ready for it (open the SSH connection) */
  prepareFence?(): void;
  log: Logger;
  /** how long a planned failover waits for the agent's final pass (default 10 s) */
  finalSyncMs?: number;
  /** pause between fence attempts (default 1 s) */
  fenceRetryMs?: number;
  /** called after every state change (metrics, grants) */
  changed?(state: ProxyState): void;
}

export interface PhaseTiming {
  detectMs: number | null;
  freezeMs: number | null;
  finalSyncMs: number | null;
  fenceMs: number;
  routeMs: number;
  totalMs: number;
}

export class Failover {
  #d: FailoverDeps;
  #busy: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** a freeze in force: the GPU's browser sockets are closed and pages get the transition page */
  frozen = false;
  lastVerdict: Verdict = { kind: 'healthy' };
  lastFenceError: string | null = null;
  /** performance.now() of the last evaluation: the watchdog's proof that the loop runs */
  lastEvaluatedAt = performance.now();
  lastTiming: PhaseTiming | undefined;
  /** a preemption notice the proxy received itself (provider status), in force until the failover */
  notice: { source: string; reason: string } | undefined;
  /** performance.now() when heartbeats were first seen missing in the current episode */
  #suspectSince: number | undefined;

  constructor(deps: FailoverDeps) {
    this.#d = deps;
  }

  get state(): ProxyState {
    return this.#d.store.state;
  }

  /** Starts watching; resumes a failover a previous run left half-done. */
  start(everyMs = 25): void {
    const left = unfinished(this.state);
    if (left) {
      this.#d.log.warn({ epoch: this.state.epoch, step: left }, 'resuming a failover the previous run left unfinished');
      this.#run(this.#resume(left));
    }
    this.#timer = setInterval(() => this.evaluate(), everyMs);
  }

  /** Reads the signals and acts on the verdict; cheap, called on a timer and on every signal. */
  evaluate(): void {
    this.lastEvaluatedAt = performance.now();
    if (this.#closed || this.#busy || this.state.active !== 'primary' || this.state.phase === 'failing_over') return;
    const agent = this.#d.hub.agents.get(this.#d.primaryId);
    const probe = this.#d.probes.primary;
    const now = performance.now();
    const verdict = judge({
      silenceMs: agent ? now - agent.lastHeartbeatAt : Infinity,
      connectionLost: agent !== undefined && !agent.connected && agent.disconnectedAt !== undefined,
      windowMs: this.#d.windowMs,
      probeFailures: probe.failures,
      probeError: probe.last?.error ?? null,
      preempted: (agent?.last?.preemption != null && agent.connected) || this.notice !== undefined,
      preemptionSource: this.notice?.source ?? agent?.last?.preemption?.source,
    });
    this.lastVerdict = verdict;
    if (verdict.kind === 'healthy') this.#suspectSince = undefined;
    else this.#suspectSince ??= now;
    // Half the window without a heartbeat, or a failed probe: a fence may be near, so its SSH
    // connection is opened now, off the path the switch waits on (it fences nothing by itself).
    const silenceMs = agent ? now - agent.lastHeartbeatAt : Infinity;
    if (verdict.kind !== 'healthy' || silenceMs > this.#d.windowMs / 2 || probe.failures > 0) this.#d.prepareFence?.();
    if (verdict.kind === 'failed') {
      this.#run(this.#failover(verdict.planned, verdict.reason));
      return;
    }
    this.#setPhase(phaseOf(verdict), verdict.kind === 'healthy' ? 'heartbeats flowing' : verdict.reason);
  }

  /** A preemption notice from a watcher of the proxy's own: a planned failover. */
  preemptionNotice(source: string, reason: string): void {
    this.#d.log.warn({ source, reason }, 'preemption notice');
    this.notice ??= { source, reason };
    this.evaluate();
  }

  /** A failover someone asked for (API, CLI): planned, so the agent gets a final pass first. */
  manual(reason: string): { accepted: boolean; why: string } {
    if (this.state.active !== 'primary') return { accepted: false, why: 'the standby already serves' };
    if (this.#busy || this.state.phase === 'failing_over') return { accepted: false, why: 'a failover is already under way' };
    this.#run(this.#failover(true, reason));
    return { accepted: true, why: reason };
  }

  /** Resolves when no failover step is running. */
  async idle(): Promise<void> {
    while (this.#busy) await this.#busy;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
  }

  #run(p: Promise<void>): void {
    const busy = p
      .catch((err: unknown) => this.#d.log.error({ err }, 'failover step failed'))
      .finally(() => {
        if (this.#busy === busy) this.#busy = undefined;
      });
    this.#busy = busy;
  }

  #setPhase(phase: Phase, reason: string): void {
    if (this.state.phase === phase) return;
    this.#d.log.info({ from: this.state.phase, to: phase, reason }, 'phase');
    this.#d.store.append({ type: 'phase', phase, reason });
    this.#d.changed?.(this.state);
  }

  async #failover(planned: boolean, reason: string): Promise<void> {
    const started = performance.now();
    const detectMs = this.#suspectSince !== undefined ? started - this.#suspectSince : null;
    this.#d.log.warn({ planned, reason }, 'failing over to the standby');
    let freezeMs: number | null = null;
    let finalSyncMs: number | null = null;
    if (planned) {
      // Freeze: the developer stops writing on the GPU before its last pass.
      this.frozen = true;
      const closed = this.#d.router.closeAll('primary');
      freezeMs = performance.now() - started;
      this.#d.log.info({ closed }, 'frozen: GPU connections closed, pages get the transition page');
      const t = performance.now();
      const synced = await this.#d.hub.requestSync(this.#d.primaryId, this.#d.finalSyncMs ?? 10_000);
      finalSyncMs = performance.now() - t;
      if (synced?.ok) this.#d.log.info({ watermark: synced.watermark, ms: Math.round(finalSyncMs) }, 'final sync pass done');
      else this.#d.log.warn({ answer: synced ?? null }, 'no final sync pass from the agent: failing over with what the standby has');
    }
    const hb = this.#d.hub.agents.get(this.#d.primaryId)?.last;
    this.#d.store.append({
      type: 'epoch',
      epoch: this.state.epoch + 1,
      planned,
      watermark: hb?.sync.watermark ?? null,
      pending: hb ? hb.sync.lastSeq - hb.sync.watermark : null,
      reason,
    });
    this.#d.changed?.(this.state);
    this.#d.hub.regrant(this.#d.primaryId); // the old primary hears "fenced" at once if it can still hear
    const fenceMs = await this.#fence();
    const routeMs = this.#route();
    this.lastTiming = { detectMs, freezeMs, finalSyncMs, fenceMs, routeMs, totalMs: performance.now() - started + (detectMs ?? 0) };
    this.#d.log.warn({ epoch: this.state.epoch, timing: this.lastTiming }, 'failed over: the standby serves');
  }

  async #resume(step: 'fence' | 'route'): Promise<void> {
    if (step === 'fence') await this.#fence();
    this.#route();
  }

  /** Fences at the current epoch, retrying until it works: traffic never moves to an unfenced standby. */
  async #fence(): Promise<number> {
    const epoch = this.state.epoch;
    const started = performance.now();
    for (let attempt = 1; !this.#closed; attempt++) {
      try {
        const r = await this.#d.fence(epoch);
        const ms = performance.now() - started;
        this.lastFenceError = null;
        this.#d.store.append({ type: 'fenced', epoch, waitedMs: r.waitedMs, killed: r.killed, reason: `fenced in ${Math.round(ms)} ms` });
        return ms;
      } catch (err) {
        this.lastFenceError = (err as Error).message;
        this.#d.log.error({ err: this.lastFenceError, attempt, epoch }, 'cannot fence the standby: traffic stays off it until the fence succeeds');
        await new Promise((r) => setTimeout(r, this.#d.fenceRetryMs ?? 1_000));
      }
    }
    throw new Error('proxy closed while fencing');
  }

  #route(): number {
    const t = performance.now();
    const closed = this.#d.router.closeAll('primary');
    this.#d.store.append({ type: 'routed', side: 'standby', epoch: this.state.epoch, ms: null, reason: `closed ${closed} GPU connections` });
    this.frozen = false;
    this.#d.changed?.(this.state);
    return performance.now() - t;
  }
}
