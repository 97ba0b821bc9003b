// The proxy's settings (proxy.json), with defaults and units.
import { z } from 'zod';
import { absolutePath, flagString, logLevel, ms, port, token, urlWith } from '../config-fields.ts';

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
  /** the agent's heartbeat period, ms (default 500) */
  heartbeatIntervalMs: ms('detector.heartbeatIntervalMs', 50, 60_000).default(500),
  /** heartbeats missed before the GPU is suspect (default 3) */
  missedHeartbeats: z.number({ error: 'a count of heartbeats 1-100' }).int().min(1, { error: 'at least 1 heartbeat' }).max(100, { error: 'at most 100 heartbeats' }).default(3),
  /** how often the proxy probes each code-server's /healthz itself, ms (default 250) */
  probeIntervalMs: ms('detector.probeIntervalMs', 20, 60_000).default(250),
  /** a probe that takes longer has failed, ms (default 400) */
  probeTimeoutMs: ms('detector.probeTimeoutMs', 20, 60_000).default(400),
  /** how long an agent's preemption notice may wait for the proxy to see it too (provider status, heartbeats stopping, code-server down) before it is dismissed, ms (default 60000) */
  preemptionConfirmMs: ms('detector.preemptionConfirmMs', 100, 3_600_000).default(60_000),
  /** the path probed on each backend (default /healthz, code-server's) */
  probePath: z.string().startsWith('/', { error: 'a path starting with /' }).default('/healthz'),
}, { error: 'an object of detector settings' });

export const tlsSchema = z.strictObject({
  cert: absolutePath,
  key: absolutePath,
}, { error: 'an object {cert, key} of PEM file paths' });

export const proxyConfigSchema = z.strictObject({
  listen: z.strictObject({
    host: z.string({ error: 'an address to listen on' }).min(1).default('127.0.0.1'),
    port: z.number({ error: 'a port number 0-65535' }).int().min(0, { error: 'a port number 0-65535' }).max(65535, { error: 'a port number 0-65535' }).default(8888),
  }, { error: 'an object {host, port}' }).default({ host: '127.0.0.1', port: 8888 }),
  tls: tlsSchema.optional(),
  /** where the event log and the state snapshot live (default /var/lib/standby) */
  stateDir: absolutePath.default('/var/lib/standby'),
  /** bearer token of the admin API (/_standby/api/v1/) */
  adminToken: token,
  primary: primarySchema,
  standby: standbyBackendSchema,
  detector: detectorSchema.default(() => detectorSchema.parse({})),
  logLevel,
})
  // a token names its host: two hosts (or the admin) sharing one could act as each other
  .refine((c) => c.standby.agentToken === undefined || c.standby.agentToken !== c.primary.agentToken, { error: 'a token of its own, not primary.agentToken', path: ['standby', 'agentToken'] })
  .refine((c) => c.standby.id !== c.primary.id, { error: 'an id of its own, not primary.id', path: ['standby', 'id'] })
  .refine((c) => c.adminToken !== c.primary.agentToken && c.adminToken !== c.standby.agentToken, { error: 'a token of its own, not an agent token', path: ['adminToken'] });

export type ProxyConfig = z.output<typeof proxyConfigSchema>;
