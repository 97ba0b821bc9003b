// The proxy's settings (proxy.json), with defaults and units.
import { isIP } from 'node:net';
import { z } from 'zod';
import { absolutePath, flagBoolean, flagString, logLevel, ms, port, token, urlWith } from './fields.ts';
import { liveFieldSchemas } from '../protocol/admin-api.ts';
import { recoverySchema } from './recovery.ts';

/** The receiver the proxy runs on the standby unless standby.ssh.command says otherwise. */
export const DEFAULT_RECEIVER = 'standby receive';

const httpUrl = urlWith(['http:', 'https:'], 'an http:// or https:// URL');
const id = flagString(z.string({ error: 'a host id string' }).min(1, { error: 'a non-empty host id' }).max(200, { error: 'a host id of at most 200 characters' }));

/** How the proxy reaches the standby over SSH to fence it (an admin key, not the agent's restricted one). */
export const fenceTargetSchema = z.strictObject({
  host: z.string({ error: 'a host name or IP address' }).min(1, { error: 'a host name or IP address' }),
  port: port.default(22),
  user: z.string({ error: 'a user name' }).min(1).default('root'),
  identityFile: absolutePath,
  /** known_hosts file with the standby's host key; without it any host key is accepted (first use) */
  knownHostsFile: absolutePath.optional(),
  /** the receiver command on the standby (default: standby receive) */
  command: z.string({ error: 'a command line' }).min(1).default(DEFAULT_RECEIVER),
  /** the receiver's state folder on the standby (default: its own default) */
  stateDir: absolutePath.optional(),
  /** how long in-flight writers of the old epoch may finish before they are killed, ms (default 5000) */
  waitMs: ms('standby.ssh.waitMs', 0, 600_000).default(5_000),
  /** the whole fence, connection included, ms (default 15000) */
  timeoutMs: ms('standby.ssh.timeoutMs', 100, 600_000).default(15_000),
}, { error: 'an object {host, port, user, identityFile}' });

/** Vast.ai has no preemption notice: the proxy polls the instance's actual_status. */
export const vastNoticeSchema = z.strictObject({
  apiUrl: httpUrl.default('https://console.vast.ai/api/v0'),
  apiKey: z.string({ error: 'a Vast.ai API key' }).min(1),
  instanceId: z.number({ error: 'the Vast.ai instance id (a number)' }).int().positive(),
  /** how often to ask, ms (default 5000) */
  everyMs: ms('primary.notices.vast.everyMs', 500, 600_000).default(5_000),
}, { error: 'an object {apiKey, instanceId}' });

export const primarySchema = z.strictObject({
  id,
  /** its code-server, as the proxy reaches it */
  url: httpUrl,
  /** the token its agent presents on /_standby/agent; optional: a GPU invited with `standby hosts add` gets its own at enrollment */
  agentToken: token.optional(),
  /** the provider that made this GPU (local, vast) and its id there: a recovery destroys it through them once the new GPU serves (recovery.gpu.old); absent: it is left for you to stop */
  provider: z.enum(['local', 'vast'], { error: 'local or vast' }).optional(),
  providerId: z.string({ error: "the GPU's id at its provider (a Vast instance id, a local gpu/<name>)" }).min(1).max(200).optional(),
  /** preemption notices the proxy watches itself (the agent reports the host's own) */
  notices: z.strictObject({ vast: vastNoticeSchema.optional() }, { error: 'an object {vast}' }).default({}),
}, { error: 'an object {id, url}' });

export const standbyBackendSchema = z.strictObject({
  id,
  url: httpUrl,
  /** the token the standby's own agent presents (later: it syncs towards a new GPU) */
  agentToken: token.optional(),
  ssh: fenceTargetSchema,
}, { error: 'an object {id, url, ssh}' });

