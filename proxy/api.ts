// The proxy's own endpoints under the reserved prefix /_standby/: public
// health and status (what the transition page polls, fixed words only),
// Prometheus metrics and the admin API under /_standby/api/v1/ behind the
// admin bearer token. Every token check goes through the throttle
// (auth-throttle.ts): one answer for every failure, locked out after many.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { bearerToken } from '../protocol/auth.ts';
import type { Logger } from '../log.ts';
import type { AdminTokens } from './admin-tokens.ts';
import { tooMany, unauthorized, type AuthThrottle } from './auth-throttle.ts';
import type { AgentHub } from './agent-hub.ts';
import { StandbyError } from '../errors.ts';
import type { HostAdmin } from './host-admin.ts';
import { INSTALL_PATHS, noPublicUrl, proxyPublicUrl, serveInstall } from './bundle.ts';
import { downloadToken, downloadTokenValid } from './download-token.ts';
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
  throttle: AuthThrottle;
  adminTokens: AdminTokens;
  log: Logger;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function problem(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  json(res, status, { error: { code, message } }, headers);
}

/** A StandbyError as an API problem with its code's status; anything else is a bug (500, logged, its text kept out of the answer). */
function failure(c: ApiContext, res: ServerResponse, err: unknown): void {
  if (err instanceof StandbyError) return problem(res, err.status, err.code, err.message);
  c.log.error({ err }, 'admin API request failed');
  problem(res, 500, 'internal', 'internal error: the proxy log has the details');
}

