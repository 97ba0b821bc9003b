// Prometheus metrics at /_standby/metrics (prom-client, a registry of the
// proxy's own so tests can run several proxies in one process).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AgentHub } from './agent-hub.ts';
import type { ProxyState } from './state.ts';

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly failovers: Counter;
  readonly phaseSeconds: Histogram;
  readonly heartbeats: Counter;
  #phaseSince = performance.now();
  #phase: string;

  constructor(hub: AgentHub, state: () => ProxyState) {
    const registry = this.registry;
    // event-loop delay sampled every 100 ms, not prom-client's 10 ms: the 10 ms timer cost ~4.5 ms of CPU a second on an idle proxy (docs/benchmarks.md, proxy-profile)
    collectDefaultMetrics({ register: registry, prefix: 'standby_proxy_', eventLoopMonitoringPrecision: 100 });
    this.failovers = new Counter({ name: 'standby_failovers_total', help: 'failovers to the standby', labelNames: ['planned'], registers: [registry] });
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
