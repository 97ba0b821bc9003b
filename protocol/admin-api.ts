// The proxy's HTTP contract with the CLI, the installer and the agent: the
// answer shapes of the admin API and of enrollment, the error answer, the
// token prefixes that tell one kind of credential from another, and the
// install downloads' paths. The proxy serves these; the others read them;
// none imports another's code.
import { z } from 'zod';
import type { ErrorCode } from '../core/errors.ts';
import type { EditorDirs } from './receiver.ts';

/** Every error answer in JSON (admin API, enrollment, the agent socket's refusals): a STANDBY_ERR_* code and what to do. */
export interface Problem {
  error: { code: ErrorCode; message: string };
}

/** A one-time invitation to enroll (`standby hosts add`). */
export const INVITE_PREFIX = 'sbi_';
/** An agent's bearer token, issued at enrollment or rotation. */
export const AGENT_TOKEN_PREFIX = 'sba_';
/** A download-only token: the bundle, until it expires. */
export const DOWNLOAD_PREFIX = 'sbd_';

/** The public half of the proxy's fencing key, which a standby's install authorizes. */
export const FENCE_KEY_PATH = '/_standby/fence-key.pub';
export const INSTALL_PATHS = ['/_standby/install.sh', '/_standby/bundle.tar.gz', '/_standby/bundle.sha256', FENCE_KEY_PATH] as const;

/** POST /_standby/enroll's answer to a valid invitation. */
export interface EnrollAnswer {
  hostId: string;
  agentToken: string;
  /**
   * where the agent mirrors to, as the proxy reaches the standby (the installer's --standby-* flags win);
   * `editor`: code-server's folders there, as the standby's receiver lists its roots (absent when it takes none, and from older proxies)
   */
  standby: { host: string; port: number; user: string; path: string | null; editor?: EditorDirs };
  /** known_hosts lines of the standby's host key, when the proxy has them */
  knownHosts: string[];
}

/** A host's life in the proxy's registry. */
export type HostState = 'invited' | 'active' | 'revoked';

/** One row of GET /_standby/api/v1/hosts. */
export interface HostView {
  id: string;
  /** where its agent token comes from: issued at enrollment, proxy.json, or none yet (invited) */
  source: 'enrolled' | 'rotated' | 'proxy.json' | 'none';
  state: HostState | 'configured';
  role: 'gpu' | 'standby' | 'other';
  connected: boolean;
  heartbeatAgeMs: number | null;
  key: { type: string; fingerprint: string } | null;
  invitedAt: string | null;
  inviteExpiresAt: string | null;
  enrolledAt: string | null;
  /** when the token was last rotated, and until when the one before it is still accepted (null: no second token) */
  rotatedAt: string | null;
  previousTokenValidUntil: string | null;
  revokedAt: string | null;
  revokedWhy: string | null;
  keyRevoked: boolean | null;
  keyRevokeError: string | null;
}

/**
 * The phases a failover report times, in the order they happen. Today's: detection (unplanned), final-pass
 * (planned: freeze, final pass, an agent notice's corroboration), fence, route; switch-back (the standby frozen
 * to the GPU serving). Recovery's, when it is built: gpu-search, provisioning, ssh-ready, restore.
 */
export type ReportPhase = 'detection' | 'final-pass' | 'fence' | 'route' | 'gpu-search' | 'provisioning' | 'ssh-ready' | 'agent-ready' | 'restore' | 'switch-back';

/** Why a failover began, as the report groups them (unknown: an old log's reason the report cannot read). */
export type ReportCauseKind = 'silence' | 'connection-lost' | 'preemption' | 'manual' | 'drill' | 'unknown';

/** Durations measured on the proxy's monotonic clock where they happened, ms. */
export interface TimeStat {
  /** how many had the figure */
  measured: number;
  /** how many did not (logs written before it was recorded, a switch a restarted proxy resumed) */
  unknown: number;
  /** null when nothing was measured */
  meanMs: number | null;
  p95Ms: number | null;
  maxMs: number | null;
}

