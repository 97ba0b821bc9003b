// Wires the proxy for `standby proxy`: durable state, the router, the agent
// hub, the probes, the failover state machine, the route (the active side),
// the API and the one listener.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { requirePrivateFile } from '../config/file.ts';
import type { Logger } from '../core/log.ts';
import { AdminSession } from './admin-session.ts';
import { AdminTokens, type AdminTokenSettings } from './admin-tokens.ts';
import { AgentHub, type HubGrant } from './agent-hub.ts';
import type { PushedSettings } from '../protocol/messages.ts';
import { fullStatus, serveApi, serveMetrics, type ApiContext } from './api.ts';
import { AuthThrottle } from './auth-throttle.ts';
import { ForwardedHeaders } from './forwarded-headers.ts';
import type { ProxyConfig } from '../config/proxy.ts';
import { doubted } from './detector.ts';
import { Dashboard } from './dashboard.ts';
import { EditorEvents } from './editor-events.ts';
import { LagHistory } from './lag-history.ts';
import { WorkbenchWarmup } from './workbench-warmup.ts';
import { Failover, type FenceOutcome, type FencePurpose } from './failover.ts';
import { authorizeOnStandby, fenceStandby, revokeOnStandby, type FenceResult } from './fence.ts';
import { HostAdmin } from './host-admin.ts';
import { HostRegistry } from './host-registry.ts';
import { LiveSettingsStore } from './live-settings.ts';
import { FenceWarmup } from './fence-warmup.ts';
import { ProxyMetrics } from './metrics.ts';
import { VastStatusWatcher } from './notices/vast-status.ts';
import { Prober } from './prober.ts';
import { proxyPublicUrl } from './bundle.ts';
import { setupRecovery, fenceNewGpu, type RecoverySetup } from './recovery-setup.ts';
import { ResumeEvents } from './resume-events.ts';
import { Route } from './route.ts';
import { Login } from './login.ts';
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
  /** the settings changed live, over proxy.json's */
  settings: LiveSettingsStore;
  /** the recovery (and its local provider), when proxy.json has a recovery section */
  recovery: RecoverySetup | undefined;
  status(): Record<string, unknown>;
  /** new admin tokens (proxy.json re-read on SIGHUP): the former one stays valid for auth.rotationGraceMs */
  reloadAdminTokens(settings: AdminTokenSettings): void;
  close(): Promise<void>;
}

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

