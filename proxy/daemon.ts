// Wires the proxy for `standby proxy`: durable state, the router, the agent
// hub, the probes, the failover state machine, the API and the one listener.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { requirePrivateFile } from '../config-file.ts';
import type { Logger } from '../log.ts';
import type { Role } from '../protocol/messages.ts';
import { AdminTokens, type AdminTokenSettings } from './admin-tokens.ts';
import { AgentHub } from './agent-hub.ts';
import { fullStatus, serveApi, serveMetrics, type ApiContext } from './api.ts';
import { AuthThrottle } from './auth-throttle.ts';
import { ForwardedHeaders } from './forwarded-headers.ts';
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
import { lockStateDir } from './state-lock.ts';
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
  /** failed authentication, per client address (bundle downloads use it too) */
  throttle: AuthThrottle;
  /** the metrics listener's URL when metrics.listen is set */
  metricsUrl: string | undefined;
  status(): Record<string, unknown>;
  /** new admin tokens (proxy.json re-read on SIGHUP): the former one stays valid for auth.rotationGraceMs */
  reloadAdminTokens(settings: AdminTokenSettings): void;
  close(): Promise<void>;
}

// What anyone at the URL is told, per phase: fixed words only. What went
// wrong and where (fence errors, addresses, host ids) is in the admin API's
// status and the log.
const MESSAGES: Record<string, string> = {
  waiting: 'Waiting for the GPU: its agent has not connected yet.',
  switching_back: 'Moving your workspace back to the GPU...',
  normal: 'The GPU serves your workspace.',
  suspect: 'The GPU stopped answering; checking it...',
  degraded: 'The GPU serves your workspace.',
  failing_over: 'Your workspace is moving to the standby...',
  failed_over: 'Your workspace now runs on the standby.',
};
/** a phase without words of its own */
const OTHER_PHASE = 'The proxy is preparing your workspace...';
/** failing over, the standby not yet fenced (the fence failed and is retried) */
const PREPARING_STANDBY = 'The standby is being prepared...';
/** failed over, the standby's code-server not answering yet */
const STANDBY_STARTING = 'Your workspace is starting on the standby...';

