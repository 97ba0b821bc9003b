// The proxy's HTTP contract with the CLI, the installer and the agent: the
// answer shapes of the admin API and of enrollment, the error answer, the
// token prefixes that tell one kind of credential from another, and the
// install downloads' paths. The proxy serves these; the others read them;
// none imports another's code.
import type { ErrorCode } from '../core/errors.ts';

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
  /** where the agent mirrors to, as the proxy reaches the standby (the installer's --standby-* flags win) */
  standby: { host: string; port: number; user: string; path: string | null };
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