async function run(fileConfig: ProxyConfig, log: Logger, options: ProxyOptions, unlock: () => void): Promise<Proxy> {
  // proxy.json with the overrides changed live over it: `config` is what this start begins with; a live field
  // is read from settings.config where it is used (the detector, autoFailover, recovery, the agents' sync)
  const settings = LiveSettingsStore.open(fileConfig, log);
  const config = settings.config;
  const store = StateStore.open(config.stateDir);
  store.append({ type: 'started', reason: `proxy started (epoch ${store.state.epoch}, ${store.state.active} serves)` });
  // the GPU in service: the configured one until a recovery switches back to a new one (the durable state says)
  const gpu = () => store.state.gpu ?? { id: config.primary.id, url: config.primary.url };
  const backends: Record<Side, Backend> = {
    primary: { side: 'primary', id: gpu().id, url: gpu().url },
    standby: { side: 'standby', id: config.standby.id, url: config.standby.url },
  };
  const d = (): ProxyConfig['detector'] => settings.config.detector;
  // the side that serves is probed every probeIntervalMs; the other, in steady phases, every passiveProbeIntervalMs
  // (its answer matters only once something happens, and then it is hurried: see changed below)
  const steady = new Set(['normal', 'waiting', 'failed_over']);
  const probePace = (side: Side): number => (store.state.active !== side && steady.has(store.state.phase) ? d().passiveProbeIntervalMs : d().probeIntervalMs);
  const probes: Record<Side, Prober> = {
    primary: new Prober(gpu().url, config.detector.probePath, () => probePace('primary'), () => d().probeTimeoutMs),
    standby: new Prober(config.standby.url, config.detector.probePath, () => probePace('standby'), () => d().probeTimeoutMs),
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
  router.onForwardFailed = (side, refused) => {
    probes[side].forwardFailed(refused);
    editorSignal();
  };
  const ssh = config.standby.ssh;
  const onStandby = { command: ssh.command, stateDir: ssh.stateDir, timeoutMs: ssh.timeoutMs };
  const forwarded = new ForwardedHeaders(config.trustedProxies, config.tls !== undefined);
  const throttle = new AuthThrottle(config.auth, log, undefined, (req) => forwarded.clientOf(req));
  const adminTokens = new AdminTokens(config, config.auth.rotationGraceMs);
  const hosts = new HostAdmin(HostRegistry.open(config.stateDir), config, {
    authorize: (hostId, publicKey) => authorizeOnStandby(ssh, hostId, publicKey, onStandby),
    revoke: (hostIds) => revokeOnStandby(ssh, hostIds, { ...onStandby, waitMs: ssh.waitMs }),
  }, log);

  // the dashboard: its session (the admin token typed into a form), the lag chart's history
  const adminSession = new AdminSession(config.stateDir, adminTokens, throttle, log, config.publicUrl);
  const lagHistory = new LagHistory({ stateDir: config.stateDir, log });
  // the agent whose sync state is the copy's: the GPU's while it serves, the standby's while it does (a restore)
  const writerId = () => (store.state.active === 'primary' ? gpu().id : config.standby.id);

  // the sync settings the serving agent applies (grant.settings): to the agent granted primary, and to the standby's
  // own agent while the standby serves; the fields proxy.json and the live settings leave unset stay the agent's own
  function withSyncSettings(hostId: string, grant: HubGrant): HubGrant {
    const serving = grant.role === 'primary' || (store.state.active === 'standby' && hostId === config.standby.id);
    const a = settings.config.agentSync;
    if (!serving || a === undefined) return grant;
    const pushed: PushedSettings = {
      ...(a.delayMs === undefined ? {} : { delayMs: a.delayMs }),
      ...(a.maxDelayMs === undefined ? {} : { maxDelayMs: a.maxDelayMs }),
      ...(a.exclude === undefined ? {} : { exclude: [...a.exclude] }),
    };
    return Object.keys(pushed).length === 0 ? grant : { ...grant, settings: pushed };
  }
  // the new GPU's resume command, as its heartbeats report it: durable events for the failover report
  const resumeEvents = new ResumeEvents(store, () => gpu().id);
  // forward references (the state machine and the route are built below, before anything can connect):
  // the hub asks the route what to grant, and tells the state machine of every heartbeat and disconnect
  const hub: AgentHub = new AgentHub(config.standby.agentToken ? [config.primary.id, config.standby.id] : [config.primary.id], {
    authenticate: (token) => hosts.authenticate(token),
    grant: (hostId) => withSyncSettings(hostId, route.grant(hostId)),
    heartbeat: (hostId, hb) => {
      metrics.heartbeat(hostId, hb);
      resumeEvents.heartbeat(hostId, hb);
      if (hostId === writerId()) events.sendAdmin('lag', lagHistory.record(hb.sync));
      failover.evaluate();
      editorSignal();
    },
    disconnected: () => {
      failover.evaluate();
      editorSignal();
    },
  }, throttle, log);
  hosts.attach(hub);
  const metrics = new ProxyMetrics(hub, () => store.state, store.events());
  store.onAppend((e) => {
    try {
      metrics.event(e);
    } catch (err) {
      log.error({ err, type: e.type }, 'the metrics could not follow an event');
    }
  });

  const warmup = options.fence ? undefined : new FenceWarmup(ssh, log);
  // a failover's fence revokes the GPU it fences: its key under the fence's lock on the standby, its token
  // only once the fence succeeded (an aborted failover leaves the GPU its credentials); a switch back revokes no GPU
  const fence = async (epoch: number, purpose: FencePurpose): Promise<FenceOutcome> => {
    const left = purpose === 'failover' ? gpu().id : undefined;
    const revoke = hosts.fenceRevocations(left);
    let outcome: FenceOutcome;
    let result: FenceResult | undefined;
    // a recovery's switch back fences the new GPU's receiver too (so the standby's agent can push there no more), side by side with the standby's
    const alsoNewGpu = purpose === 'switch-back' && !options.fence ? fenceNewGpu(store, config, epoch) : undefined;
    alsoNewGpu?.catch(() => {}); // awaited below; a rejection before then is not unhandled
    if (options.fence) outcome = await options.fence(epoch);
    else {
      result = await fenceStandby(ssh, epoch, { ...onStandby, waitMs: ssh.waitMs, revoke, client: warmup?.take() });
      outcome = { waitedMs: result.waitedMs, killed: result.killed };
    }
    if (left !== undefined) hosts.revokeFenced(left, epoch);
    if (result) hosts.fenced(result);
    await alsoNewGpu;
    return outcome;
  };
  const failover: Failover = new Failover({
    store,
    hub,
    router,
    probes,
    primaryId: () => gpu().id,
    get windowMs() {
      return d().heartbeatIntervalMs * d().missedHeartbeats;
    },
    fence,
    get preemptionConfirmMs() {
      return d().preemptionConfirmMs;
    },
    autoFailover: () => settings.config.autoFailover,
    prepareFence: () => warmup?.warm(),
    // switch-back: the GPU's agent compares its workspace with the standby's (a dry run through the receiver)
    verifyPrimary: async (timeoutMs) => {
      const answer = await hub.requestVerify(gpu().id, timeoutMs);
      if (!answer) return { ok: false, error: `its agent gave no answer within ${Math.round(timeoutMs / 1000)} s` };
      if (!answer.ok) return { ok: false, error: answer.error ?? 'the comparison failed' };
      return { ok: true, differences: answer.total };
    },
    log,
  });
  failover.onTransition(({ from, to, event }) => {
    metrics.phaseChanged(to.phase);
    // switched to a new GPU: route and probe it from now on
    const now = gpu();
    if (backends.primary.url !== now.url || backends.primary.id !== now.id) {
      backends.primary = { side: 'primary', id: now.id, url: now.url };
      probes.primary.retarget(now.url);
      log.warn({ hostId: now.id, url: now.url }, 'the GPU in service is now the new one');
    }
    if (event?.type === 'routed' && event.side === 'standby' && settings.config.recovery?.autoRecovery) queueMicrotask(() => recovery?.recovery.begin('failed over'));
    if (to.phase !== from.phase && !steady.has(to.phase)) for (const side of ['primary', 'standby'] as const) probes[side].hurry();
    if (event?.type === 'routed') events.routed(to.epoch);
    editorSignal();
    // the dashboard sees each step of a failover, not only the once-a-second status
    if (events.adminOpen > 0) events.sendAdmin('status', fullStatus(ctx));
  });
  // the side a switch would go to loads VS Code's server before a browser needs it there (proxy/workbench-warmup.ts)
  const workbenches = new WorkbenchWarmup(log);
  probes.primary.onResult = (r) => {
    failover.evaluate();
    editorSignal();
    workbenches.probed(backends.primary.url, r.ok);
  };
  probes.standby.onResult = (r) => {
    editorSignal();
    workbenches.probed(backends.standby.url, r.ok);
  };
  // the active side: the server routes by it, the hub grants by it, the public status and the transition page tell it
  const route: Route = new Route({ state: () => store.state, machine: failover, probes, backends });
  // the GPU that serves, in doubt before any verdict: its agent's connection closed, a probe failed, a heartbeat missed
  function gpuInDoubt(): boolean {
    const s = store.state;
    if (s.active !== 'primary' || failover.frozen || (s.phase !== 'normal' && s.phase !== 'suspect')) return false;
    const agent = hub.agents.get(gpu().id);
    if (!agent || agent.heartbeats === 0) return false;
    return doubted({
      silenceMs: performance.now() - agent.lastHeartbeatAt,
      connectionLost: !agent.connected && agent.disconnectedAt !== undefined,
      heartbeatIntervalMs: d().heartbeatIntervalMs,
      probeFailures: probes.primary.failures,
      probeError: probes.primary.last?.error ?? null,
      answeredSinceHeartbeat: (probes.primary.lastOkAt ?? -Infinity) > agent.lastHeartbeatAt,
    });
  }
  // A signal the editor may care about: its pages hear the state if it changed, and once a switch may be near
  // (the GPU in doubt, a switch under way) the side it would go to loads VS Code's server (workbench-warmup.ts).
  function editorSignal(): void {
    events.check();
    const s = store.state;
    if (failover.frozen || s.phase === 'suspect' || s.phase === 'failing_over' || s.phase === 'switching_back' || gpuInDoubt()) {
      workbenches.warm(backends[s.active === 'primary' ? 'standby' : 'primary'].url);
    }
  }
  // what a page of the editor hears (/_standby/events), and the generation the injected script carries
  const events: EditorEvents = new EditorEvents({
    state: () => store.state,
    publicStatus: () => route.publicStatus(),
    // the GPU that serves, in doubt before any verdict: its agent's connection closed, a heartbeat missed, a probe failed
    doubt: gpuInDoubt,
    stateDir: config.stateDir,
    maxStreams: config.limits.maxEventStreams,
    log,
  });
  router.injection = {
    generationFor: (side) => events.generationFor(side),
    skipped: (why) => log.warn({ why }, "code-server's workbench page was left without the editor script: the switch will need a reload by hand"),
  };

  let listenPort = config.listen.port;
  // the recovery section cannot come or go live (live-settings.ts refuses its fields without one): only its values change
  const withRecovery = (): (ProxyConfig & { recovery: NonNullable<ProxyConfig['recovery']> }) | undefined => {
    const c = settings.config;
    return c.recovery ? { ...c, recovery: c.recovery } : undefined;
  };
  const recovery: RecoverySetup | undefined = withRecovery() ? setupRecovery({
    get config() {
      return withRecovery()!;
    },
    store, hub, hosts, failover, publicUrl: () => proxyPublicUrl(config, listenPort), log,
  }) : undefined;
  const ctx: ApiContext = {
    get config() {
      return settings.config;
    },
    settings, store, hub, hosts, failover, probes, metrics, publicStatus: () => route.publicStatus(), openSockets: () => router.openSockets(), throttle, adminTokens, recovery: recovery?.recovery, adminSession, lagHistory, log,
  };
  // a live change: the detector's paces from now, the state machine judges again (window, autoFailover), the serving agent hears its sync settings
  settings.onChange((changed) => {
    if (changed.some((p) => p.startsWith('detector.'))) for (const side of ['primary', 'standby'] as const) probes[side].repace();
    failover.evaluate();
    if (changed.some((p) => p.startsWith('agentSync.'))) for (const id of new Set([gpu().id, config.standby.id])) hub.regrant(id);
  });
  const { server, sockets, limits } = createProxyServer({
    config,
    router,
    hub,
    log,
    forwarded,
    target: () => route.target(),
    transitionPage: () => route.transitionPage(),
    api: (req, res) => serveApi(ctx, req, res),
    ...(config.login ? { login: new Login(config.login, config.stateDir, throttle, log) } : {}),
    events,
    dashboard: new Dashboard(adminSession),
  });
  // the dashboard's live state: once a second to the admin sessions' event streams, while any is open
  const dashboardLive = setInterval(() => {
    if (events.adminOpen > 0) events.sendAdmin('status', fullStatus(ctx));
  }, 1_000);
  dashboardLive.unref();
  metrics.watchStandbyCopy(() => ({
    active: store.state.active,
    standbyProbeOk: probes.standby.last?.ok,
    gpuSync: hub.agents.get(gpu().id)?.last?.sync,
  }));
  metrics.watchRefusals(() => ({
    perClientCap: limits.refused,
    slowUploads: limits.cutUploads,
    authFailures: throttle.failures,
    authLockouts: throttle.lockouts,
    droppedHeartbeats: [...hub.agents.values()].reduce((n, a) => n + a.dropped, 0),
  }));

  // the phase this start begins in (waiting for the GPU, or normal) is logged before anyone can connect:
  // the first client never sees a phase that a tick later changes by itself
  failover.evaluate();
  // the standby machine's watch (recovery.standby.id): a provider that cannot start (no credentials) stops the start here, before anything listens
  await recovery?.watchStandby();
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
  listenPort = (server.address() as AddressInfo).port;
  probes.primary.start();
  probes.standby.start();
  failover.start();
  // a recovery a previous run left under way goes on (it finds the GPU it created by name: no second one)
  if (store.state.phase === 'recovering') recovery?.recovery.begin('resumed at start');
  // a recovery's switch back resumed by the state machine: once it routed, the recovery logs done and retires the old GPU
  if (store.state.phase === 'switching_back' && store.state.recovery?.step === 'restored') {
    void failover.idle().then(() => recovery?.recovery.finishSwitchedBack()).catch((err: unknown) => log.error({ err }, 'finishing the resumed switch back failed'));
  }
  // the configured GPU's Vast instance: once a recovery replaced that GPU, its status (destroyed) says nothing of the new one
  const vast = config.primary.notices.vast ? new VastStatusWatcher(config.primary.notices.vast, (source, reason) => {
    if (store.state.gpu !== null) log.info({ source, reason }, 'a notice about the configured GPU, which a recovery replaced: ignored');
    else failover.preemptionNotice(source, reason);
  }, log) : undefined;
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
    failover,
    router,
    throttle,
    settings,
    metricsUrl,
    status: () => fullStatus(ctx),
    reloadAdminTokens(settings) {
      const r = adminTokens.reload(settings);
      log.warn({ changed: r.changed, retiringTokens: r.previous, graceMs: config.auth.rotationGraceMs }, r.changed ? 'admin token replaced: the former one stays valid for the grace window' : 'admin tokens reloaded');
    },
    recovery,
    async close() {
      await recovery?.close();
      metricsServer?.closeAllConnections();
      metricsServer?.close();
      failover.close();
      vast?.close();
      warmup?.close();
      probes.primary.close();
      probes.standby.close();
      hub.close();
      clearInterval(dashboardLive);
      events.close();
      lagHistory.close();
      workbenches.close();
      router.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      await failover.idle().catch(() => undefined);
      store.close();
      unlock();
    },
  };
}
