// The agent's local status endpoint (agent/status-server.ts, loopback only):
// the shapes of its answers, which `standby status --agent` and
// `standby sync` read, and the one-line reading of the sync state that the
// agent's periodic log and the CLI both print. Scripts read GET /status too:
// a field keeps its name and meaning; a better name is added beside it.

export type SyncPhase = 'starting' | 'idle' | 'syncing' | 'retrying' | 'stopped';

/**
 * GET /status: what the agent knows about its sync. Ages are monotonic-clock
 * ms, never timestamps. A "change" is one watcher event, numbered; a "path"
 * is one file or folder, whose changes not yet on the standby count once.
 */
export interface SyncStatus {
  hostId: string;
  /** the first full reconcile has landed */
  ready: boolean;
  phase: SyncPhase;
  /** every change numbered <= watermark is on the standby's disk */
  watermark: number;
  /** the newest change number handed out */
  lastSeq: number;
  /** paths with changes not yet on the standby: waiting for a pass, in the pass in flight, or deletions the guard holds */
  outstandingPaths: number;
  /** the same count as outstandingPaths, under its first name (kept for scripts and the heartbeat's `pending`) */
  pending: number;
  /** age of the oldest change not yet on the standby (waiting, in flight or held), or null when there is none */
  oldestOutstandingAgeMs: number | null;
  /** the same age as oldestOutstandingAgeMs, under its first name (kept for scripts and the heartbeat) */
  oldestPendingAgeMs: number | null;
  lastPassAgeMs: number | null;
  lastFullPassAgeMs: number | null;
  passes: number;
  fullPasses: number;
  failedPasses: number;
  /** consecutive failures right now */
  failingFor: number;
  lastError: { message: string; ageMs: number } | null;
  bytesSent: number;
  filesSent: number;
  passDurationMs: { last: number | null; p50: number | null; p95: number | null; max: number | null };
  /** deletions the guard is holding until confirmed: `deletions` counts the entries they would remove on the standby */
  held: { deletions: number; reason: string; ageMs: number } | null;
  /** files and folders the agent believes the workspace holds */
  treeEntries: number;
  /** the rsync versions of the last full reconcile's check, here and on the standby (null before it) */
  rsync: { here: string | null; standby: string | null };
  /** the epoch the proxy granted this host (null: not primary, or no proxy); what `standby verify` tells the receiver */
  epoch: number | null;
}

/** POST /confirm-deletes: how many deletions were held (they go in a full reconcile now). */
export interface ConfirmDeletesAnswer {
  deletions: number;
}

/** A one-line summary of the sync state, for the agent's log and systemd's STATUS=, and `standby status --agent`. */
export function summarizeSync(s: SyncStatus): string {
  const synced = s.lastPassAgeMs === null ? 'never synced' : `synced ${(s.lastPassAgeMs / 1000).toFixed(1)} s ago`;
  const outstanding = `${s.outstandingPaths} pending`;
  const oldest = s.oldestOutstandingAgeMs === null ? '' : `, oldest ${(s.oldestOutstandingAgeMs / 1000).toFixed(1)} s`;
  const failing = s.failingFor > 0 ? `, failing (${s.lastError?.message ?? 'unknown'})` : '';
  const held = s.held ? `, ${s.held.deletions} deletions held` : '';
  return `${synced}, ${outstanding}${oldest}${failing}${held}`;
}
