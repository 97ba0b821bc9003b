// The changes not yet on the standby, each with its sequence number, and the
// watermark: the highest number W such that every change numbered <= W is on
// the standby's disk. Work per event is O(1): one Map lookup and at most one
// insert. A path changed again while pending keeps its entry, its place and its
// older sequence number (only the kind changes): that older change is not on the
// standby either, so the watermark must stay below it. The Map thus stays in
// sequence order, and its first entry is the oldest outstanding change.
//
// A change is in exactly one of three places: pending (waiting for a pass),
// in flight (in the pass running now), or held (a deletion the guard stopped
// until someone confirms it).

export type ChangeKind = 'add' | 'change' | 'unlink' | 'addDir' | 'unlinkDir';

export interface Change {
  /** index of the sync root (0 = the workspace) */
  root: number;
  /** path relative to the root, '/'-separated */
  path: string;
  kind: ChangeKind;
  /** the oldest change number of this path not yet on the standby (later changes to it coalesce here) */
  seq: number;
  /** monotonic ms when this path first changed without reaching the standby */
  firstAt: number;
  /**
   * A deleted folder's entries, itself included, as the watcher counted them
   * (never below the truth): the largest seen while pending, since the standby
   * may still hold the first. Infinity: not known (rsync counts them,
   * sync-pass.ts). Set once the path was an unlinkDir.
   */
  entries?: number;
}

export function isDeletion(kind: ChangeKind): boolean {
  return kind === 'unlink' || kind === 'unlinkDir';
}

/** A set of changes taken for one pass. */
export interface Batch {
  changes: Change[];
  /** a full reconcile of every root: also covers changes nobody saw */
  full: boolean;
  minSeq: number;
  maxSeq: number;
  minFirstAt: number;
}

function keyOf(root: number, path: string): string {
  return `${root}\0${path}`;
}

function summarize(changes: Iterable<Change>): { minSeq: number; maxSeq: number; minFirstAt: number } {
  let minSeq = Infinity;
  let maxSeq = 0;
  let minFirstAt = Infinity;
  for (const c of changes) {
    if (c.seq < minSeq) minSeq = c.seq;
    if (c.seq > maxSeq) maxSeq = c.seq;
    if (c.firstAt < minFirstAt) minFirstAt = c.firstAt;
  }
  return { minSeq, maxSeq, minFirstAt };
}

export class ChangeSet {
  #lastSeq = 0;
  #pending = new Map<string, Change>();
  #pendingMinFirstAt = Infinity;
  #inFlight: Batch | undefined;
  #held = new Map<string, Change>();
  #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** Records a change seen by the watcher (`entries`: an unlinkDir's, watcher.ts); returns its sequence number. */
  record(root: number, path: string, kind: ChangeKind, entries?: number): number {
    const seq = ++this.#lastSeq;
    const key = keyOf(root, path);
    const now = this.#now();
    const before = this.#pending.get(key);
    if (before) {
      before.kind = kind;
      if (kind === 'unlinkDir') before.entries = Math.max(before.entries ?? 0, entries ?? Infinity);
      return seq;
    }
    let firstAt = now;
    const held = this.#held.get(key);
    if (held) {
      // a newer change to a held deletion supersedes it (the file is back)
      this.#held.delete(key);
      firstAt = Math.min(firstAt, held.firstAt);
    }
    this.#pending.set(key, { root, path, kind, seq, firstAt, ...(kind === 'unlinkDir' ? { entries: entries ?? Infinity } : {}) });
    if (firstAt < this.#pendingMinFirstAt) this.#pendingMinFirstAt = firstAt;
    return seq;
  }