export const detectorSchema = z.strictObject({
  // the fields that may change live share their schemas with the settings API (protocol/admin-api.ts)
  /** the agent's heartbeat period, ms (default 500) */
  heartbeatIntervalMs: liveFieldSchemas.detector.heartbeatIntervalMs.default(500),
  /** heartbeats missed before the GPU is suspect (default 3) */
  missedHeartbeats: liveFieldSchemas.detector.missedHeartbeats.default(3),
  /** how often the proxy probes each code-server's /healthz itself, ms (default 250) */
  probeIntervalMs: liveFieldSchemas.detector.probeIntervalMs.default(250),
  /** how often the side that does not serve is probed while nothing is happening (normal, waiting, failed over), ms (default 2000); every probeIntervalMs otherwise */
  passiveProbeIntervalMs: liveFieldSchemas.detector.passiveProbeIntervalMs.default(2_000),
  /** a probe that takes longer has failed, ms (default 400) */
  probeTimeoutMs: liveFieldSchemas.detector.probeTimeoutMs.default(400),
  /** how long an agent's preemption notice may wait for the proxy to see it too (provider status, heartbeats stopping, code-server down) before it is dismissed, ms (default 60000) */
  preemptionConfirmMs: liveFieldSchemas.detector.preemptionConfirmMs.default(60_000),
  /** the path probed on each backend (default /healthz, code-server's) */
  probePath: z.string().startsWith('/', { error: 'a path starting with /' }).default('/healthz'),
}, { error: 'an object of detector settings' });

/**
 * The sync settings the proxy pushes to the agent that serves (grant.settings), which applies them without a
 * restart; a field absent here (and not set live) is the agent's own agent.json value.
 */
export const agentSyncSchema = z.strictObject({
  /** a pass starts once the tree has been quiet this long, ms (default: the agent's sync.delayMs) */
  delayMs: liveFieldSchemas.agentSync.delayMs.optional(),
  /** the longest a change waits under a busy stream, ms (default: the agent's sync.maxDelayMs; raised to delayMs when below it) */
  maxDelayMs: liveFieldSchemas.agentSync.maxDelayMs.optional(),
  /** rsync exclude patterns in place of the agent's sync.exclude (its defaultExcludes still apply) (default: the agent's) */
  exclude: liveFieldSchemas.agentSync.exclude.optional(),
}, { error: 'an object {delayMs, maxDelayMs, exclude}' })
  .refine((s) => s.maxDelayMs === undefined || s.delayMs === undefined || s.maxDelayMs >= s.delayMs, { error: 'agentSync.maxDelayMs to be at least agentSync.delayMs', path: ['maxDelayMs'] });

export const tlsSchema = z.strictObject({
  cert: absolutePath,
  key: absolutePath,
}, { error: 'an object {cert, key} of PEM file paths' });

/** An IPv4 or IPv6 address, or a CIDR block of them ("10.0.0.0/8", "fd00::/8"). */
const addressOrCidr = z.string({ error: 'an IP address or CIDR block, e.g. "10.0.0.5" or "10.0.0.0/8"' }).refine((v) => {
  const [addr, bits, more] = v.split('/');
  const family = isIP(addr ?? '');
  if (family === 0 || more !== undefined) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d{1,3}$/.test(bits) && n <= (family === 4 ? 32 : 128);
}, { error: 'an IP address or CIDR block, e.g. "10.0.0.5" or "10.0.0.0/8"' });

