// Prometheus metrics at /_standby/metrics (prom-client, a registry of the
// proxy's own so tests can run several proxies in one process). Figures come
// from the accepted heartbeats (sync lag, pending), the durable events as the
// store appends them (failovers and their phases by cause, recovery steps,
// the standby machine's outages) and the state at scrape time. Every label
// value is a word from a fixed list (a phase, a step, a cause kind) or an
// enrolled host's id: never free text such as a reason or an error.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ReportCauseKind, ReportPhase } from '../protocol/admin-api.ts';
import type { Heartbeat } from '../protocol/messages.ts';
import type { AgentHub } from './agent-hub.ts';
import type { Phase, ProxyEvent, ProxyState, RecoveryStep } from './state.ts';

/** The state machine's phases, in the order of state.ts: one series each in standby_phase. */
export const PHASES: readonly Phase[] = ['waiting', 'normal', 'suspect', 'degraded', 'failing_over', 'failed_over', 'recovering', 'switching_back'];
/** A recovery's steps (state.ts RecoveryStep): one series each in standby_recovery_step. */
export const RECOVERY_STEPS: readonly RecoveryStep[] = ['started', 'search', 'intent', 'created', 'ssh-ready', 'agent-ready', 'restore', 'restored', 'failed', 'gave-up', 'done', 'old-gpu'];
/** Why a failover began, as a label (the failover report's kinds; unknown: an older log's epoch event without a cause). */
export const CAUSES: readonly ReportCauseKind[] = ['silence', 'connection-lost', 'preemption', 'manual', 'drill', 'unknown'];
/** The recovery steps that time a failover phase, and the phase (the failover report's names). */
const RECOVERY_PHASES: Partial<Record<RecoveryStep, ReportPhase>> = { search: 'gpu-search', created: 'provisioning', 'ssh-ready': 'ssh-ready', 'agent-ready': 'agent-ready', restored: 'restore' };

/** What decides whether a standby copy is reachable (read at scrape time). */
export interface StandbyCopyInputs {
  /** the side that serves */
  active: 'primary' | 'standby';
  /** the proxy's probe of the standby's code-server: its last answer was ok (undefined: not probed yet) */
  standbyProbeOk: boolean | undefined;
  /** the standby machine's provider said it is down (preempted, stopped, gone) and not up since */
  standbyDown: boolean;
  /** the serving GPU's agent's last accepted heartbeat's sync state, when it sent one */
  gpuSync: Heartbeat['sync'] | undefined;
}

/**
 * A copy of the workspace another machine holds, that the proxy could switch to: the GPU serves, the standby
 * machine is not reported down, its code-server answers the proxy's probe, and the GPU's agent's last pass to
 * it did not fail (no heartbeat yet: the probe decides). While the standby itself serves there is no second
 * copy: 0 until a recovery switches back to a new GPU.
 */
