// What the agent and the proxy say to each other over the agent WebSocket
// (`/_standby/agent`), one JSON object per text frame, validated on receipt.
// Times are ages measured on the sender's monotonic clock, never timestamps:
// clock skew and jumps between hosts change nothing.
import { z } from 'zod';

export const AGENT_PATH = '/_standby/agent';
/** the WebSocket close code for a message that breaks this protocol (RFC 6455: policy violation) */
export const CLOSE_PROTOCOL_ERROR = 1008;
/** ...for an agent the proxy replaced (another connection for the same host id) */
export const CLOSE_REPLACED = 4001;
/** the retired token the connection used has expired: reconnect (with the new token) */
export const CLOSE_TOKEN_EXPIRED = 4004;
/** the host's credentials were revoked (fenced or removed by the admin): it must not reconnect */
export const CLOSE_REVOKED = 4003;

const count = z.number().int().min(0);
const ageMs = z.number().min(0).nullable();

/** How many exclude patterns a heartbeat reports (and how long each may be): the frame stays well inside 64 KiB. */
export const MAX_REPORTED_EXCLUDES = 100;
export const MAX_REPORTED_EXCLUDE_CHARS = 300;

/** The agent's sync state as a heartbeat carries it (from its status answer, protocol/agent-status.ts; ages in ms). */
const syncStateSchema = z.strictObject({
  /** every change numbered at or below it is on the standby's disk */
  watermark: count,
  /** the newest change number given out */
  lastSeq: count,
  /** paths with changes not yet on the standby: waiting for a pass, in flight, or deletions the guard holds (the status answer's outstandingPaths) */
  pending: count,
  /** age of the oldest change not yet on the standby (waiting, in flight or held), or null when none */
  oldestPendingAgeMs: ageMs,
  /** age of the last completed pass, or null before the first */
  lastPassAgeMs: ageMs,
  /** the first full reconcile has landed */
  ready: z.boolean(),
  /** deletions held by the mass-deletion guard */
  held: z.boolean(),
  /** the last pass error, or null */
  lastError: z.string().max(2000).nullable(),
  /**
   * where this sync state is about: the granted target's id (a restore to a new GPU, grant.target.id), or
   * null for the agent's configured standby. A target change starts the numbers afresh: watermark and
   * ready describe the current target only
   */
  target: z.string().max(200).nullable().default(null),
  /** a full pass under way (the first one to a target: a restore), or null: how far it got */
  progress: z.strictObject({
    /** files sent and checked so far */
    files: count,
    /** bytes sent so far */
    bytes: count,
    /** files in the tree, once rsync has counted them (null before) */
    totalFiles: count.nullable(),
    /** bytes per second over the pass so far */
    rateBps: z.number().min(0),
    /** how long the pass has run, ms */
    elapsedMs: z.number().min(0),
  }).nullable().default(null),
  /**
   * the sync settings in force on the agent (its agent.json's, with what the proxy pushed over them):
   * absent from agents older than the live settings. `exclude`: its own patterns without the built-in
   * defaults, the first MAX_REPORTED_EXCLUDES of at most 300 characters each; `excludeCount` how many in all
   */
  settings: z.strictObject({
    delayMs: count,
    maxDelayMs: count,
    exclude: z.array(z.string().max(MAX_REPORTED_EXCLUDE_CHARS)).max(MAX_REPORTED_EXCLUDES),
    excludeCount: count,
    /** some of them came from the proxy (grant.settings) */
    pushed: z.boolean(),
  }).optional(),
});
export type SyncState = z.infer<typeof syncStateSchema>;

/** code-server as the agent sees it on its own host */
const codeServerHealthSchema = z.strictObject({
  healthy: z.boolean(),
  /** age of that observation, null when never probed */
  checkedAgeMs: ageMs,
});

const preemptionSchema = z.strictObject({
  /** who said so: gcp-metadata, sigterm, provider-status, ... */
  source: z.string().min(1).max(100),
  /** how long ago the notice arrived */
  ageMs: z.number().min(0),
});