export async function startProxy(config: ProxyConfig, log: Logger, options: ProxyOptions = {}): Promise<Proxy> {
  requirePrivateFile(config.standby.ssh.identityFile, "the proxy's fencing key (standby.ssh.identityFile)");
  if (config.tls) requirePrivateFile(config.tls.key, 'the TLS private key (tls.key)');
  // before anything in the folder is written: a second proxy on it stops here
  const lock = await lockStateDir(config.stateDir);
  try {
    return await run(config, log, options, () => lock.release());
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function run(config: ProxyConfig, log: Logger, options: ProxyOptions, unlock: () => void): Promise<Proxy> {
  const store = StateStore.open(config.stateDir);
  store.append({ type: 'started', reason: `proxy started (epoch ${store.state.epoch}, ${store.state.active} serves)` });
  const backends: Record<Side, Backend> = {
    primary: { side: 'primary', id: config.primary.id, url: config.primary.url },
    standby: { side: 'standby', id: config.standby.id, url: config.standby.url },
  };
  const d = config.detector;
  // the side that serves is probed every probeIntervalMs; the other, in steady phases, every passiveProbeIntervalMs
  // (its answer matters only once something happens, and then it is hurried: see changed below)
  const steady = new Set(['normal', 'waiting', 'failed_over']);
  const probePace = (side: Side): number => (store.state.active !== side && steady.has(store.state.phase) ? d.passiveProbeIntervalMs : d.probeIntervalMs);
  const probes: Record<Side, Prober> = {
    primary: new Prober(config.primary.url, d.probePath, () => probePace('primary'), d.probeTimeoutMs),
    standby: new Prober(config.standby.url, d.probePath, () => probePace('standby'), d.probeTimeoutMs),
  };
  const router = new Router(log);
  // passive health (proxy/prober.ts): in steady phases the serving side's answers to forwarded requests
  // stand in for its probes, so under traffic it is not probed; a failed forwarded request probes it
  for (const side of ['primary', 'standby'] as const) {
    let seen = 0;
    probes[side].answeredSinceTick = () => {
      const answered = router.answered[side] !== seen;
      seen = router.answered[side];
      return answered && store.state.active === side && steady.has(store.state.phase);
    };
  }
  router.onForwardFailed = (side) => probes[side].forwardFailed();
  const ssh = config.standby.ssh;
  const onStandby = { command: ssh.command, stateDir: ssh.stateDir, timeoutMs: ssh.timeoutMs };
  const forwarded = new ForwardedHeaders(config.trustedProxies, config.tls !== undefined);
  const throttle = new AuthThrottle(config.auth, log, undefined, (req) => forwarded.clientOf(req));
  const adminTokens = new AdminTokens(config, config.auth.rotationGraceMs);
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
  }, throttle, log);
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
    // switch-back: the GPU's agent compares its workspace with the standby's (a dry run through the receiver)
    verifyPrimary: async (timeoutMs) => {
      const answer = await hub.requestVerify(config.primary.id, timeoutMs);
      if (!answer) return { ok: false, error: `its agent gave no answer within ${Math.round(timeoutMs / 1000)} s` };
      if (!answer.ok) return { ok: false, error: answer.error ?? 'the comparison failed' };
      return { ok: true, differences: answer.total };
    },
    log,
    changed: (s) => {
      metrics.phaseChanged(s.phase);
      if (!steady.has(s.phase)) for (const side of ['primary', 'standby'] as const) probes[side].hurry();
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
      active: s.phase === 'failing_over' || s.phase === 'switching_back' ? null : { role: s.active },
      ready: to !== undefined,
      message: fo.lastFenceError && s.phase === 'failing_over'
        ? PREPARING_STANDBY
        : to === undefined && s.phase === 'failed_over'
          ? STANDBY_STARTING
          : MESSAGES[phase] ?? OTHER_PHASE,
    };
  };
  const ctx: ApiContext = { config, store, hub, hosts, failover: fo, probes, metrics, publicStatus, openSockets: () => router.openSockets(), throttle, adminTokens, log };
  const { server, sockets, limits } = createProxyServer({
    config,
    router,
    hub,
    log,
    forwarded,
    target,
    transitionPage: () => {
      const st = publicStatus();
      const s = store.state;
      const back = s.phase === 'switching_back' || (fo.frozen && s.active === 'standby');
      const toStandby = !back && (s.active === 'standby' || s.phase === 'failing_over' || fo.frozen);
      // roles, not host ids: the operator's names are not the public's business
      const gpu = { kind: 'GPU' };
      const cpu = { kind: 'CPU standby' };
      return transitionPage({ from: toStandby ? gpu : cpu, to: toStandby ? cpu : gpu, phase: st.phase, message: st.message, pollMs: 500 });
    },
    api: (req, res) => serveApi(ctx, req, res),
  });
  metrics.watchRefusals(() => ({
    perClientCap: limits.refused,
    slowUploads: limits.cutUploads,
    authFailures: throttle.failures,
    authLockouts: throttle.lockouts,
    droppedHeartbeats: [...hub.agents.values()].reduce((n, a) => n + a.dropped, 0),
  }));

  // the phase this start begins in (waiting for the GPU, or normal) is logged before anyone can connect:
  // the first client never sees a phase that a tick later changes by itself
  fo.evaluate();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // metrics without auth on a listener of their own (loopback by default), for a local Prometheus
  let metricsServer: Server | undefined;
  let metricsUrl: string | undefined;
  if (config.metrics.listen) {
    const ml = config.metrics.listen;
    const ms = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if ((path === '/metrics' || path === '/_standby/metrics') && (req.method === 'GET' || req.method === 'HEAD')) {
        serveMetrics(metrics, res).catch((err: unknown) => {
          log.error({ err }, 'metrics failed');
          if (!res.headersSent) res.writeHead(500);
          res.end();
        });
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('metrics are at /metrics\n');
    });
    ms.on('clientError', (_err, socket) => socket.destroy());
    try {
      await new Promise<void>((resolve, reject) => {
        ms.once('error', reject);
        ms.listen(ml.port, ml.host, () => {
          ms.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      server.close();
      throw err;
    }
    metricsServer = ms;
    const mh = ml.host.includes(':') ? `[${ml.host}]` : ml.host;
    metricsUrl = `http://${mh}:${(ms.address() as AddressInfo).port}/metrics`;
    log.info({ url: metricsUrl }, 'metrics listening (no auth: keep this address private)');
  }
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
    throttle,
    metricsUrl,
    status: () => fullStatus(ctx),
    reloadAdminTokens(settings) {
      const r = adminTokens.reload(settings);
      log.warn({ changed: r.changed, retiringTokens: r.previous, graceMs: config.auth.rotationGraceMs }, r.changed ? 'admin token replaced: the former one stays valid for the grace window' : 'admin tokens reloaded');
    },
    async close() {
      metricsServer?.closeAllConnections();
      metricsServer?.close();
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
      unlock();
    },
  };
}