/** One failover of GET /_standby/api/v1/failover/report. */
export interface FailoverView {
  epoch: number;
  /** the new epoch's wall-clock time (for people; nothing is measured with it) */
  at: string;
  planned: boolean;
  drill: boolean;
  cause: {
    kind: ReportCauseKind;
    /** a preemption notice's source (gcp-metadata, vast-status, ...) and who had it (the proxy's own watcher, or the agent's, corroborated) */
    source: string | null;
    by: 'proxy' | 'agent' | null;
    /** an unplanned failover's failing code-server probe (its error code) */
    probeError: string | null;
    /** read from the event's reason text: a log written before causes were recorded */
    inferred: boolean;
    /** one line for people */
    label: string;
  };
  /** succeeded: the standby served; failed: aborted, or a later failover began before its fence; in-progress: neither yet */
  outcome: 'succeeded' | 'failed' | 'in-progress';
  /** why it failed, or null */
  failure: string | null;
  /** the phases that apply to it; ms null: not recorded (an older log) */
  phases: { name: ReportPhase; ms: number | null }[];
  /** from the last heartbeat (unplanned) or the failover's start (planned) to the standby serving; null: unknown */
  toStandbyMs: number | null;
  /**
   * The RPO, from the last heartbeat's sync state: `rpoMs` is how old the oldest change the standby lacked was
   * (0: nothing outstanding; null: an older log that did not record it), `unsyncedChanges` how many changes were
   * numbered above the watermark, `heartbeatAgeMs` how long before the new epoch that heartbeat arrived (the
   * GPU's writes after it are unseen). null: no heartbeat from the GPU since the proxy started.
   */
  rpo: { rpoMs: number | null; unsyncedChanges: number | null; watermark: number; heartbeatAgeMs: number | null } | null;
  /** a proxy restart came between its new epoch and its end (its whole time is unknown) */
  resumed: boolean;
  /**
   * The recovery after it (a new GPU, restored, switched back to), or null when none ran: its outcome, the
   * tries it took, the new GPU, why its last try failed (e.g. no offer under the price cap)
   */
  recovery: {
    outcome: 'done' | 'gave-up' | 'in-progress';
    attempts: number;
    newGpu: string | null;
    provisioned: boolean;
    restored: boolean;
    error: string | null;
    /** what became of the GPU that was left (its unsent changes, then destroyed, stopped or kept), or null before */
    oldGpu: string | null;
    /** its unsent changes, copied beside the standby's workspace (`<workspace>.conflicts/<time>-<host>`), or null: none collected (oldGpu says why) */
    conflicts: { folder: string; files: number; bytes: number; deletions: number; paths: string[]; complete: boolean; error: string | null } | null;
  } | null;
  /** from the last heartbeat (or the start) to the new GPU serving; null: unknown or not yet */
  toNewGpuMs: number | null;
  /**
   * The resume command on the new GPU after the switch back (agent.json resume, as its agent reported it), or
   * null when none was reported. `started`: it ran; `exited`: its end was seen, with its exit code or the
   * signal that ended it; `error`: it did not start, was killed on its timeout, or ended unseen
   */
  resume: { hostId: string; epoch: number; started: boolean; exited: boolean; exitCode: number | null; signal: string | null; error: string | null } | null;
}

/** The standby's monthly cost estimate (proxy/provision/gcp-cost.ts), or why there is none. */
export type StandbyCostView =
  | { known: true; monthly: number; machine: number; disk: number; externalIp: number; perHour: number; summary: string }
  | { known: false; reason: string };

/** GET /_standby/api/v1/failover/report?days=N: the failovers that began in the last N days (docs/operations.md, "The failover report"). */
export interface FailoverReport {
  window: { days: number; from: string; to: string };
  failovers: {
    total: number;
    succeeded: number;
    failed: number;
    inProgress: number;
    /** drills among them (counted like the others) */
    drills: number;
    /** succeeded / (succeeded + failed), 0..1; null when none ended */
    successRate: number | null;
  };
  /** mean time to repair: to the standby serving, and to a new GPU serving (recovery) */
  mttr: { toStandby: TimeStat; toNewGpu: TimeStat & { note: string | null } };
  /** per phase, in order; only the phases this proxy runs */
  phases: (TimeStat & { name: ReportPhase })[];
  /** recovery's counts: 0 of 0 (with the reason) until recovery is configured */
  recovery: { configured: boolean; note: string | null; gpusProvisioned: { done: number; of: number }; dataRestored: { done: number; of: number } };
  /** most frequent first */
  causes: { kind: ReportCauseKind; label: string; count: number }[];
  /** the standby machine's own outages (preempted, stopped, gone) while the proxy watched it: how many, how many made anew, and the windows without a reachable standby copy */
  standbyOutages: { count: number; recreated: number; window: TimeStat };
  /** the RPO over the failovers that recorded it */
  rpo: TimeStat;
  /** switches back to the GPU that began in the window: done (the GPU served) and aborted */
  switchBacks: { total: number; done: number; aborted: number };
  standbyCost: StandbyCostView;
  /** oldest first */
  list: FailoverView[];
}

