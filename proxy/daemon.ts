// Wires the proxy for `standby proxy`: durable state, the router, the agent
// hub, the probes, the failover state machine, the API and the one listener.
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.ts';
import type { Role } from '../protocol/messages.ts';
import { AgentHub } from './agent-hub.ts';
import { fullStatus, serveApi, type ApiContext } from './api.ts';
import type { ProxyConfig } from './config.ts';
import { Failover, type FenceOutcome, type FencePurpose } from './failover.ts';
import { authorizeOnStandby, fenceStandby, revokeOnStandby, type FenceResult } from './fence.ts';
import { HostAdmin } from './host-admin.ts';
import { HostRegistry } from './host-registry.ts';
import { FenceWarmup } from './fence-warmup.ts';
import { ProxyMetrics } from './metrics.ts';
import type { PublicStatus } from './pages/public-status.ts';
import { transitionPage } from './pages/transition.ts';
import { VastStatusWatcher } from './notices/vast-status.ts';
import { Prober } from './prober.ts';
import { Router, type Backend } from './router.ts';
import { createProxyServer } from './server.ts';
import type { Side } from './state.ts';
import { StateStore } from './state-store.ts';

export interface ProxyOptions {
  /** fences the standby at an epoch; the default runs the receiver's fence over SSH (proxy/fence.ts) */
  fence?: (epoch: number) => Promise<FenceOutcome>;
}

export interface Proxy {
  url: string;
  port: number;
  store: StateStore;
  hub: AgentHub;
  hosts: HostAdmin;
  failover: Failover;
  router: Router;
  status(): Record<string, unknown>;
  close(): Promise<void>;
}

const MESSAGES: Record<string, string> = {
  waiting: 'Waiting for the GPU: its agent has not connected yet.',
  switching_back: 'Moving your workspace back to the GPU...',
  normal: 'The GPU serves your workspace.',
  suspect: 'The GPU stopped answering; checking it...',
  degraded: 'The GPU answers but its agent is silent.',
  failing_over: 'Moving your workspace to the standby...',
  failed_over: 'Your workspace now runs on the standby.',
};