  get lastSeq(): number {
    return this.#lastSeq;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** pending + in flight + held */
  get outstandingCount(): number {
    return this.#pending.size + (this.#inFlight?.changes.length ?? 0) + this.#held.size;
  }

  /** Every change not on the standby (pending, in flight, held), oldest first within each place. */
  outstanding(): Change[] {
    return [...(this.#inFlight?.changes ?? []), ...this.#held.values(), ...this.#pending.values()];
  }

  get heldCount(): number {
    return this.#held.size;
  }

  get inFlight(): Batch | undefined {
    return this.#inFlight;
  }

  get watermark(): number {
    let lowest = Infinity;
    const firstPending = this.#pending.values().next();
    if (!firstPending.done) lowest = firstPending.value.seq;
    if (this.#inFlight && this.#inFlight.changes.length > 0) lowest = Math.min(lowest, this.#inFlight.minSeq);
    const firstHeld = this.#held.values().next();
    if (!firstHeld.done) lowest = Math.min(lowest, firstHeld.value.seq);
    return lowest === Infinity ? this.#lastSeq : lowest - 1;
  }

  /** Monotonic ms of the oldest change not on the standby, or undefined when there is none. */
  get oldestOutstandingAt(): number | undefined {
    let oldest = this.#pending.size > 0 ? this.#pendingMinFirstAt : Infinity;
    if (this.#inFlight && this.#inFlight.changes.length > 0) oldest = Math.min(oldest, this.#inFlight.minFirstAt);
    for (const c of this.#held.values()) oldest = Math.min(oldest, c.firstAt); // held is small and rare
    return oldest === Infinity ? undefined : oldest;
  }

  /** Takes every pending change into a pass. A full pass with nothing pending still covers every seq so far. */
  take(full: boolean): Batch {
    if (this.#inFlight) throw new Error('a pass is already in flight');
    const changes = [...this.#pending.values()];
    const s = summarize(changes);
    this.#pending = new Map();
    this.#pendingMinFirstAt = Infinity;
    this.#inFlight = { changes, full, minSeq: s.minSeq, maxSeq: s.maxSeq, minFirstAt: s.minFirstAt };
    return this.#inFlight;
  }

  /**
   * The pass is on the standby's disk: its changes are acknowledged, except `hold`
   * (deletions the guard stopped) and `requeue` (paths rsync could not send, e.g.
   * vanished mid-pass), which go back to pending.
   */
  complete(batch: Batch, hold: Change[] = [], requeue: Change[] = []): void {
    if (this.#inFlight !== batch) throw new Error('completing a batch that is not in flight');
    this.#inFlight = undefined;
    if (requeue.length > 0) this.#mergeBack(requeue);
    for (const c of hold) {
      const key = keyOf(c.root, c.path);
      const newer = this.#pending.get(key);
      if (!newer) this.#held.set(key, c);
      else if (c.firstAt < newer.firstAt) {
        // a newer pending change supersedes the held one, but the path has been off the standby since the older
        newer.firstAt = c.firstAt;
        if (c.firstAt < this.#pendingMinFirstAt) this.#pendingMinFirstAt = c.firstAt;
      }
    }
  }

  /** The pass failed: its changes go back to pending, keeping any newer change to the same path. */
  fail(batch: Batch): void {
    if (this.#inFlight !== batch) throw new Error('failing a batch that is not in flight');
    this.#inFlight = undefined;
    this.#mergeBack(batch.changes);
  }

  /**
   * Older changes rejoin pending ahead of the newer ones (sequence order). Where a
   * newer change to the same path is pending, the path keeps the newer kind but
   * the older sequence number: the older change is not on the standby either, so
   * the watermark must stay below it until the path is sent.
   */
  #mergeBack(changes: readonly Change[]): void {
    const merged = new Map<string, Change>();
    for (const c of changes) {
      const key = keyOf(c.root, c.path);
      const newer = this.#pending.get(key);
      if (!newer) merged.set(key, c);
      else {
        // a deleted folder the failed pass may not have deleted: the standby can still hold the older count
        const entries = c.entries === undefined && newer.entries === undefined ? {} : { entries: Math.max(c.entries ?? 0, newer.entries ?? 0) };
        merged.set(key, { ...newer, seq: c.seq, firstAt: Math.min(newer.firstAt, c.firstAt), ...entries });
      }
    }
    for (const [key, c] of this.#pending) if (!merged.has(key)) merged.set(key, c);
    this.#pending = merged;
    this.#pendingMinFirstAt = summarize(merged.values()).minFirstAt;
  }


  /** Someone confirmed the held deletions: they become pending again. Returns how many. */
  release(): number {
    const n = this.#held.size;
    const merged = new Map<string, Change>(this.#held);
    for (const [key, c] of this.#pending) merged.set(key, c);
    this.#held = new Map();
    this.#pending = merged;
    this.#pendingMinFirstAt = summarize(merged.values()).minFirstAt;
    return n;
  }
}