/**
 * GET /_standby/api/v1/recovery (and status's `recovery`): the recovery under way, or the last one
 * (proxy/recovery.ts); `configured: false` when proxy.json has no recovery section.
 */
export type RecoveryStatus =
  | { configured: false; why: string }
  | {
      configured: true;
      autoRecovery: boolean;
      /** the GPU provider */
      provider: string;
      /** a try runs in this proxy now */
      running: boolean;
      /** the failover epoch it recovers from, its try and its last step (null: none ran since the log began) */
      epoch: number | null;
      attempt: number | null;
      step: string | null;
      /** the new GPU, once created */
      newGpu: { id: string; url: string; providerId: string; ssh: string; pricePerHour: number | null } | null;
      /** why the last try failed */
      error: string | null;
      /** the restore's progress from the standby agent's heartbeats, while it restores */
      restore: { files: number; bytes: number; totalFiles: number | null; rateBps: number; elapsedMs: number; pending: number; ready: boolean } | null;
    };

// ---------------------------------------------------------------------------
// Live settings: GET/PATCH /_standby/api/v1/settings (docs/configuration.md,
// "Settings changed live"). Field paths are proxy.json's own, so an error, an
// override and the file name the same field. protocol/ imports no config/:
// the bounds below are config's (config/proxy.ts, recovery.ts, gcp-standby.ts,
// vast-provider.ts, agent.ts's sync), and the proxy validates a change with
// proxy.json's schema as well (proxy/live-settings.ts); a test keeps the two in
// step. In a PATCH, every field is optional, and null drops the live override
// (back to proxy.json's value).

/** Live excludes are bounded so that the heartbeat that reports them back stays well inside the agent socket's 64 KiB frame. */
export const MAX_LIVE_EXCLUDES = 100;
export const MAX_LIVE_EXCLUDE_CHARS = 300;

const liveMs = (field: string, min: number, max: number) =>
  z.number({ error: `${field}: a number of milliseconds ${min}-${max}` }).int({ error: `${field}: whole milliseconds` }).min(min, { error: `${field}: at least ${min} ms` }).max(max, { error: `${field}: at most ${max} ms` });
const liveBool = z.boolean({ error: 'true or false' });
const gcpName = (what: string) => z.string({ error: what }).regex(/^[a-z][-a-z0-9]{0,62}$/, { error: `${what}: lowercase letters, digits and "-"` });
const regionCode = z.string({ error: 'a country code ("TH") or "EU" / "NA"' }).regex(/^[A-Z]{2}$/, { error: 'a two-letter upper-case country code ("TH") or "EU" / "NA"' });