export async function startProxy(config: ProxyConfig, log: Logger, options: ProxyOptions = {}): Promise<Proxy> {
  const store = StateStore.open(config.stateDir);
  store.append({ type: 'started', reason: `proxy started (epoch ${store.state.epoch}, ${store.state.active} serves)` });
  const backends: Record<Side, Backend> = {
    primary: { side: 'primary', id: config.primary.id, url: config.primary.url },
    standby: { side: 'standby', id: config.standby.id, url: config.standby.url },
  };
  const d = config.detector;
  const probes: Record<Side, Prober> = {
    primary: new Prober(config.primary.url, d.probePath, d.probeIntervalMs, d.probeTimeoutMs),
    standby: new Prober(config.standby.url, d.probePath, d.probeIntervalMs, d.probeTimeoutMs),
  };
  const router = new Router(log);
  const ssh = config.standby.ssh;
  const onStandby = { command: ssh.command, stateDir: ssh.stateDir, timeoutMs: ssh.timeoutMs };
  const hosts = new HostAdmin(HostRegistry.open(config.stateDir), config, {
    authorize: (hostId, publicKey) => authorizeOnStandby(ssh, hostId, publicKey, onStandby),
    revoke: (hostIds) => revokeOnStandby(ssh, hostIds, { ...onStandby, waitMs: ssh.waitMs }),
  }, log);

  // eslint-style forward reference: the hub asks the state machine what to grant
  let failover: Failover | undefined;
  const grant = (hostId: string): { role: Role; epoch: number; reason: string } => {
    const s = store.state;
    if (hostId !== config.primary.id) return { role: 'fenced', epoch: s.epoch, reason: 'only the GPU pushes to the standby today' };
    if (s.active !== 'primary' || s.phase === 'failing_over') return { role: 'fenced', epoch: s.epoch, reason: `failed over to ${config.standby.id} at epoch ${s.epoch}` };
    return { role: 'primary', epoch: s.epoch, reason: 'the GPU serves' };
  };
  const hub = new AgentHub(config.standby.agentToken ? [config.primary.id, config.standby.id] : [config.primary.id], {
    authenticate: (token) => hosts.authenticate(token),
    grant,
    heartbeat: (hostId) => {
      metrics.heartbeats.inc({ host: hostId });
      failover?.evaluate();
    },
    disconnected: () => failover?.evaluate(),
  }, log);
  hosts.attach(hub);
  const metrics = new ProxyMetrics(hub, () => store.state);

  const warmup = options.fence ? undefined : new FenceWarmup(ssh, log);
  // a failover's fence revokes the GPU it fences: its key under the fence's lock on the standby, its token
  // only once the fence succeeded (an aborted failover leaves the GPU its credentials); a switch back revokes no GPU
  const fence = async (epoch: number, purpose: FencePurpose): Promise<FenceOutcome> => {
    const gpu = purpose === 'failover' ? config.primary.id : undefined;
    const revoke = hosts.fenceRevocations(gpu);
    let outcome: FenceOutcome;
    let result: FenceResult | undefined;
    if (options.fence) outcome = await options.fence(epoch);
    else {
      result = await fenceStandby(ssh, epoch, { ...onStandby, waitMs: ssh.waitMs, revoke, client: warmup?.take() });
      outcome = { waitedMs: result.waitedMs, killed: result.killed };
    }
    if (gpu !== undefined) hosts.revokeFenced(gpu, epoch);
    if (result) hosts.fenced(result);
    return outcome;
  };
  failover = new Failover({
    store,
    hub,
    router,
    probes,
    primaryId: config.primary.id,
    windowMs: d.heartbeatIntervalMs * d.missedHeartbeats,
    fence,
    preemptionConfirmMs: d.preemptionConfirmMs,
    prepareFence: () => warmup?.warm(),
    log,
    changed: (s) => {
      metrics.phaseChanged(s.phase);
      if (s.phase === 'failing_over') metrics.failovers.inc({ planned: String(failover?.lastVerdict.kind === 'failed' ? failover.lastVerdict.planned : true) });
    },
  });
  const fo = failover;
  probes.primary.onResult = () => fo.evaluate();

  /** where traffic goes now: the active side, unless it is frozen, mid-failover, or its code-server is known down */
  const target = (): Backend | undefined => {
    const s = store.state;
    if (fo.frozen || s.phase === 'failing_over' || s.phase === 'switching_back') return undefined;
    const p = probes[s.active];
    if (s.active === 'standby' && p.last && !p.last.ok) return undefined;
    if (s.active === 'primary' && fo.lastVerdict.kind === 'failed') return undefined;
    // a first run whose GPU is not up yet: the transition page ("waiting for the GPU"), not a dead backend
    if (s.active === 'primary' && s.phase === 'waiting' && p.last && !p.last.ok) return undefined;
    return backends[s.active];
  };
  const publicStatus = (): PublicStatus => {
    const s = store.state;
    const to = target();
    const phase = fo.frozen && s.phase !== 'failing_over' && s.phase !== 'switching_back' ? (s.active === 'standby' ? 'switching_back' : 'failing_over') : s.phase;
    return {
      phase,
      active: s.phase === 'failing_over' || s.phase === 'switching_back' ? null : { role: s.active, id: backends[s.active].id },
      ready: to !== undefined,
      message: fo.lastFenceError && s.phase === 'failing_over'
        ? `Waiting to lock the standby: ${fo.lastFenceError.slice(0, 200)}`
        : to === undefined && s.phase === 'failed_over'
          ? `The standby ${config.standby.id} is taking over; waiting for its code-server...`
          : MESSAGES[phase] ?? phase,
    };
  };
  const ctx: ApiContext = { config, store, hub, hosts, failover: fo, probes, metrics, publicStatus, openSockets: () => router.openSockets() };
  const { server, sockets } = createProxyServer({
    config,
    router,
    hub,
    log,
    target,
    transitionPage: () => {
      const st = publicStatus();
      const s = store.state;
      const back = s.phase === 'switching_back' || (fo.frozen && s.active === 'standby');
      const toStandby = !back && (s.active === 'standby' || s.phase === 'failing_over' || fo.frozen);
      const gpu = { id: config.primary.id, kind: 'GPU' };
      const cpu = { id: config.standby.id, kind: 'CPU standby' };
      return transitionPage({ from: toStandby ? gpu : cpu, to: toStandby ? cpu : gpu, phase: st.phase, message: st.message, pollMs: 500 });
    },
    api: (req, res) => serveApi(ctx, req, res),
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  probes.primary.start();
  probes.standby.start();
  fo.start();
  const vast = config.primary.notices.vast ? new VastStatusWatcher(config.primary.notices.vast, (source, reason) => fo.preemptionNotice(source, reason), log) : undefined;
  vast?.start();
  const port = (server.address() as AddressInfo).port;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  const url = `${config.tls ? 'https' : 'http'}://${host}:${port}`;
  log.info({ url, epoch: store.state.epoch, active: store.state.active, phase: store.state.phase }, 'proxy listening');

  return {
    url,
    port,
    store,
    hub,
    hosts,
    failover: fo,
    router,
    status: () => fullStatus(ctx),
    async close() {
      fo.close();
      vast?.close();
      warmup?.close();
      probes.primary.close();
      probes.standby.close();
      hub.close();
      router.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      await fo.idle().catch(() => undefined);
      store.close();
    },
  };
}
