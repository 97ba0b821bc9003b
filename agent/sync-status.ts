// The sync status snapshot (protocol/agent-status.ts's SyncStatus): what the
// passes did (PassStats keeps the counters, the recent durations and the last
// error) and the state of the changes, told in ages measured now.
import type { SyncPhase, SyncStatus } from '../protocol/agent-status.ts';
import type { ChangeSet } from './change-set.ts';
import type { HeldDeletions } from './delete-guard.ts';

/** how many recent pass durations the percentiles are taken over */
const RECENT_PASSES = 200;

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** What the passes did: counters since start, recent durations, when the last ones were. Monotonic ms. */
export class PassStats {
  passes = 0;
  fullPasses = 0;
  failedPasses = 0;
  bytesSent = 0;
  filesSent = 0;
  lastPassAt: number | undefined;
  lastFullAt: number | undefined;
  lastError: { message: string; at: number } | undefined;
  #durations: number[] = [];

  passOk(full: boolean, durationMs: number, filesSent: number, bytesSent: number, at: number): void {
    this.lastPassAt = at;
    this.passes++;
    this.filesSent += filesSent;
    this.bytesSent += bytesSent;
    this.#durations.push(durationMs);
    if (this.#durations.length > RECENT_PASSES) this.#durations.shift();
    if (full) {
      this.fullPasses++;
      this.lastFullAt = at;
    }
  }

  passFailed(message: string, at: number): void {
    this.failedPasses++;
    this.lastError = { message, at };
  }

  durations(): SyncStatus['passDurationMs'] {
    const d = this.#durations;
    const sorted = [...d].sort((a, b) => a - b);
    return {
      last: d.length > 0 ? Math.round(d[d.length - 1]!) : null,
      p50: percentile(sorted, 50),
      p95: percentile(sorted, 95),
      max: sorted.length > 0 ? sorted[sorted.length - 1]! : null,
    };
  }
}

/** The engine's parts the snapshot reads. */
export interface StatusParts {
  hostId: string;
  destination: SyncStatus['destination'];
  progress: SyncStatus['progress'];
  /** monotonic ms since when nothing is known to be at the current destination (taken up after another, its first full pass not landed), or undefined */
  unsentSince: number | undefined;
  ready: boolean;
  phase: SyncPhase;
  changes: ChangeSet;
  stats: PassStats;
  /** consecutive failed passes right now */
  failingFor: number;
  held: HeldDeletions | undefined;
  editorOff: string | null;
  treeEntries: number;
  rsync: SyncStatus['rsync'];
  epoch: number | undefined;
}

export function syncStatus(p: StatusParts, now = performance.now()): SyncStatus {
  const age = (at: number | undefined): number | null => (at === undefined ? null : Math.round(now - at));
  const { stats } = p;
  // a destination taken up after another has nothing until its first full pass lands: every path is outstanding there, since it was taken up
  const unsent = p.unsentSince !== undefined;
  // treeEntries is the delete guard's running estimate (a deletion event can take it below 0 before a reconcile counts the tree)
  const outstandingPaths = p.changes.outstandingCount + (unsent ? Math.max(0, p.treeEntries) : 0);
  const changesAge = age(p.changes.oldestOutstandingAt);
  const oldestOutstandingAgeMs = unsent ? Math.max(changesAge ?? 0, age(p.unsentSince)!) : changesAge;
  return {
    hostId: p.hostId,
    ready: p.ready,
    phase: p.phase,
    watermark: p.changes.watermark,
    lastSeq: p.changes.lastSeq,
    outstandingPaths,
    pending: outstandingPaths,
    oldestOutstandingAgeMs,
    oldestPendingAgeMs: oldestOutstandingAgeMs,
    lastPassAgeMs: age(stats.lastPassAt),
    lastFullPassAgeMs: age(stats.lastFullAt),
    passes: stats.passes,
    fullPasses: stats.fullPasses,
    failedPasses: stats.failedPasses,
    bytesSent: stats.bytesSent,
    filesSent: stats.filesSent,
    failingFor: p.failingFor,
    lastError: stats.lastError ? { message: stats.lastError.message, ageMs: Math.round(now - stats.lastError.at) } : null,
    passDurationMs: stats.durations(),
    held: p.held ? { deletions: p.held.deletions, reason: p.held.reason, ageMs: Math.round(now - p.held.at) } : null,
    editorOff: p.editorOff,
    treeEntries: p.treeEntries,
    rsync: p.rsync,
    epoch: p.epoch ?? null,
    destination: p.destination,
    progress: p.progress,
  };
}