/** The live fields' value schemas (no defaults: a PATCH names what it changes). */
export const liveFieldSchemas = {
  /** with it off, a detected failure is reported (status, log, metrics) but the proxy does not fail over by itself; `standby failover` still does (default true) */
  autoFailover: liveBool,
  detector: {
    /** the agent's heartbeat period as the detector counts it, ms (default 500) */
    heartbeatIntervalMs: liveMs('detector.heartbeatIntervalMs', 50, 60_000),
    /** heartbeats missed before the GPU is suspect (default 3) */
    missedHeartbeats: z.number({ error: 'a count of heartbeats 1-100' }).int().min(1, { error: 'at least 1 heartbeat' }).max(100, { error: 'at most 100 heartbeats' }),
    /** how often the proxy probes each code-server's /healthz, ms (default 250) */
    probeIntervalMs: liveMs('detector.probeIntervalMs', 20, 60_000),
    /** how often the side that does not serve is probed while nothing happens, ms (default 2000) */
    passiveProbeIntervalMs: liveMs('detector.passiveProbeIntervalMs', 20, 600_000),
    /** a probe that takes longer has failed, ms (default 400) */
    probeTimeoutMs: liveMs('detector.probeTimeoutMs', 20, 60_000),
    /** how long an agent's preemption notice waits for the proxy's own evidence, ms (default 60000) */
    preemptionConfirmMs: liveMs('detector.preemptionConfirmMs', 100, 3_600_000),
  },
  agentSync: {
    /** a pass starts once the tree has been quiet this long, ms (default: the agent's agent.json sync.delayMs, itself 250 by default) */
    delayMs: liveMs('agentSync.delayMs', 0, 60_000),
    /** the longest a change waits under a busy stream, ms (default: the agent's own; at least delayMs) */
    maxDelayMs: liveMs('agentSync.maxDelayMs', 0, 600_000),
    /** rsync exclude patterns, in place of agent.json's sync.exclude (its defaultExcludes still apply) (default: the agent's own) */
    exclude: z.array(z.string({ error: 'an rsync pattern string' }).min(1, { error: 'a non-empty rsync pattern' }).max(MAX_LIVE_EXCLUDE_CHARS, { error: `an rsync pattern of at most ${MAX_LIVE_EXCLUDE_CHARS} characters` }), { error: 'a list of rsync patterns' }).max(MAX_LIVE_EXCLUDES, { error: `at most ${MAX_LIVE_EXCLUDES} patterns` }),
  },
  recovery: {
    /** after a failover, bring a new GPU up by itself (default true) */
    autoRecovery: liveBool,
    /** recovery.standby.gcp: the next standby machine made */
    standbyGcp: {
      /** zone (default europe-west1-b) */
      zone: gcpName('a GCP zone, e.g. europe-west1-b'),
      /** machine type (default e2-medium) */
      machineType: gcpName('a machine type, e.g. e2-medium'),
      /** boot disk, GB (default 100) */
      diskGb: z.number({ error: 'disk size in GB' }).int().min(10, { error: 'at least 10 GB' }).max(65_536),
      /** a spot VM (default true) */
      spot: liveBool,
    },
    /** recovery.gpu.vast: the next GPU search */
    gpuVast: {
      /** the whole machine's price, $/hour, at most (default 0.5) */
      gpuMaxPrice: z.number({ error: 'a price in $/hour, above 0' }).positive({ error: 'a price above 0 $/hour' }).max(1000),
      /** GPU memory per GPU, GB, at least (default 8) */
      gpuMinRamGb: z.number({ error: 'GB of GPU memory, 1-1000' }).min(1).max(1000),
      /** preferred regions, first first (default TH, VN, JP, EU) */
      regions: z.array(regionCode, { error: 'a list of country codes, e.g. ["TH", "VN", "JP", "EU"]' }).max(50),
    },
  },
} as const;

const f = liveFieldSchemas;
const patchable = <T extends z.ZodType>(s: T) => s.nullable().optional();

/**
 * PATCH /_standby/api/v1/settings's body: a partial object of the live settings, at proxy.json's paths
 * (recovery.standby.gcp.*, recovery.gpu.vast.*). null drops the live override of that field.
 */
export const liveSettingsSchema = z.strictObject({
  autoFailover: patchable(f.autoFailover),
  detector: z.strictObject({
    heartbeatIntervalMs: patchable(f.detector.heartbeatIntervalMs),
    missedHeartbeats: patchable(f.detector.missedHeartbeats),
    probeIntervalMs: patchable(f.detector.probeIntervalMs),
    passiveProbeIntervalMs: patchable(f.detector.passiveProbeIntervalMs),
    probeTimeoutMs: patchable(f.detector.probeTimeoutMs),
    preemptionConfirmMs: patchable(f.detector.preemptionConfirmMs),
  }, { error: 'an object of detector settings' }).optional(),
  agentSync: z.strictObject({
    delayMs: patchable(f.agentSync.delayMs),
    maxDelayMs: patchable(f.agentSync.maxDelayMs),
    exclude: patchable(f.agentSync.exclude),
  }, { error: 'an object {delayMs, maxDelayMs, exclude}' }).optional(),
  recovery: z.strictObject({
    autoRecovery: patchable(f.recovery.autoRecovery),
    standby: z.strictObject({
      gcp: z.strictObject({
        zone: patchable(f.recovery.standbyGcp.zone),
        machineType: patchable(f.recovery.standbyGcp.machineType),
        diskGb: patchable(f.recovery.standbyGcp.diskGb),
        spot: patchable(f.recovery.standbyGcp.spot),
      }, { error: 'an object {zone, machineType, diskGb, spot}' }).optional(),
    }, { error: 'an object {gcp}' }).optional(),
    gpu: z.strictObject({
      vast: z.strictObject({
        gpuMaxPrice: patchable(f.recovery.gpuVast.gpuMaxPrice),
        gpuMinRamGb: patchable(f.recovery.gpuVast.gpuMinRamGb),
        regions: patchable(f.recovery.gpuVast.regions),
      }, { error: 'an object {gpuMaxPrice, gpuMinRamGb, regions}' }).optional(),
    }, { error: 'an object {vast}' }).optional(),
  }, { error: 'an object {autoRecovery, standby, gpu}' }).optional(),
}, { error: 'an object of live settings' });
export type LiveSettingsPatch = z.infer<typeof liveSettingsSchema>;