/** The resume command's run as the agent reports it (ages on the agent's clock). */
export const resumeStateSchema = z.strictObject({
  /** the epoch of the grant that ran it (a switch back's) */
  epoch: count,
  state: z.enum(['running', 'exited', 'failed-to-start']),
  pid: z.number().int().min(1).optional(),
  /** its exit code once exited (null: running, killed by a signal, or not seen) */
  exitCode: z.number().int().nullable(),
  /** the signal that ended it (e.g. SIGKILL on its timeout), or null */
  signal: z.string().max(20).nullable(),
  startedAgeMs: z.number().min(0),
  endedAgeMs: z.number().min(0).nullable(),
  /** why it did not start or how it ended badly (timed out, not seen), or null */
  error: z.string().max(500).nullable(),
});
export type ResumeState = z.infer<typeof resumeStateSchema>;

export const heartbeatSchema = z.strictObject({
  type: z.literal('heartbeat'),
  hostId: z.string().min(1).max(200),
  /** the epoch the agent was last granted (0: never) */
  epoch: count,
  /** heartbeat number, increasing for the life of the agent process */
  seq: count,
  sync: syncStateSchema,
  codeServer: codeServerHealthSchema,
  preemption: preemptionSchema.nullable().default(null),
  /**
   * the OpenSSH public key line the agent writes with ("ssh-ed25519 AAAA..."), sent in the first heartbeat
   * of each connection: the proxy authorizes it on a new GPU's receiver before granting a restore there
   */
  publicKey: z.string().min(1).max(16_384).optional(),
  /** the host's user processes are frozen (the proxy asked: a switch back's freeze) */
  frozen: z.boolean().default(false),
  /** the resume command this agent ran on a grant with resume: true (agent/resume.ts), or null: none ran */
  resume: resumeStateSchema.nullable().default(null),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

/** The agent's answer to a sync request: a pass covering every change up to `watermark` is on the standby's disk. */
export const syncedSchema = z.strictObject({
  type: z.literal('synced'),
  id: z.string().min(1).max(100),
  watermark: count,
  /** false when the pass failed: the reason */
  ok: z.boolean(),
  error: z.string().max(2000).nullable().default(null),
});
export type Synced = z.infer<typeof syncedSchema>;

/** The agent's answer to a verify request: the checksum comparison of its workspace with the standby's copy (agent/verify.ts). */
export const verifiedSchema = z.strictObject({
  type: z.literal('verified'),
  id: z.string().min(1).max(100),
  /** false when the comparison could not run: the reason is in error */
  ok: z.boolean(),
  /** how many differences in all (the list holds the first 1000) */
  total: count,
  differences: z.array(z.strictObject({
    root: z.string().max(4096),
    path: z.string().max(4096),
    kind: z.string().max(40),
  })).max(1000),
  error: z.string().max(2000).nullable(),
});
export type Verified = z.infer<typeof verifiedSchema>;

/** The agent's answer to a freeze request: whether the host's user processes are now stopped (frozen) or running again. */
export const frozenSchema = z.strictObject({
  type: z.literal('frozen'),
  id: z.string().min(1).max(100),
  /** false: the freeze (or thaw) failed; the reason is in error */
  ok: z.boolean(),
  /** the state now: true = stopped */
  frozen: z.boolean(),
  /** how many processes were stopped or continued */
  processes: count,
  error: z.string().max(2000).nullable(),
});
export type Frozen = z.infer<typeof frozenSchema>;

/** The agent's answer to a conflicts request: what of its unsent changes it copied into the standby's conflicts folder. */
export const conflictsSentSchema = z.strictObject({
  type: z.literal('conflicts-sent'),
  id: z.string().min(1).max(100),
  /** false: the copy failed (or could not start); the reason is in error. What landed before the failure stays */
  ok: z.boolean(),
  /** files and bytes copied */
  files: count,
  bytes: count,
  /** unsent deletions: paths deleted here that the standby still has (not applied there; listed) */
  deletions: count,
  /** the first paths copied or deleted, for the report */
  paths: z.array(z.string().max(4096)).max(50),
  /** false: the agent never completed a pass to the standby since it started (it restarted after the fence): changes from before its start are not known to it */
  complete: z.boolean().default(true),
  error: z.string().max(2000).nullable(),
});
export type ConflictsSent = z.infer<typeof conflictsSentSchema>;

/** The agent's answer to a confirm-deletes request: the held deletions released (they go in a full reconcile now). */
export const deletesConfirmedSchema = z.strictObject({
  type: z.literal('deletes-confirmed'),
  id: z.string().min(1).max(100),
  /** entries the held deletions remove on the standby (0: none were held) */
  deletions: count,
});
export type DeletesConfirmed = z.infer<typeof deletesConfirmedSchema>;

export const agentMessageSchema = z.discriminatedUnion('type', [heartbeatSchema, syncedSchema, verifiedSchema, frozenSchema, conflictsSentSchema, deletesConfirmedSchema]);
export type AgentMessage = z.infer<typeof agentMessageSchema>;

export type Role = 'primary' | 'fenced';

/**
 * Settings the proxy pushes to the serving agent (proxy.json agentSync, or set live); absent fields keep the
 * agent's own. Every grant carries the whole set: a grant without it puts the agent back on its own settings.
 */
export const pushedSettingsSchema = z.strictObject({
  delayMs: z.number().int().min(0).max(60_000).optional(),
  maxDelayMs: z.number().int().min(0).max(600_000).optional(),
  exclude: z.array(z.string().max(1000)).max(1000).optional(),
});
export type PushedSettings = z.infer<typeof pushedSettingsSchema>;

/** A receiver the proxy grants an agent to push to: a new GPU's `standby receive`, reached over SSH. */
export const pushTargetSchema = z.strictObject({
  /** the target's host id (what the heartbeat's sync.target echoes) */
  id: z.string().min(1).max(200),
  host: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535),
  user: z.string().min(1).max(100),
  /** the workspace folder there (the receiver's root): where root 0 goes; extra roots keep their remote paths */
  path: z.string().min(1).max(4096).startsWith('/'),
  /** the target's SSH host keys as known_hosts lines ("[host]:port ssh-ed25519 AAAA..."); empty: accept the first key seen */
  knownHosts: z.array(z.string().max(16_384)).max(20),
  /**
   * code-server's folders there, as its receiver listed its roots when the standby's agent was authorized
   * there (a GPU's code-server may run as another user than the standby's); absent when it takes none.
   * An agent older than this field ignores a grant that has it (docs/operations.md, upgrading)
   */
  editor: z.strictObject({ userDataDir: z.string().min(2).max(4096).startsWith('/'), extensionsDir: z.string().min(2).max(4096).startsWith('/') }).optional(),
});
export type PushTarget = z.infer<typeof pushTargetSchema>;

/** The proxy's answer to every heartbeat, and its word whenever the role changes. */
export const grantSchema = z.strictObject({
  type: z.literal('grant'),
  /** the proxy's current epoch */
  epoch: count,
  /** primary: push to the standby under `epoch`; fenced: push nothing */
  role: z.enum(['primary', 'fenced']),
  /** why, for the agent's log */
  reason: z.string().max(500),
  /** the heartbeat this answers, or null when the proxy speaks first */
  heartbeatSeq: count.nullable(),
  settings: pushedSettingsSchema.optional(),
  /**
   * primary only: push to this receiver instead of the configured standby (the standby's agent restoring
   * to a new GPU). Absent: the configured standby. A change of target starts with a full pass
   */
  target: pushTargetSchema.optional(),
  /**
   * primary only: this grant makes a recovery's new GPU primary (the switch back to it): its agent runs its
   * own resume command (agent.json resume), once per epoch. The proxy never says what to run
   */
  resume: z.literal(true).optional(),
});
export type Grant = z.infer<typeof grantSchema>;

/** The proxy asks for a pass now and an answer when it is on disk (planned failover's final sync). */
export const syncRequestSchema = z.strictObject({
  type: z.literal('sync-now'),
  id: z.string().min(1).max(100),
});
export type SyncRequest = z.infer<typeof syncRequestSchema>;

/** The proxy (for `standby verify --proxy`) asks the agent to compare its workspace with the standby's copy and report. */
export const verifyRequestSchema = z.strictObject({
  type: z.literal('verify'),
  id: z.string().min(1).max(100),
});
export type VerifyRequest = z.infer<typeof verifyRequestSchema>;

/** The proxy asks the agent to stop (freeze: true) or continue (false) the host's user processes: a switch back's freeze, so nothing writes during the final pass. */
export const freezeRequestSchema = z.strictObject({
  type: z.literal('freeze'),
  id: z.string().min(1).max(100),
  frozen: z.boolean(),
  /** a freeze lifts itself after this long, ms, should the proxy never lift it (default: the agent's freeze.maxMs) */
  maxMs: z.number().int().min(100).max(600_000).optional(),
});
export type FreezeRequest = z.infer<typeof freezeRequestSchema>;

/**
 * The proxy asks a fenced GPU's agent (a recovery retires its host) to copy the changes it never got onto
 * the standby into the conflicts folder the proxy opened for its key there (`<workspace>.conflicts/<name>`):
 * added and changed files as they are now, deletions listed, nothing deleted there.
 */
export const conflictsRequestSchema = z.strictObject({
  type: z.literal('conflicts'),
  id: z.string().min(1).max(100),
  /** the folder on the configured standby, absolute */
  path: z.string().min(2).max(4096).startsWith('/'),
});
export type ConflictsRequest = z.infer<typeof conflictsRequestSchema>;

/** The proxy (the admin, POST /_standby/api/v1/sync/confirm-deletes) asks the agent to release the deletions its guard holds, as `standby sync --confirm-deletes` does on the host. */
export const confirmDeletesRequestSchema = z.strictObject({
  type: z.literal('confirm-deletes'),
  id: z.string().min(1).max(100),
});
export type ConfirmDeletesRequest = z.infer<typeof confirmDeletesRequestSchema>;

export const proxyMessageSchema = z.discriminatedUnion('type', [grantSchema, syncRequestSchema, verifyRequestSchema, freezeRequestSchema, conflictsRequestSchema, confirmDeletesRequestSchema]);
export type ProxyMessage = z.infer<typeof proxyMessageSchema>;

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** The first problem with a message, as one line for a close reason (at most 123 bytes on the wire). */
function describe(err: z.ZodError): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid message';
  const where = issue.path.length > 0 ? issue.path.join('.') : 'message';
  return `${where}: ${issue.message}`;
}

function parseWith<T>(schema: z.ZodType<T>, raw: string | Buffer, who: string): T {
  let data: unknown;
  try {
    data = JSON.parse(raw.toString());
  } catch {
    throw new ProtocolError(`${who} message is not JSON`);
  }
  const r = schema.safeParse(data);
  if (!r.success) throw new ProtocolError(`bad ${who} message: ${describe(r.error)}`);
  return r.data;
}

export function parseAgentMessage(raw: string | Buffer): AgentMessage {
  return parseWith(agentMessageSchema, raw, 'agent');
}

export function parseProxyMessage(raw: string | Buffer): ProxyMessage {
  return parseWith(proxyMessageSchema, raw, 'proxy');
}

/** A WebSocket close reason is at most 123 bytes. */
export function closeReason(text: string): string {
  const b = Buffer.from(text);
  return b.length <= 123 ? text : b.subarray(0, 120).toString().replace(/\uFFFD$/, '') + '...';
}