export function standbyCopyReachable(i: StandbyCopyInputs): boolean {
  if (i.active !== 'primary' || i.standbyDown || i.standbyProbeOk !== true) return false;
  return i.gpuSync === undefined || i.gpuSync.lastError === null;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly failovers: Counter;
  readonly phaseSeconds: Histogram;
  readonly heartbeats: Counter;
  readonly syncLag: Histogram;
  readonly failoverPhaseSeconds: Histogram;
  readonly recoveryFailures: Counter;
  #phaseSince = performance.now();
  #phase: string;
  /** the failover under way (its epoch event seen, not yet routed to the standby) and its cause */
  #open: { epoch: number; cause: ReportCauseKind } | undefined;
  /** the last failover that reached the standby: a switch back and a recovery time phases of it */
  #lastSucceeded: { epoch: number; cause: ReportCauseKind } | undefined;
  /** the epoch of the switch back under way */
  #switchBack: number | undefined;
  /** phases already observed per failover epoch (a resumed step is logged again: its first time counts, as in the report) */
  #observed = new Map<number, Set<ReportPhase>>();
  /** the standby machine reported down by its provider, not up since */
  #standbyDown = false;

  /** `recent`: the events already in the log (oldest first): what a failover under way or a switch back relates to, replayed without counting */
  constructor(hub: AgentHub, state: () => ProxyState, recent: readonly ProxyEvent[] = []) {
    const registry = this.registry;
    // event-loop delay sampled every 100 ms, not prom-client's 10 ms: the 10 ms timer cost ~4.5 ms of CPU a second on an idle proxy (docs/benchmarks.md, proxy-profile)
    collectDefaultMetrics({ register: registry, prefix: 'standby_proxy_', eventLoopMonitoringPrecision: 100 });
    this.failovers = new Counter({ name: 'standby_failovers_total', help: 'failovers to the standby begun (a new epoch logged), by cause kind', labelNames: ['planned', 'cause'], registers: [registry] });
    this.syncLag = new Histogram({
      name: 'standby_heartbeat_sync_lag_seconds',
      help: "age of the oldest change not yet on the standby, as each accepted heartbeat reported it (0 when none)",
      labelNames: ['host'],
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800],
      registers: [registry],
    });
    this.failoverPhaseSeconds = new Histogram({
      name: 'standby_failover_phase_duration_seconds',
      help: "a failover's phases as its durable events time them (the failover report's phases), by the failover's cause kind",
      labelNames: ['phase', 'cause'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600],
      registers: [registry],
    });
    this.recoveryFailures = new Counter({
      name: 'standby_recovery_failures_total',
      help: 'recovery tries that failed (step="failed": rolled back, another may follow) and recoveries that gave up (step="gave-up": the standby serves on)',
      labelNames: ['step'],
      registers: [registry],
    });
    new Gauge({
      name: 'standby_phase',
      help: "1 for the failover state machine's current phase, 0 for the others",
      labelNames: ['phase'],
      registers: [registry],
      collect() {
        const now = state().phase;
        for (const p of PHASES) this.set({ phase: p }, p === now ? 1 : 0);
      },
    });
    new Gauge({
      name: 'standby_recovery_step',
      help: 'the recovery under way (or the last one): 1 for its current step, 0 for the others; all 0 when none ever ran',
      labelNames: ['step'],
      registers: [registry],
      collect() {
        const now = state().recovery?.step;
        for (const step of RECOVERY_STEPS) this.set({ step }, step === now ? 1 : 0);
      },
    });
    this.heartbeats = new Counter({ name: 'standby_heartbeats_total', help: 'heartbeats received', labelNames: ['host'], registers: [registry] });
    this.phaseSeconds = new Histogram({
      name: 'standby_phase_duration_seconds',
      help: 'time spent in each phase of the failover state machine, observed when the phase ends',
      labelNames: ['phase'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600],
      registers: [registry],
    });
    new Gauge({
      name: 'standby_heartbeat_age_seconds',
      help: 'time since the last heartbeat of each agent (proxy clock)',
      labelNames: ['host'],
      registers: [registry],
      collect() {
        const now = performance.now();
        for (const a of hub.agents.values()) this.set({ host: a.hostId }, (now - a.lastHeartbeatAt) / 1000);
      },
    });
    new Gauge({
      name: 'standby_sync_lag_seconds',
      help: 'age of the oldest change the agent has not yet acknowledged, as of its last heartbeat (0 when none)',
      labelNames: ['host'],
      registers: [registry],
      collect() {
        for (const a of hub.agents.values()) if (a.last) this.set({ host: a.hostId }, (a.last.sync.oldestPendingAgeMs ?? 0) / 1000);
      },
    });
    new Gauge({
      name: 'standby_sync_pending_changes',
      help: 'changes the agent has not yet acknowledged, as of its last heartbeat',
      labelNames: ['host'],
      registers: [registry],
      collect() {
        for (const a of hub.agents.values()) if (a.last) this.set({ host: a.hostId }, a.last.sync.lastSeq - a.last.sync.watermark);
      },
    });
    new Gauge({
      name: 'standby_epoch',
      help: 'the current fencing epoch',
      registers: [registry],
      collect() {
        this.set(state().epoch);
      },
    });
    new Gauge({
      name: 'standby_active_backend',
      help: '1 for the side that serves the URL',
      labelNames: ['side'],
      registers: [registry],
      collect() {
        const s = state();
        this.set({ side: 'primary' }, s.active === 'primary' ? 1 : 0);
        this.set({ side: 'standby' }, s.active === 'standby' ? 1 : 0);
      },
    });
    this.#phase = state().phase;
    // start at zero for every cause and step, so rate() and increase() see the first one
    for (const cause of CAUSES) for (const planned of ['true', 'false']) this.failovers.inc({ planned, cause }, 0);
    for (const step of ['failed', 'gave-up']) this.recoveryFailures.inc({ step }, 0);
    for (const e of recent) this.#follow(e, false);
  }

  /** An accepted heartbeat: counted, and its sync lag observed. */
  heartbeat(hostId: string, hb: Heartbeat): void {
    this.heartbeats.inc({ host: hostId });
    this.syncLag.observe({ host: hostId }, (hb.sync.oldestPendingAgeMs ?? 0) / 1000);
  }

  /** An event the store appended (StateStore.onAppend). */
  event(e: ProxyEvent): void {
    this.#follow(e, true);
  }

  /** Whether a standby copy is reachable (standby_copy_reachable), from what `read` says at scrape time. */
  watchStandbyCopy(read: () => Omit<StandbyCopyInputs, 'standbyDown'>): void {
    const down = (): boolean => this.#standbyDown;
    new Gauge({
      name: 'standby_copy_reachable',
      help: "1 when the GPU serves and a standby copy is reachable: the standby machine not reported down, its code-server answering the proxy's probe, the GPU agent's last pass to it without error; 0 otherwise (also while the standby itself serves)",
      registers: [this.registry],
      collect() {
        this.set(standbyCopyReachable({ ...read(), standbyDown: down() }) ? 1 : 0);
      },
    });
  }

  /** Follows the event log as the failover report reads it (failover-report.ts); `count`: false while replaying what was there at start. */
  #follow(e: ProxyEvent, count: boolean): void {
    const phase = (epoch: number, cause: ReportCauseKind, name: ReportPhase, ms: number | null | undefined): void => {
      const seen = this.#observed.get(epoch) ?? new Set<ReportPhase>();
      if (ms === null || ms === undefined || seen.has(name)) return;
      seen.add(name);
      this.#observed.set(epoch, seen);
      if (this.#observed.size > 100) this.#observed.delete(this.#observed.keys().next().value!);
      if (count) this.failoverPhaseSeconds.observe({ phase: name, cause }, ms / 1000);
    };
    switch (e.type) {
      case 'epoch': {
        const cause: ReportCauseKind = e.cause?.kind ?? 'unknown';
        this.#open = { epoch: e.epoch, cause };
        if (count) this.failovers.inc({ planned: String(e.planned), cause });
        if (e.planned) phase(e.epoch, cause, 'final-pass', e.leadMs);
        else phase(e.epoch, cause, 'detection', e.heartbeatAgeMs);
        break;
      }
      case 'fenced':
        if (this.#open?.epoch === e.epoch) phase(e.epoch, this.#open.cause, 'fence', e.ms);
        break;
      case 'routed':
        if (e.side === 'standby' && this.#open?.epoch === e.epoch) {
          phase(e.epoch, this.#open.cause, 'route', e.ms);
          this.#lastSucceeded = this.#open;
          this.#open = undefined;
        } else if (e.side === 'primary' && this.#switchBack === e.epoch) {
          if (this.#lastSucceeded) phase(this.#lastSucceeded.epoch, this.#lastSucceeded.cause, 'switch-back', e.totalMs);
          this.#switchBack = undefined;
        }
        break;
      case 'aborted':
        if (e.side === 'standby') this.#switchBack = undefined;
        else if (this.#open?.epoch === e.epoch) this.#open = undefined;
        break;
      case 'switch-back':
        this.#switchBack = e.epoch;
        break;
      case 'recovery': {
        if (count && (e.step === 'failed' || e.step === 'gave-up')) this.recoveryFailures.inc({ step: e.step });
        const name = RECOVERY_PHASES[e.step];
        const of = this.#lastSucceeded?.epoch === e.epoch ? this.#lastSucceeded : undefined;
        // a search that found nothing is no search phase (the report counts it so too)
        if (of && name && !(e.step === 'search' && e.error)) phase(of.epoch, of.cause, name, e.ms);
        break;
      }
      case 'standby':
        this.#standbyDown = e.kind === 'down';
        break;
      case 'started':
      case 'phase':
      case 'gpu-seen':
      case 'notice':
      case 'resume':
        break;
    }
  }

  /**
   * What the front door and the token checks refused, read from their own
   * counters at scrape time (nothing is counted twice on the request path).
   */
  watchRefusals(read: () => { perClientCap: number; slowUploads: number; authFailures: number; authLockouts: number; droppedHeartbeats: number }): void {
    const registry = this.registry;
    const counter = (name: string, help: string, pick: (r: ReturnType<typeof read>) => number): void => {
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(pick(read()));
        },
      });
    };
    counter('standby_connections_refused_total', 'connections refused by limits.maxConnectionsPerClient (429)', (r) => r.perClientCap);
    counter('standby_uploads_cut_total', 'request bodies cut for arriving slower than limits.bodyMinBytesPerSecond', (r) => r.slowUploads);
    counter('standby_auth_failures_total', 'failed authentications (admin API, metrics, agent socket, enrollment, bundle)', (r) => r.authFailures);
    counter('standby_auth_lockouts_total', 'client addresses locked out after auth.maxFailures', (r) => r.authLockouts);
    counter('standby_heartbeats_dropped_total', 'heartbeats dropped for disagreeing with what the proxy knows (epoch, sequence, watermark)', (r) => r.droppedHeartbeats);
  }

  /** Records the end of the phase in force when the phase changes. */
  phaseChanged(phase: string): void {
    if (phase === this.#phase) return;
    const now = performance.now();
    this.phaseSeconds.observe({ phase: this.#phase }, (now - this.#phaseSince) / 1000);
    this.#phase = phase;
    this.#phaseSince = now;
  }
}
