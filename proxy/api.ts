// The proxy's own endpoints under the reserved prefix /_standby/: public
// health and status (what the transition page polls, fixed words only),
// Prometheus metrics and the admin API under /_standby/api/v1/ behind the
// admin bearer token or the dashboard's session cookie (admin-session.ts:
// with the cookie, a change must come from this origin). Every token check goes through the throttle
// (auth-throttle.ts): one answer for every failure, locked out after many.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { bearerToken } from '../protocol/auth.ts';
import type { Logger } from '../core/log.ts';
import type { AdminSession } from './admin-session.ts';
import type { AdminTokens } from './admin-tokens.ts';
import { tooMany, unauthorized, type AuthThrottle } from './auth-throttle.ts';
import type { AgentHub } from './agent-hub.ts';
import { StandbyError } from '../core/errors.ts';
import { sendProblem } from './problem.ts';
import type { HostAdmin } from './host-admin.ts';
import type { LagHistory } from './lag-history.ts';
import { INSTALL_PATHS, type LiveSettingsAnswer, type ProxyConfirmDeletesAnswer } from '../protocol/admin-api.ts';
import { HOST_ID } from '../protocol/host-id.ts';
import { noPublicUrl, proxyPublicUrl, serveInstall } from './bundle.ts';
import { downloadToken, downloadTokenValid } from './download-token.ts';
import { SETTING_EFFECT, type LiveSettingsStore } from './live-settings.ts';
import type { Recovery } from './recovery.ts';
import type { Failover } from './failover.ts';
import { failoverReport, reportDays } from './failover-report.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { PublicStatus } from './pages/public-status.ts';
import type { Prober } from './prober.ts';
import type { ProxyConfig } from '../config/proxy.ts';
import type { Side } from './state.ts';
import type { StateStore } from './state-store.ts';

export const PREFIX = '/_standby/';
const API_PREFIX = '/_standby/api/v1/';