/** What any client may hold on the one listener before it is authenticated (docs/configuration.md, limits). */
export const limitsSchema = z.strictObject({
  /** the request line and headers must arrive within this, ms (default 20000) */
  headersTimeoutMs: ms('limits.headersTimeoutMs', 100, 600_000).default(20_000),
  /** the whole request, headers and body; 0 = no limit, the default, so long uploads are not cut (slow ones are: bodyMinBytesPerSecond) */
  requestTimeoutMs: z.union([z.literal(0), ms('limits.requestTimeoutMs', 100, 86_400_000)]).default(0),
  /** a keep-alive connection with no request in flight is closed after this, ms (default 30000) */
  idleTimeoutMs: ms('limits.idleTimeoutMs', 100, 3_600_000).default(30_000),
  /** a request body slower than this, averaged over bodyRateWindowMs, is cut (default 1024 bytes/s; 0 = off) */
  bodyMinBytesPerSecond: z.number({ error: 'limits.bodyMinBytesPerSecond: bytes per second, 0 or more' }).int().min(0).max(1_073_741_824).default(1024),
  /** the window the body rate is averaged over, ms (default 30000) */
  bodyRateWindowMs: ms('limits.bodyRateWindowMs', 100, 600_000).default(30_000),
  /** request line and headers together, bytes (default 16384, Node's own); more gets 431 */
  maxHeaderBytes: z.number({ error: 'limits.maxHeaderBytes: bytes 1024-1048576' }).int().min(1024).max(1_048_576).default(16_384),
  /** header fields in one request (default 100); more gets 431 */
  maxHeaders: z.number({ error: 'limits.maxHeaders: a count 10-10000' }).int().min(10).max(10_000).default(100),
  /** open connections from one client address (an IPv6 client: its /64), trusted proxies exempt (default 256) */
  maxConnectionsPerClient: z.number({ error: 'limits.maxConnectionsPerClient: a count 1-1000000' }).int().min(1).max(1_000_000).default(256),
  /** open connections in all (default 8192) */
  maxConnections: z.number({ error: 'limits.maxConnections: a count 1-1000000' }).int().min(1).max(1_000_000).default(8_192),
  /** the editor's event streams (/_standby/events, one per open workbench tab) open at once, all clients together (default 1024); more get 503 */
  maxEventStreams: z.number({ error: 'limits.maxEventStreams: a count 1-1000000' }).int().min(1).max(1_000_000).default(1_024),
}, { error: 'an object of connection limits' });
/** Failed authentication (proxy/auth-throttle.ts): per client address, everywhere a token is checked. */
export const authSchema = z.strictObject({
  /** failures of one address within windowMs before it is locked out (default 10) */
  maxFailures: z.number({ error: 'a count of failures 1-1000' }).int().min(1, { error: 'at least 1 failure' }).max(1000, { error: 'at most 1000 failures' }).default(10),
  /** the window failures are counted in, ms (default 60000) */
  windowMs: ms('auth.windowMs', 1_000, 86_400_000).default(60_000),
  /** the first lockout, ms (default 30000); a lockout right after a lockout doubles, up to maxLockoutMs */
  lockoutMs: ms('auth.lockoutMs', 1_000, 86_400_000).default(30_000),
  /** the longest lockout, ms (default 900000: 15 min) */
  maxLockoutMs: ms('auth.maxLockoutMs', 1_000, 86_400_000).default(900_000),
  /** client addresses tracked at most; the least recently seen are forgotten first (default 10000) */
  maxAddresses: z.number({ error: 'a count of addresses 100-10000000' }).int().min(100, { error: 'at least 100 addresses' }).max(10_000_000, { error: 'at most 10000000 addresses' }).default(10_000),
  /** after an address's first 3 failures, at most one log line per this interval with the count, ms (default 60000) */
  logEveryMs: ms('auth.logEveryMs', 1_000, 86_400_000).default(60_000),
  /** how long the token a rotation replaces stays valid: an agent's (standby hosts rotate) and the admin's (on reload), ms (default 86400000: 24 h) */
  rotationGraceMs: ms('auth.rotationGraceMs', 0, 30 * 86_400_000).default(86_400_000),
}, { error: 'an object of auth settings' });

/** An admin token being retired: still accepted until `until`. */
export const previousAdminTokenSchema = z.strictObject({
  token,
  /** when it stops being accepted: an ISO 8601 date and time, e.g. 2026-12-06T12:00:00Z */
  until: z.iso.datetime({ offset: true, error: 'an ISO 8601 date and time, e.g. 2026-12-06T12:00:00Z' }),
}, { error: 'an object {token, until}' });

/** Prometheus metrics: always at /_standby/metrics behind the admin token; `listen` adds a listener of their own without auth. */
export const metricsSchema = z.strictObject({
  /** a listener for the metrics alone, without auth (default: none); host defaults to 127.0.0.1, keep it private */
  listen: z.strictObject({
    host: z.string({ error: 'an address to listen on' }).min(1).default('127.0.0.1'),
    port: z.number({ error: 'a port number 0-65535' }).int().min(0, { error: 'a port number 0-65535' }).max(65535, { error: 'a port number 0-65535' }),
  }, { error: 'an object {host?, port}' }).optional(),
}, { error: 'an object {listen?}' });