/** Every live field's path, as `overridden` and `effect` name them. */
export const LIVE_SETTING_PATHS = [
  'autoFailover',
  'detector.heartbeatIntervalMs', 'detector.missedHeartbeats', 'detector.probeIntervalMs', 'detector.passiveProbeIntervalMs', 'detector.probeTimeoutMs', 'detector.preemptionConfirmMs',
  'agentSync.delayMs', 'agentSync.maxDelayMs', 'agentSync.exclude',
  'recovery.autoRecovery',
  'recovery.standby.gcp.zone', 'recovery.standby.gcp.machineType', 'recovery.standby.gcp.diskGb', 'recovery.standby.gcp.spot',
  'recovery.gpu.vast.gpuMaxPrice', 'recovery.gpu.vast.gpuMinRamGb', 'recovery.gpu.vast.regions',
] as const;
export type LiveSettingPath = (typeof LIVE_SETTING_PATHS)[number];

/**
 * When a change takes effect: now (the detector, autoFailover, autoRecovery), agent (pushed in the next grant,
 * applied by the agent without a restart; `agent.applied` shows it landed), next standby (the next standby
 * machine made), next GPU (the next GPU search).
 */
export type SettingEffect = 'now' | 'agent' | 'next standby' | 'next GPU';

/** The live settings in force: proxy.json's values with the live overrides over them, defaults filled. */
export interface LiveSettings {
  autoFailover: boolean;
  detector: {
    heartbeatIntervalMs: number;
    missedHeartbeats: number;
    probeIntervalMs: number;
    passiveProbeIntervalMs: number;
    probeTimeoutMs: number;
    preemptionConfirmMs: number;
  };
  /** what the proxy pushes to the serving agent; null: nothing pushed, the agent keeps its agent.json value */
  agentSync: { delayMs: number | null; maxDelayMs: number | null; exclude: string[] | null };
  /** null: proxy.json has no recovery section (nothing is provisioned; these fields cannot be set live) */
  recovery: {
    autoRecovery: boolean;
    standby: { gcp: { zone: string; machineType: string; diskGb: number; spot: boolean } };
    gpu: { vast: { gpuMaxPrice: number; gpuMinRamGb: number; regions: string[] } };
  } | null;
}

/** GET /_standby/api/v1/settings, and PATCH's answer. */
export interface LiveSettingsAnswer {
  settings: LiveSettings;
  /** the fields whose value is a live override of proxy.json's (kept in <stateDir>/live-settings.json) */
  overridden: LiveSettingPath[];
  /** when a change of each field takes effect */
  effect: Record<LiveSettingPath, SettingEffect>;
  /**
   * the serving agent's sync settings in force, from its last heartbeat (pushed ones once it applied them);
   * null: no agent connected, or one too old to report them. `exclude`: its own patterns (agent.json's
   * sync.exclude or the pushed ones), without the built-in defaults
   */
  agent: { hostId: string; applied: { delayMs: number; maxDelayMs: number; exclude: string[] } } | null;
}

/** POST /_standby/api/v1/sync/confirm-deletes: the serving agent's answer (what its own POST /confirm-deletes says, protocol/agent-status.ts). */
export interface ProxyConfirmDeletesAnswer {
  /** the agent that answered (the one serving: the GPU's, or the standby's own while it serves) */
  hostId: string;
  /** entries the held deletions remove on the standby; they go in a full reconcile now (0: none were held) */
  deletions: number;
}