export interface ApiContext {
  /** the settings in force: proxy.json's with the live overrides over them (read it when needed: it changes) */
  readonly config: ProxyConfig;
  /** the live settings (GET/PATCH settings) */
  settings: LiveSettingsStore;
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
  /** the recovery, when proxy.json has a recovery section */
  recovery: Recovery | undefined;
  /** the dashboard's session (its cookie is accepted like the Bearer token), or undefined: none */
  adminSession?: AdminSession;
  /** the sync lag's history, for the dashboard's chart */
  lagHistory?: LagHistory;
  log: Logger;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A StandbyError as an API problem with its code's status; anything else is a bug (500, logged, its text kept out of the answer). */
function failure(context: ApiContext, res: ServerResponse, err: unknown): void {
  if (err instanceof StandbyError) return sendProblem(res, err.code, err.message);
  context.log.error({ err }, 'admin API request failed');
  sendProblem(res, 'STANDBY_ERR_INTERNAL', 'internal error: the proxy log has the details');
}

/** 405 naming the methods the endpoint takes. */
function wrongMethod(res: ServerResponse, allowed: string, message: string): void {
  sendProblem(res, 'STANDBY_ERR_METHOD_NOT_ALLOWED', message, { headers: { allow: allowed } });
}

/** 400 for a body that fails its endpoint's schema: each issue with the field it is about. */
function badBody(res: ServerResponse, endpoint: string, error: z.ZodError): void {
  sendProblem(res, 'STANDBY_ERR_BAD_REQUEST', `${endpoint}: ${error.issues.map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`).join('; ')}`);
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
    if (size > 65_536) throw new StandbyError('STANDBY_ERR_BAD_REQUEST', 'the request body is over 64 KiB', {});
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new StandbyError('STANDBY_ERR_BAD_REQUEST', 'the request body is not JSON', {});
  }
}

/** The URL the printed install lines name: from the config (publicUrl, or a listen address naming one host), never from the request. */
function installUrl(context: ApiContext, req: IncomingMessage): string | undefined {
  return proxyPublicUrl(context.config, req.socket.localPort ?? 0);
}

/**
 * Whether the request may download the program: a Bearer token that is an admin token, an
 * unused and unexpired invitation (the agent's install line downloads before it enrolls), an
 * active agent token (an upgrade), or a download token (the standby's install line). Called
 * inside the failed-auth throttle: a refusal here is a failed authentication.
 */
function downloadAllowed(context: ApiContext, req: IncomingMessage): boolean {
  const token = bearerToken(req.headers.authorization);
  if (token === undefined) return false;
  if (context.adminTokens.accepts(token)) return true;
  if (downloadTokenValid(context.config.adminToken, token)) return true;
  return context.hosts.holdsCredential(token);
}

const inviteSchema = z.strictObject({
  id: z.string({ error: 'the host id to invite, e.g. "gpu-2"' }).regex(HOST_ID, { error: (issue) => `host id ${JSON.stringify(String(issue.input).slice(0, 80))}: expected 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit` }),
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

async function serveHosts(context: ApiContext, req: IncomingMessage, res: ServerResponse, rest: string, method: string): Promise<void> {
  if (rest === '') {
    if (method === 'GET') return json(res, 200, { hosts: context.hosts.list() });
    if (method !== 'POST') return wrongMethod(res, 'GET, POST', '/_standby/api/v1/hosts takes GET (list) or POST (invite)');
    const body = inviteSchema.safeParse(await readJson(req));
    if (!body.success) return badBody(res, 'invite', body.error);
    const url = installUrl(context, req);
    if (url === undefined) return sendProblem(res, 'STANDBY_ERR_NO_PUBLIC_URL', noPublicUrl(context.config));
    if (body.data.id === context.config.standby.id) {
      // the standby enrolls nothing: its line gets a token that downloads the program and does nothing else
      const expiresAtMs = Math.floor((Date.now() + body.data.ttlSeconds * 1000) / 1000) * 1000;
      const token = downloadToken(context.config.adminToken, expiresAtMs);
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
    const invited = context.hosts.invite(body.data.id, body.data.ttlSeconds * 1000);
    return json(res, 201, {
      kind: 'invitation',
      ...invited,
      command: `curl -fsSL ${url}/_standby/install.sh | sudo bash -s -- agent --token ${invited.token}`,
      message: `one use, until ${invited.expiresAt}: run the command on ${invited.id}; it enrolls the host (its own token and key) and installs the agent`,
    });
  }
  const action = /^\/([^/]+)\/(revoke|rotate)$/.exec(rest);
  const id = action ? segment(action[1]!) : undefined;
  if (!action || id === undefined) return sendProblem(res, 'STANDBY_ERR_NOT_FOUND', `no such API endpoint: /_standby/api/v1/hosts${rest} (there are hosts, hosts/ID/revoke and hosts/ID/rotate)`);
  if (method !== 'POST') return wrongMethod(res, 'POST', `${action[2]} takes POST`);
  if (!context.hosts.knows(id)) return sendProblem(res, 'STANDBY_ERR_NOT_FOUND', `no host ${id}: standby hosts lists them`);
  if (action[2] === 'rotate') {
    const body = rotateSchema.safeParse(await readJson(req));
    if (!body.success) return badBody(res, 'rotate', body.error);
    const graceMs = body.data.graceSeconds === undefined ? context.config.auth.rotationGraceMs : body.data.graceSeconds * 1000;
    const rotated = context.hosts.rotate(id, graceMs);
    return json(res, 200, {
      ...rotated,
      message: `${id} has a new agent token; its old one stays valid until ${rotated.previousValidUntil}: put the new one in the host's token file (proxy.tokenFile) or agent.json's proxy.token before then`,
    });
  }
  const revoked = await context.hosts.revoke(id, 'revoked by the admin');
  json(res, revoked.keyRevoked || revoked.error === null ? 200 : 202, {
    ...revoked,
    message: revoked.error ? `the token of ${id} is revoked; its key is still on the standby (${revoked.error}): it goes with the next fence, or run this again` : `${id} is revoked: its token is refused and its key removed from the standby`,
  });
}

/** Everything the proxy knows (the admin API's status). */
export function fullStatus(context: ApiContext): Record<string, unknown> {
  const now = performance.now();
  const state = context.store.state;
  const backend = (side: Side) => {
    const probe = context.probes[side];
    const settings = side === 'primary' ? state.gpu ?? context.config.primary : context.config.standby;
    return {
      side,
      id: settings.id,
      url: settings.url,
      probe: probe.last ? { ok: probe.last.ok, ageMs: Math.round(now - probe.last.at), ms: Math.round(probe.last.ms), error: probe.last.error, failuresInARow: probe.failures, fromTraffic: probe.last.fromTraffic } : null,
    };
  };
  const agents = [...context.hub.agents.values()].map((agent) => ({
    hostId: agent.hostId,
    connected: agent.connected,
    /** fenced for good by a failover (connected only to hand over its unsent changes), or null */
    fenced: agent.fenced ?? null,
    heartbeatAgeMs: Math.round(now - agent.lastHeartbeatAt),
    heartbeats: agent.heartbeats,
    rejectedMessages: agent.rejected,
    droppedHeartbeats: agent.dropped,
    epoch: agent.last?.epoch ?? null,
    sync: agent.last?.sync ?? null,
    codeServer: agent.last?.codeServer ?? null,
    preemption: agent.last?.preemption ?? null,
  }));
  return {
    phase: state.phase,
    active: state.active,
    epoch: state.epoch,
    fencedEpoch: state.fencedEpoch,
    failovers: state.failovers,
    frozen: context.failover.frozen,
    waitingForGpu: state.phase === 'waiting',
    corroborating: context.failover.corroborating ? { source: context.failover.corroborating.source, leftMs: Math.max(0, Math.round(context.failover.corroborating.until - now)) } : null,
    verdict: context.failover.lastVerdict,
    lastFenceError: context.failover.lastFenceError,
    lastFailover: context.failover.lastTiming ?? null,
    rpoAtFailover: state.watermarkAtFailover === null ? null : { watermark: state.watermarkAtFailover, unacknowledgedChanges: state.pendingAtFailover },
    backends: [backend('primary'), backend('standby')],
    recovery: context.recovery?.view() ?? { configured: false, why: 'proxy.json has no recovery section: after a failover the standby serves until standby switch-back' },
    agents,
    refusedAgentConnections: context.hub.refused,
    auth: { failures: context.throttle.failures, lockouts: context.throttle.lockouts, trackedAddresses: context.throttle.tracked, retiringAdminTokensUntil: context.adminTokens.retiring() },
    openSockets: context.openSockets(),
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
async function enroll(context: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const address = context.throttle.addressOf(req);
  const wait = context.throttle.retryAfterMs(address);
  if (wait > 0) return tooMany(res, wait);
  try {
    const answer = await context.hosts.enroll(bearerToken(req.headers.authorization) ?? '', () => readJson(req));
    context.throttle.succeeded(address);
    return json(res, 200, answer);
  } catch (err) {
    if (err instanceof StandbyError && err.code === 'STANDBY_ERR_UNAUTHORIZED') {
      context.log.debug({ remote: address, why: err.message }, 'enrollment refused');
      context.throttle.failed(address, 'enroll');
      return unauthorized(res);
    }
    return failure(context, res, err);
  }
}

/** The agent of the side that serves: the GPU's, or the standby's own while the standby serves. */
function servingAgentId(context: ApiContext): string {
  const st = context.store.state;
  return st.active === 'primary' ? (st.gpu ?? context.config.primary).id : context.config.standby.id;
}

/** GET /_standby/api/v1/settings: the live settings in force, which are overrides, when each takes effect, what the serving agent applies. */
export function settingsAnswer(context: ApiContext): LiveSettingsAnswer {
  const id = servingAgentId(context);
  const agent = context.hub.agents.get(id);
  const applied = agent?.connected ? agent.last?.sync.settings : undefined;
  return {
    settings: context.settings.view(),
    overridden: context.settings.overridden(),
    effect: { ...SETTING_EFFECT },
    agent: applied ? { hostId: id, applied: { delayMs: applied.delayMs, maxDelayMs: applied.maxDelayMs, exclude: applied.exclude } } : null,
  };
}

/** how long POST sync/confirm-deletes waits for the agent's answer (it only flips a flag and asks for a full pass), ms */
const CONFIRM_DELETES_TIMEOUT_MS = 10_000;

/** how long POST /verify waits for the agent's comparison (a checksum of the whole workspace on both ends), ms */
const VERIFY_TIMEOUT_MS = 300_000;

/** Serves a request under /_standby/ (the caller checked the prefix). */
export async function serveApi(context: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://proxy').pathname;
  const method = req.method ?? 'GET';
  if (path === '/_standby/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
    res.end('ok\n');
    return;
  }
  if (path === '/_standby/status' && (method === 'GET' || method === 'HEAD')) return json(res, 200, context.publicStatus());
  if ((INSTALL_PATHS as readonly string[]).includes(path)) {
    return serveInstall(path, { stateDir: context.config.stateDir, publicUrl: installUrl(context, req), noUrl: noPublicUrl(context.config), mayDownload: (r, w) => context.throttle.guard(r, w, 'bundle', () => downloadAllowed(context, r)) === true, fenceIdentityFile: context.config.standby.ssh.identityFile }, req, res);
  }
  if (path === '/_standby/metrics' && method === 'GET') {
    if (!context.throttle.guard(req, res, 'metrics', () => context.adminTokens.accepts(bearerToken(req.headers.authorization) ?? ''))) return;
    return serveMetrics(context.metrics, res);
  }
  if (path === '/_standby/enroll') {
    if (method !== 'POST') return wrongMethod(res, 'POST', '/_standby/enroll takes POST');
    return enroll(context, req, res);
  }
  if (!path.startsWith(API_PREFIX)) return sendProblem(res, 'STANDBY_ERR_NOT_FOUND', 'no such proxy endpoint');

  const session = context.adminSession?.admits(req) ?? 'none';
  if (session === 'cross-origin') return sendProblem(res, 'STANDBY_ERR_UNAUTHORIZED', 'a change with the dashboard session must come from the dashboard (an Origin of this proxy); tools use the Bearer token', { status: 403 });
  if (session === 'none' && !context.throttle.guard(req, res, 'admin', () => context.adminTokens.accepts(bearerToken(req.headers.authorization) ?? ''))) return;
  const name = path.slice(API_PREFIX.length);
  if (name === 'hosts' || name.startsWith('hosts/')) {
    try {
      return await serveHosts(context, req, res, name.slice('hosts'.length), method);
    } catch (err) {
      return failure(context, res, err);
    }
  }
  const allow = (allowed: string) => {
    if (method === allowed) return true;
    wrongMethod(res, allowed, `${path} takes ${allowed}`);
    return false;
  };
  switch (name) {
    case 'status':
      if (allow('GET')) json(res, 200, fullStatus(context));
      return;
    case 'associations': {
      if (!allow('GET')) return;
      const st = context.store.state;
      const gpu = st.gpu ?? context.config.primary;
      const ssh = context.config.standby.ssh;
      json(res, 200, {
        associations: [{
          gpu: gpu.id,
          gpuProvider: st.gpu?.provider ?? null,
          gpuProviderId: st.gpu?.providerId ?? null,
          standby: context.config.standby.id,
          standbyAddress: `${ssh.host}:${ssh.port}`,
          standbyZone: context.config.recovery?.standby.provider === 'gcp' ? context.config.recovery.standby.gcp.zone : null,
          // sync runs GPU -> standby while the GPU serves, and standby -> new GPU while a recovery restores
          syncEnabled: st.active === 'primary' ? st.phase !== 'failing_over' : st.recovery?.step === 'restore' || st.recovery?.step === 'restored',
          active: st.active,
          epoch: st.epoch,
        }],
      });
      return;
    }
    case 'recovery': {
      if (method === 'GET') return json(res, 200, context.recovery?.view() ?? { configured: false, why: 'proxy.json has no recovery section: after a failover the standby serves until standby switch-back' });
      if (!allow('POST')) return;
      if (!context.recovery) return sendProblem(res, 'STANDBY_ERR_CONFLICT', 'no recovery: proxy.json has no recovery section (docs/configuration.md, recovery)');
      const begun = context.recovery.begin('asked by the admin (API)');
      if (!begun.accepted) return sendProblem(res, 'STANDBY_ERR_CONFLICT', `no recovery: ${begun.why}`);
      json(res, 202, { accepted: true, message: `recovery ${begun.why}: follow GET /_standby/api/v1/recovery` });
      return;
    }
    case 'sync/lag':
      // the dashboard's chart: [wall-clock ms, lag ms, pending] per sample, oldest first
      if (allow('GET')) json(res, 200, { sampleMs: context.lagHistory?.sampleMs ?? null, samples: context.lagHistory?.samples() ?? [] });
      return;
    case 'events':
      if (allow('GET')) json(res, 200, { events: context.store.events() });
      return;
    case 'failover': {
      if (!allow('POST')) return;
      const started = context.failover.manual('manual failover (API)');
      if (!started.accepted) return sendProblem(res, 'STANDBY_ERR_CONFLICT', `no failover: ${started.why}`);
      json(res, 202, { accepted: true, phase: context.store.state.phase, message: 'failing over: freeze, final sync, fence, route; follow GET /_standby/api/v1/status' });
      return;
    }
    case 'drill':
    case 'failover/simulate': {
      // a rehearsal on the real thing: a planned failover (cause drill), then the recovery to a new GPU and the switch back
      if (!allow('POST')) return;
      if (!context.recovery) return sendProblem(res, 'STANDBY_ERR_CONFLICT', 'no drill: proxy.json has no recovery section, so nothing would bring a GPU back after the failover (docs/configuration.md, recovery)');
      if (context.store.state.phase !== 'normal') return sendProblem(res, 'STANDBY_ERR_CONFLICT', `no drill: the GPU must serve in phase normal (now ${context.store.state.phase})`);
      const started = context.failover.manual('drill (API)', 'drill');
      if (!started.accepted) return sendProblem(res, 'STANDBY_ERR_CONFLICT', `no drill: ${started.why}`);
      if (!context.config.recovery?.autoRecovery) {
        // without automatic recovery the drill starts its own, once the standby serves
        const stop = context.failover.onTransition((t) => {
          if (t.event?.type !== 'routed' && t.event?.type !== 'aborted') return;
          stop();
          if (t.event.type === 'routed' && t.event.side === 'standby') context.recovery?.begin('drill');
        });
      }
      json(res, 202, { accepted: true, epoch: context.store.state.epoch, message: 'drill: failing over to the standby, then a new GPU, the restore and the switch back; follow GET /_standby/api/v1/recovery, then the report' });
      return;
    }
    case 'failover/report':
      if (!allow('GET')) return;
      try {
        json(res, 200, failoverReport(await context.store.history(), {
          now: new Date(),
          days: reportDays(new URL(req.url ?? '/', 'http://proxy').searchParams.get('days')),
          recoveryConfigured: context.config.recovery !== undefined,
          ...(context.config.recovery?.standby.provider === 'gcp' ? { gcpStandby: context.config.recovery.standby.gcp } : {}),
        }));
      } catch (err) {
        failure(context, res, err);
      }
      return;
    case 'verify': {
      // the GPU's agent runs the checksum comparison (agent/verify.ts) and reports: the proxy holds no copy to compare
      if (!allow('POST')) return;
      const id = (context.store.state.gpu ?? context.config.primary).id;
      const answer = await context.hub.requestVerify(id, VERIFY_TIMEOUT_MS);
      if (!answer) return sendProblem(res, 'STANDBY_ERR_AGENT_UNREACHABLE', `the agent of ${id} is not connected, or gave no answer within ${VERIFY_TIMEOUT_MS / 1000} s: run standby verify on the GPU itself`);
      json(res, 200, { hostId: id, ok: answer.ok, match: answer.ok && answer.total === 0, total: answer.total, differences: answer.differences, error: answer.error });
      return;
    }
    case 'settings': {
      if (method === 'GET') return json(res, 200, settingsAnswer(context));
      if (method !== 'PATCH') return wrongMethod(res, 'GET, PATCH', `${path} takes GET (the settings in force) or PATCH (a change)`);
      try {
        context.settings.patch(await readJson(req));
      } catch (err) {
        return failure(context, res, err);
      }
      json(res, 200, settingsAnswer(context));
      return;
    }
    case 'sync/confirm-deletes': {
      // the serving agent releases what its mass-deletion guard holds, as standby sync --confirm-deletes does on its host
      if (!allow('POST')) return;
      const id = servingAgentId(context);
      const answer = await context.hub.requestConfirmDeletes(id, CONFIRM_DELETES_TIMEOUT_MS);
      if (!answer) return sendProblem(res, 'STANDBY_ERR_AGENT_UNREACHABLE', `the agent of ${id} is not connected, or gave no answer within ${CONFIRM_DELETES_TIMEOUT_MS / 1000} s: run standby sync --confirm-deletes on ${id} itself`);
      const body: ProxyConfirmDeletesAnswer = { hostId: id, deletions: answer.deletions };
      context.log.warn({ hostId: id, deletions: answer.deletions }, 'held deletions confirmed by the admin (API): the agent applies them in a full reconcile');
      json(res, 200, body);
      return;
    }
    case 'failover/abort': {
      if (!allow('POST')) return;
      const aborted = await context.failover.abort('aborted by the admin (API)');
      if (!aborted.accepted) return sendProblem(res, 'STANDBY_ERR_CONFLICT', `no abort: ${aborted.why}`, { status: aborted.status });
      json(res, 200, { aborted: true, phase: context.store.state.phase, epoch: context.store.state.epoch, message: aborted.message });
      return;
    }
    case 'switch-back': {
      if (!allow('POST')) return;
      let raw: unknown;
      try {
        raw = await readJson(req);
      } catch (err) {
        return failure(context, res, err);
      }
      const body = switchBackSchema.safeParse(raw);
      if (!body.success) return badBody(res, 'switch-back', body.error);
      const switching = await context.failover.switchBack('switch back asked by the admin (API)', body.data);
      if (!switching.accepted) return sendProblem(res, 'STANDBY_ERR_CONFLICT', `no switch back: ${switching.why}`, { status: switching.status });
      json(res, 202, { accepted: true, phase: context.store.state.phase, epoch: context.store.state.epoch, message: switching.message });
      return;
    }
    default:
      sendProblem(res, 'STANDBY_ERR_NOT_FOUND', `no such API endpoint: ${path} (there are status, associations, events, sync/lag, failover, failover/abort, failover/report, switch-back, hosts, verify, settings, sync/confirm-deletes)`);
  }
}