/** A path segment decoded, or undefined when it is not valid percent-encoding. */
function segment(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
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

/** The URL the printed install lines name: from the config (publicUrl, or a listen address naming one host), never from the request. */
function installUrl(c: ApiContext, req: IncomingMessage): string | undefined {
  return proxyPublicUrl(c.config, req.socket.localPort ?? 0);
}

/**
 * Whether the request may download the program: a Bearer token that is an admin token, an
 * unused and unexpired invitation (the agent's install line downloads before it enrolls), an
 * active agent token (an upgrade), or a download token (the standby's install line). Called
 * inside the failed-auth throttle: a refusal here is a failed authentication.
 */
function downloadAllowed(c: ApiContext, req: IncomingMessage): boolean {
  const token = bearerToken(req.headers.authorization);
  if (token === undefined) return false;
  if (c.adminTokens.accepts(token)) return true;
  if (downloadTokenValid(c.config.adminToken, token)) return true;
  return c.hosts.holdsCredential(token);
}

const inviteSchema = z.strictObject({
  id: z.string({ error: 'the host id to invite, e.g. "gpu-2"' }),
  /** how long the invitation may be used, seconds (default 3600, at most 7 days) */
  ttlSeconds: z.number().int().min(60, { error: 'at least 60 seconds' }).max(604_800, { error: 'at most 7 days (604800 s)' }).default(3600),
}, { error: 'an object {id, ttlSeconds?}' });

const rotateSchema = z.strictObject({
  /** how long the old token stays valid, seconds (default auth.rotationGraceMs; at most 30 days) */
  graceSeconds: z.number().int().min(0, { error: 'at least 0 seconds' }).max(2_592_000, { error: 'at most 30 days (2592000 s)' }).optional(),
}, { error: 'an object {graceSeconds?}' });

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
    const url = installUrl(c, req);
    if (url === undefined) return problem(res, 503, 'no_public_url', noPublicUrl(c.config));
    if (body.data.id === c.config.standby.id) {
      // the standby enrolls nothing: its line gets a token that downloads the program and does nothing else
      const expiresAtMs = Math.floor((Date.now() + body.data.ttlSeconds * 1000) / 1000) * 1000;
      const token = downloadToken(c.config.adminToken, expiresAtMs);
      const expiresAt = new Date(expiresAtMs).toISOString();
      return json(res, 201, {
        id: body.data.id,
        token,
        expiresAt,
        kind: 'download',
        command: `curl -fsSL ${url}/_standby/install.sh | sudo bash -s -- standby --token ${token}`,
        message: `download only, until ${expiresAt}: run the command on the standby ${body.data.id}; it installs the program and authorizes this proxy's fencing key (the token downloads the program and does nothing else)`,
      });
    }
    const invited = c.hosts.invite(body.data.id, body.data.ttlSeconds * 1000);
    return json(res, 201, {
      kind: 'invitation',
      ...invited,
      command: `curl -fsSL ${url}/_standby/install.sh | sudo bash -s -- agent --token ${invited.token}`,
      message: `one use, until ${invited.expiresAt}: run the command on ${invited.id}; it enrolls the host (its own token and key) and installs the agent`,
    });
  }
  const m = /^\/([^/]+)\/(revoke|rotate)$/.exec(rest);
  const id = m ? segment(m[1]!) : undefined;
  if (!m || id === undefined) return problem(res, 404, 'not_found', `no such API endpoint: /_standby/api/v1/hosts${rest} (there are hosts, hosts/ID/revoke and hosts/ID/rotate)`);
  if (method !== 'POST') return problem(res, 405, 'method_not_allowed', `${m[2]} takes POST`, { allow: 'POST' });
  if (!c.hosts.knows(id)) return problem(res, 404, 'not_found', `no host ${id}: standby hosts lists them`);
  if (m[2] === 'rotate') {
    const body = rotateSchema.safeParse(await readJson(req));
    if (!body.success) return problem(res, 400, 'STANDBY_ERR_CONFIG_INVALID', `rotate: ${body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
    const graceMs = body.data.graceSeconds === undefined ? c.config.auth.rotationGraceMs : body.data.graceSeconds * 1000;
    const r = c.hosts.rotate(id, graceMs);
    return json(res, 200, {
      ...r,
      message: `${id} has a new agent token; its old one stays valid until ${r.previousValidUntil}: put the new one in the host's token file (proxy.tokenFile) or agent.json's proxy.token before then`,
    });
  }
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
      probe: p.last ? { ok: p.last.ok, ageMs: Math.round(now - p.last.at), ms: Math.round(p.last.ms), error: p.last.error, failuresInARow: p.failures, fromTraffic: p.last.fromTraffic } : null,
    };
  };
  const agents = [...c.hub.agents.values()].map((a) => ({
    hostId: a.hostId,
    connected: a.connected,
    heartbeatAgeMs: Math.round(now - a.lastHeartbeatAt),
    heartbeats: a.heartbeats,
    rejectedMessages: a.rejected,
    droppedHeartbeats: a.dropped,
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
    auth: { failures: c.throttle.failures, lockouts: c.throttle.lockouts, trackedAddresses: c.throttle.tracked, retiringAdminTokensUntil: c.adminTokens.retiring() },
    openSockets: c.openSockets(),
  };
}

/** Prometheus text: behind the admin token here, or on metrics.listen's own listener (daemon.ts). */
export async function serveMetrics(metrics: ProxyMetrics, res: ServerResponse): Promise<void> {
  const text = await metrics.registry.metrics();
  res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' });
  res.end(text);
}

/**
 * Enrollment: every failure to authenticate (unknown, used, expired or an
 * agent's token) gets the same 401 as a wrong admin token, and counts
 * towards the address's lockout; the log has the reason.
 */
async function enroll(c: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const address = c.throttle.addressOf(req);
  const wait = c.throttle.retryAfterMs(address);
  if (wait > 0) return tooMany(res, wait);
  try {
    const answer = await c.hosts.enroll(bearerToken(req.headers.authorization) ?? '', () => readJson(req));
    c.throttle.succeeded(address);
    return json(res, 200, answer);
  } catch (err) {
    if (err instanceof StandbyError && err.code === 'STANDBY_ERR_UNAUTHORIZED') {
      c.log.debug({ remote: address, why: err.message }, 'enrollment refused');
      c.throttle.failed(address, 'enroll');
      return unauthorized(res);
    }
    return failure(c, res, err);
  }
}

/** Serves a request under /_standby/ (the caller checked the prefix). */
/** how long POST /verify waits for the agent's comparison (a checksum of the whole workspace on both ends), ms */
const VERIFY_TIMEOUT_MS = 300_000;

export async function serveApi(c: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://proxy').pathname;
  const method = req.method ?? 'GET';
  if (path === '/_standby/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
    res.end('ok\n');
    return;
  }
  if (path === '/_standby/status' && (method === 'GET' || method === 'HEAD')) return json(res, 200, c.publicStatus());
  if ((INSTALL_PATHS as readonly string[]).includes(path)) {
    return serveInstall(path, { stateDir: c.config.stateDir, publicUrl: installUrl(c, req), noUrl: noPublicUrl(c.config), mayDownload: (r, w) => c.throttle.guard(r, w, 'bundle', () => downloadAllowed(c, r)) === true, fenceIdentityFile: c.config.standby.ssh.identityFile }, req, res);
  }
  if (path === '/_standby/metrics' && method === 'GET') {
    if (!c.throttle.guard(req, res, 'metrics', () => c.adminTokens.accepts(bearerToken(req.headers.authorization) ?? ''))) return;
    return serveMetrics(c.metrics, res);
  }
  if (path === '/_standby/enroll') {
    if (method !== 'POST') return problem(res, 405, 'method_not_allowed', '/_standby/enroll takes POST', { allow: 'POST' });
    return enroll(c, req, res);
  }
  if (!path.startsWith(API_PREFIX)) return problem(res, 404, 'not_found', 'no such proxy endpoint');

  if (!c.throttle.guard(req, res, 'admin', () => c.adminTokens.accepts(bearerToken(req.headers.authorization) ?? ''))) return;
  const name = path.slice(API_PREFIX.length);
  if (name === 'hosts' || name.startsWith('hosts/')) {
    try {
      return await serveHosts(c, req, res, name.slice('hosts'.length), method);
    } catch (err) {
      return failure(c, res, err);
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
    case 'verify': {
      // the GPU's agent runs the checksum comparison (agent/verify.ts) and reports: the proxy holds no copy to compare
      if (!allow('POST')) return;
      const id = c.config.primary.id;
      const answer = await c.hub.requestVerify(id, VERIFY_TIMEOUT_MS);
      if (!answer) return problem(res, 503, 'agent_unreachable', `the agent of ${id} is not connected, or gave no answer within ${VERIFY_TIMEOUT_MS / 1000} s: run standby verify on the GPU itself`);
      json(res, 200, { hostId: id, ok: answer.ok, match: answer.ok && answer.total === 0, total: answer.total, differences: answer.differences, error: answer.error });
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
        return failure(c, res, err);
      }
      const body = switchBackSchema.safeParse(raw);
      if (!body.success) return problem(res, 400, 'STANDBY_ERR_CONFIG_INVALID', `switch-back: ${body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
      const r = await c.failover.switchBack('switch back asked by the admin (API)', body.data);
      if (!r.accepted) return problem(res, r.status, 'conflict', `no switch back: ${r.why}`);
      json(res, 202, { accepted: true, phase: c.store.state.phase, epoch: c.store.state.epoch, message: r.message });
      return;
    }
    default:
      problem(res, 404, 'not_found', `no such API endpoint: ${path} (there are status, associations, events, failover, failover/abort, switch-back, hosts, verify)`);
  }
}
