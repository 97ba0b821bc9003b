// The proxy's own endpoints under the reserved prefix /_standby/: public
// health and status (what the transition page polls), Prometheus metrics,
// and the admin API under /_standby/api/v1/ behind the admin bearer token.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { bearerToken, tokensEqual } from '../protocol/auth.ts';
import type { AgentHub } from './agent-hub.ts';
import { StandbyError } from '../errors.ts';
import type { HostAdmin } from './host-admin.ts';
import { baseUrl, INSTALL_PATHS, serveInstall } from './bundle.ts';
import type { Failover } from './failover.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { PublicStatus } from './pages/public-status.ts';
import type { Prober } from './prober.ts';
import type { ProxyConfig } from './config.ts';
import type { Side } from './state.ts';
import type { StateStore } from './state-store.ts';

export const PREFIX = '/_standby/';
const API_PREFIX = '/_standby/api/v1/';

export interface ApiContext {
  config: ProxyConfig;
  store: StateStore;
  hub: AgentHub;
  hosts: HostAdmin;
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

/** A StandbyError as an API problem with its code's status; anything else is a bug (500). */
function failure(res: ServerResponse, err: unknown): void {
  if (err instanceof StandbyError) return problem(res, err.status, err.code, err.message);
  problem(res, 500, 'internal', `unexpected error: ${(err as Error).message}`);
}

/** The request's JSON body (at most 64 KiB); {} when empty. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 65_536) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'the request body is over 64 KiB', {});
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'the request body is not JSON', {});
  }
}

/** The proxy's URL as the client reached it: what the install line tells the new host to fetch from. */
/** The URL for the printed install line: as the admin reached the proxy, or its listen address for a Host header that is not a plain host[:port]. */
function publicUrl(c: ApiContext, req: IncomingMessage): string {
  return baseUrl(req, !!c.config.tls) ?? `${c.config.tls ? 'https' : 'http'}://${c.config.listen.host}:${c.config.listen.port}`;
}

const inviteSchema = z.strictObject({
  id: z.string({ error: 'the host id to invite, e.g. "gpu-2"' }),
  /** how long the invitation may be used, seconds (default 3600, at most 7 days) */
  ttlSeconds: z.number().int().min(60, { error: 'at least 60 seconds' }).max(604_800, { error: 'at most 7 days (604800 s)' }).default(3600),
}, { error: 'an object {id, ttlSeconds?}' });

const switchBackSchema = z.strictObject({
  /** the admin restored the GPU's workspace from the standby (needed while the agent cannot compare them itself) */
  confirmRestored: z.boolean().optional(),
}, { error: 'an object {confirmRestored?}' });

async function serveHosts(c: ApiContext, req: IncomingMessage, res: ServerResponse, rest: string, method: string): Promise<void> {
  if (rest === '') {
    if (method === 'GET') return json(res, 200, { hosts: c.hosts.list() });
    if (method !== 'POST') return problem(res, 405, 'method_not_allowed', '/_standby/api/v1/hosts takes GET (list) or POST (invite)', { allow: 'GET, POST' });
    const body = inviteSchema.safeParse(await readJson(req));
    if (!body.success) return problem(res, 400, 'STANDBY_ERR_CONFIG_INVALID', `invite: ${body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
    const invited = c.hosts.invite(body.data.id, body.data.ttlSeconds * 1000);
    const url = publicUrl(c, req);
    return json(res, 201, {
      ...invited,
      command: `curl -fsSL ${url}/_standby/install.sh | sudo bash -s -- agent --token ${invited.token}`,
      message: `one use, until ${invited.expiresAt}: run the command on ${invited.id}; it enrolls the host (its own token and key) and installs the agent`,
    });
  }
  const m = /^\/([^/]+)\/revoke$/.exec(rest);
  if (!m) return problem(res, 404, 'not_found', `no such API endpoint: /_standby/api/v1/hosts${rest} (there are hosts and hosts/ID/revoke)`);
  if (method !== 'POST') return problem(res, 405, 'method_not_allowed', 'revoke takes POST', { allow: 'POST' });
  const id = decodeURIComponent(m[1]!);
  if (!c.hosts.knows(id)) return problem(res, 404, 'not_found', `no host ${id}: standby hosts lists them`);
  const r = await c.hosts.revoke(id, 'revoked by the admin');
  json(res, r.keyRevoked || r.error === null ? 200 : 202, {
    ...r,
    message: r.error ? `the token of ${id} is revoked; its key is still on the standby (${r.error}): it goes with the next fence, or run this again` : `${id} is revoked: its token is refused and its key removed from the standby`,
  });
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
    waitingForGpu: s.phase === 'waiting',
    corroborating: c.failover.corroborating ? { source: c.failover.corroborating.source, leftMs: Math.max(0, Math.round(c.failover.corroborating.until - now)) } : null,
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
  if ((INSTALL_PATHS as readonly string[]).includes(path)) return serveInstall(path, { stateDir: c.config.stateDir, tls: c.config.tls !== undefined, fenceIdentityFile: c.config.standby.ssh.identityFile }, req, res);
  if (path === '/_standby/metrics' && method === 'GET') {
    const text = await c.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': c.metrics.registry.contentType });
    res.end(text);
    return;
  }
  if (path === '/_standby/enroll') {
    if (method !== 'POST') return problem(res, 405, 'method_not_allowed', '/_standby/enroll takes POST', { allow: 'POST' });
    try {
      return json(res, 200, await c.hosts.enroll(bearerToken(req.headers.authorization) ?? '', await readJson(req)));
    } catch (err) {
      return failure(res, err);
    }
  }
  if (!path.startsWith(API_PREFIX)) return problem(res, 404, 'not_found', `no such proxy endpoint: ${path}`);

  if (!tokensEqual(bearerToken(req.headers.authorization) ?? '', c.config.adminToken)) {
    return problem(res, 401, 'unauthorized', 'admin token missing or wrong: send Authorization: Bearer <adminToken from proxy.json>', { 'www-authenticate': 'Bearer' });
  }
  const name = path.slice(API_PREFIX.length);
  if (name === 'hosts' || name.startsWith('hosts/')) {
    try {
      return await serveHosts(c, req, res, name.slice('hosts'.length), method);
    } catch (err) {
      return failure(res, err);
    }
  }
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
    case 'failover/abort': {
      if (!allow('POST')) return;
      const r = await c.failover.abort('aborted by the admin (API)');
      if (!r.accepted) return problem(res, r.status, 'conflict', `no abort: ${r.why}`);
      json(res, 200, { aborted: true, phase: c.store.state.phase, epoch: c.store.state.epoch, message: r.message });
      return;
    }
    case 'switch-back': {
      if (!allow('POST')) return;
      let raw: unknown;
      try {
        raw = await readJson(req);
      } catch (err) {
        return failure(res, err);
      }
      const body = switchBackSchema.safeParse(raw);
      if (!body.success) return problem(res, 400, 'STANDBY_ERR_CONFIG_INVALID', `switch-back: ${body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
      const r = await c.failover.switchBack('switch back asked by the admin (API)', body.data);
      if (!r.accepted) return problem(res, r.status, 'conflict', `no switch back: ${r.why}`);
      json(res, 202, { accepted: true, phase: c.store.state.phase, epoch: c.store.state.epoch, message: r.message });
      return;
    }
    default:
      problem(res, 404, 'not_found', `no such API endpoint: ${path} (there are status, associations, events, failover, failover/abort, switch-back, hosts)`);
  }
}
