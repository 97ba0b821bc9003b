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
  /** why code-server's folders are not synced to this destination (its receiver does not take them; the workspace is), or null; absent from older agents */
  editorOff?: string | null;
  /** files and folders the agent believes the workspace holds */
  treeEntries: number;
  /** the rsync versions of the last full reconcile's check, here and on the standby (null before it) */
  rsync: { here: string | null; standby: string | null };
  /** the epoch the proxy granted this host (null: not primary, or no proxy); what `standby verify` tells the receiver */
  epoch: number | null;
  /**
   * where passes go now: the configured standby (target null) or the receiver the proxy granted (target:
   * its id, a restore to a new GPU); null when there is nowhere to push (no standby section, no target).
   * A change of destination starts the numbers above afresh: they describe this destination only
   */
  destination: { target: string | null; host: string; port: number; user: string; path: string } | null;
  /** the full pass under way, how far it got (rsync's own progress), or null when none runs */
  progress: SyncProgress | null;
  /**
   * the sync settings in force: agent.json's, with what the proxy pushed over them (`pushed`: some did);
   * `exclude` is the user's patterns, without the built-in defaults. Absent from older agents' answers
   */
  settings?: { delayMs: number; maxDelayMs: number; exclude: string[]; pushed: boolean };
}

/** How far a full pass got (the heartbeat's sync.progress). */
export interface SyncProgress {
  /** files sent and checked so far */
  files: number;
  /** bytes sent so far */
  bytes: number;
  /** files in the tree, once rsync has counted them all (null before) */
  totalFiles: number | null;
  /** bytes per second over the pass so far */
  rateBps: number;
  /** how long the pass has run, ms */
  elapsedMs: number;
}

/** A full pass's progress in a few words: "1200 of 5000 files, 12.3 MB at 4.1 MB/s, 3.0 s, about 9 s left". */
export function describeProgress(p: SyncProgress): string {
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  const files = p.totalFiles === null ? `${p.files} files (still counting)` : `${p.files} of ${p.totalFiles} files`;
  // the time left by files: the bytes to go are not known until rsync has compared them
  const left = p.totalFiles !== null && p.files > 0 && p.totalFiles >= p.files ? `, about ${Math.ceil(((p.totalFiles - p.files) * p.elapsedMs) / p.files / 1000)} s left` : '';
  return `${files}, ${mb(p.bytes)} at ${mb(p.rateBps)}/s, ${(p.elapsedMs / 1000).toFixed(1)} s${left}`;
}

/** Where passes go, in a few words. */
export function describeDestination(d: SyncStatus['destination']): string {
  if (!d) return 'nowhere (no standby configured, no target granted)';
  return `${d.target === null ? 'the standby' : `target ${d.target}`} ${d.user}@${d.host}:${d.port}:${d.path}`;
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
  const editor = s.editorOff ? ", code-server's folders not synced (the destination does not take them)" : '';
  // older agents' answers lack these two
  const where = s.destination === undefined ? '' : s.destination === null ? ', nowhere to push (no standby configured, no target granted)' : s.destination.target !== null ? `, to target ${s.destination.target}` : '';
  const progress = s.progress ? `, full pass: ${describeProgress(s.progress)}` : '';
  return `${synced}, ${outstanding}${oldest}${failing}${held}${editor}${where}${progress}`;
}