export const proxyConfigSchema = z.strictObject({
  listen: z.strictObject({
    host: z.string({ error: 'an address to listen on' }).min(1).default('127.0.0.1'),
    port: z.number({ error: 'a port number 0-65535' }).int().min(0, { error: 'a port number 0-65535' }).max(65535, { error: 'a port number 0-65535' }).default(8888),
  }, { error: 'an object {host, port}' }).default({ host: '127.0.0.1', port: 8888 }),
  tls: tlsSchema.optional(),
  /**
   * The URL hosts reach this proxy by, e.g. https://proxy.example.com (no path): what install.sh and
   * the invitation's install line name. Never taken from a request's Host. Unset: the listen address,
   * unless it is a wildcard (0.0.0.0, ::), when install.sh and invitations are refused naming this field.
   */
  publicUrl: urlWith(['http:', 'https:'], 'the URL hosts reach this proxy by, http:// or https://, e.g. https://proxy.example.com')
    .refine((u) => {
      const p = new URL(u);
      return p.pathname === '/' && p.search === '' && p.hash === '' && p.username === '' && p.password === '';
    }, { error: 'a URL with no path, query or credentials, e.g. https://proxy.example.com:8443 (the proxy serves /_standby/ at its root)' })
    .transform((u) => u.replace(/\/+$/, ''))
    .optional(),
  /** where the event log and the state snapshot live (default /var/lib/standby) */
  stateDir: absolutePath.default('/var/lib/standby'),
  /** bearer token of the admin API (/_standby/api/v1/) */
  adminToken: token,
  /** admin tokens being retired, each accepted until its `until` (default none); the proxy re-reads both on SIGHUP */
  previousAdminTokens: z.array(previousAdminTokenSchema, { error: 'a list of {token, until}' }).max(10, { error: 'at most 10 previous admin tokens' }).default([]),
  auth: authSchema.default(() => authSchema.parse({})),
  metrics: metricsSchema.default({}),
  primary: primarySchema,
  standby: standbyBackendSchema,
  detector: detectorSchema.default(() => detectorSchema.parse({})),
  /** fail over by itself when the detector finds the GPU failed (default true); false: the failure is reported (status, log) and `standby failover` does it */
  autoFailover: flagBoolean(liveFieldSchemas.autoFailover).default(true),
  /** the sync settings pushed to the agent that serves (default: none pushed, each agent keeps its agent.json's) */
  agentSync: agentSyncSchema.optional(),
  limits: limitsSchema.default(() => limitsSchema.parse({})),
  /** peers whose X-Forwarded-* the proxy keeps and appends to (a TLS terminator or load balancer in front); default none */
  trustedProxies: z.array(addressOrCidr, { error: 'a list of IP addresses or CIDR blocks' }).max(1000).default([]),
  /** new GPUs after a failover: providers, timeouts (config/recovery.ts); absent: nothing is ever provisioned */
  recovery: recoverySchema.optional(),
  /**
   * A login in front of code-server (proxy/login.ts), for deployments that do not use code-server's own
   * auth; absent: none. Its cookie is Secure: the proxy must be reached over HTTPS (tls, or a TLS
   * proxy in trustedProxies), or on a loopback address (an SSH tunnel), which browsers treat as secure
   */
  login: z.strictObject({
    /** the developer's password, 12-1024 characters */
    password: z.string({ error: 'a password of 12-1024 characters' }).min(12, { error: 'a password of 12-1024 characters' }).max(1024, { error: 'a password of 12-1024 characters' }),
    /** how long a login lasts, hours (default 168: a week) */
    sessionHours: z.number({ error: 'hours 1-8760' }).int().min(1, { error: 'hours 1-8760' }).max(8760, { error: 'hours 1-8760' }).default(168),
  }, { error: 'an object {password, sessionHours}' }).optional(),
  logLevel,
})
  // a token names its host: two hosts (or the admin) sharing one could act as each other
  .refine((c) => c.standby.agentToken === undefined || c.standby.agentToken !== c.primary.agentToken, { error: 'a token of its own, not primary.agentToken', path: ['standby', 'agentToken'] })
  .refine((c) => c.standby.id !== c.primary.id, { error: 'an id of its own, not primary.id', path: ['standby', 'id'] })
  .refine((c) => (c.primary.provider === undefined) === (c.primary.providerId === undefined), { error: 'primary.provider and primary.providerId together (or neither)', path: ['primary', 'providerId'] })
  .refine((c) => c.adminToken !== c.primary.agentToken && c.adminToken !== c.standby.agentToken, { error: 'a token of its own, not an agent token', path: ['adminToken'] })
  // a Secure cookie over plain HTTP to a non-loopback address is never sent back: the developer could never log in
  .refine((c) => c.login === undefined || c.tls !== undefined || c.trustedProxies.length > 0 || /^(127\.|::1$|localhost$)/.test(c.listen.host), { error: 'login needs HTTPS: set tls, or put a TLS proxy in front and list it in trustedProxies, or listen on 127.0.0.1 and reach it through an SSH tunnel', path: ['login'] })
  .refine((c) => c.login === undefined || c.login.password !== c.adminToken, { error: 'a password of its own, not the admin token', path: ['login', 'password'] });

export type ProxyConfig = z.output<typeof proxyConfigSchema>;
