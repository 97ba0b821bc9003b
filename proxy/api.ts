// The proxy's own endpoints under the reserved prefix /_standby/: public
// health and status (what the transition page polls), Prometheus metrics,
// and the admin API under /_standby/api/v1/ behind the admin bearer token.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerToken, tokensEqual } from '../protocol/auth.ts';
import type { AgentHub } from './agent-hub.ts';
import { INSTALL_PATHS, serveInstall } from './bundle.ts';
import type { Failover } from './failover.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { PublicStatus } from './pages/public-status.ts';
import type { Prober } from './prober.ts';
import type { ProxyConfig } from './config.ts';
import type { Side } from './state.ts';
import type { StateStore } from './state-store.ts';

export const PREFIX = '/_standby/';
export const API_PREFIX = '/_standby/api/v1/';

export interface ApiContext {
  config: ProxyConfig;
  store: StateStore;
  hub: AgentHub;
  failover: Failover;
  probes: Record<Side, Prober>;
  metrics: ProxyMetrics;
  publicStatus(): PublicStatus;
  openSockets(): Record<Side, number>;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function problem(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  json(res, status, { error: { code, message } }, headers);
}

/** Everything the proxy knows (the admin API's status). */
export function fullStatus(c: ApiContext): Record<string, unknown> {
  const now = performance.now();
  const s = c.store.state;
  const backend = (side: Side) => {
    const p = c.probes[side];
    const cfg = side === 'primary' ? c.config.primary : c.config.standby;
    return {
      side,
      id: cfg.id,
      url: cfg.url,
      probe: p.last ? { ok: p.last.ok, ageMs: Math.round(now - p.last.at), ms: Math.round(p.last.ms), error: p.last.error, failuresInARow: p.failures } : null,
    };
  };
  const agents = [...c.hub.agents.values()].map((a) => ({
    hostId: a.hostId,
    connected: a.connected,
    heartbeatAgeMs: Math.round(now - a.lastHeartbeatAt),
    heartbeats: a.heartbeats,
    rejectedMessages: a.rejected,
    epoch: a.last?.epoch ?? null,
    sync: a.last?.sync ?? null,
    codeServer: a.last?.codeServer ?? null,
    preemption: a.last?.preemption ?? null,
  }));
  return {
    phase: s.phase,
    active: s.active,
    epoch: s.epoch,
    fencedEpoch: s.fencedEpoch,
    failovers: s.failovers,
    frozen: c.failover.frozen,
    verdict: c.failover.lastVerdict,
    lastFenceError: c.failover.lastFenceError,
    lastFailover: c.failover.lastTiming ?? null,
    rpoAtFailover: s.watermarkAtFailover === null ? null : { watermark: s.watermarkAtFailover, unacknowledgedChanges: s.pendingAtFailover },
    backends: [backend('primary'), backend('standby')],
    agents,
    refusedAgentConnections: c.hub.refused,
    openSockets: c.openSockets(),
  };
}

/** Serves a request under /_standby/ (the caller checked the prefix). */
export async function serveApi(c: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://proxy').pathname;
  const method = req.method ?? 'GET';
  if (path === '/_standby/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
    res.end('ok\n');
    return;
  }
  if (path === '/_standby/status' && (method === 'GET' || method === 'HEAD')) return json(res, 200, c.publicStatus());
  if ((INSTALL_PATHS as readonly string[]).includes(path)) return serveInstall(path, { stateDir: c.config.stateDir, tls: c.config.tls !== undefined }, req, res);
  if (path === '/_standby/metrics' && method === 'GET') {
    const text = await c.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': c.metrics.registry.contentType });
    res.end(text);
    return;
  }
  if (!path.startsWith(API_PREFIX)) return problem(res, 404, 'not_found', `no such proxy endpoint: ${path}`);

  if (!tokensEqual(bearerToken(req.headers.authorization) ?? '', c.config.adminToken)) {
    return problem(res, 401, 'unauthorized', 'admin token missing or wrong: send Authorization: Bearer <adminToken from proxy.json>', { 'www-authenticate': 'Bearer' });
  }
  const name = path.slice(API_PREFIX.length);
  const allow = (m: string) => {
    if (method === m) return true;
    problem(res, 405, 'method_not_allowed', `${path} takes ${m}`, { allow: m });
    return false;
  };
  switch (name) {
    case 'status':
      if (allow('GET')) json(res, 200, fullStatus(c));
      return;
    case 'associations':
      if (allow('GET')) json(res, 200, { associations: [{ gpu: c.config.primary.id, standby: c.config.standby.id, active: c.store.state.active, epoch: c.store.state.epoch }] });
      return;
    case 'events':
      if (allow('GET')) json(res, 200, { events: c.store.events() });
      return;
    case 'failover': {
      if (!allow('POST')) return;
      const r = c.failover.manual('manual failover (API)');
      if (!r.accepted) return problem(res, 409, 'conflict', `no failover: ${r.why}`);
      json(res, 202, { accepted: true, phase: c.store.state.phase, message: 'failing over: freeze, final sync, fence, route; follow GET /_standby/api/v1/status' });
      return;
    }
    default:
      problem(res, 404, 'not_found', `no such API endpoint: ${path} (there are status, associations, events, failover)`);
  }
}
