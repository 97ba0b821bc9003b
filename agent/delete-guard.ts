// The mass-deletion guard: a pass that would delete most of the standby's copy
// (rm -rf at the root, a wiped or unmounted workspace) is held, not applied,
// until someone confirms it (`standby sync --confirm-deletes`); ordinary
// deletions go through. It weighs deletions against the tree the agent
// believes the workspace holds, which it keeps here.
import type { Logger } from '../core/log.ts';
import type { AgentConfig } from '../config/agent.ts';
import { isDeletion, type ChangeKind } from './change-set.ts';

export type DeleteGuardLimits = AgentConfig['sync']['deleteGuard'];

/** What the guard holds, as the status answer shows it. */
export interface HeldDeletions {
  /** entries the held deletions would remove on the standby, summed over every hold since the last confirmation */
  deletions: number;
  /** the latest hold's reason */
  reason: string;
  /** monotonic ms of the first hold */
  at: number;
}

export class DeleteGuard {
  /** files and folders the agent believes the workspace holds: what deletions are weighed against */
  treeEntries = 0;
  #limits: DeleteGuardLimits;
  #log: Logger;
  #onHold: (held: { deletions: number; reason: string }) => void;
  #held: HeldDeletions | undefined;
  /** the latest hold came from a full reconcile finding the standby holds what this host no longer has */
  #heldByFullReconcile = false;
  #confirmed = false;

  constructor(limits: DeleteGuardLimits, log: Logger, onHold: (held: { deletions: number; reason: string }) => void) {
    this.#limits = limits;
    this.#log = log;
    this.#onHold = onHold;
  }

  /** The watcher saw a change: the tree grows, shrinks or stays. */
  changeSeen(kind: ChangeKind): void {
    this.treeEntries += isDeletion(kind) ? -1 : kind === 'change' ? 0 : 1;
  }

  /** Whether deleting `deletions` of about `entriesBefore` entries must wait for a confirmation. */
  trips(deletions: number, entriesBefore: number): boolean {
    return !this.#confirmed && deletions >= this.#limits.minFiles && deletions > this.#limits.fraction * entriesBefore;
  }

  /** Someone confirmed: the next full reconcile deletes without asking (once). */
  get confirmed(): boolean {
    return this.#confirmed;
  }

  get held(): HeldDeletions | undefined {
    return this.#held;
  }

  /** Holds `deletions` (adding to what is held already), says so in the log and to the owner. */
  hold(deletions: number, reason: string, { byFullReconcile = false } = {}): void {
    const total = (this.#held?.deletions ?? 0) + deletions;
    this.#held = { deletions: total, reason, at: this.#held?.at ?? performance.now() };
    this.#heldByFullReconcile = byFullReconcile;
    this.#log.warn({ deletions, reason }, 'held a pass that would delete most of the standby copy; nothing was deleted. If it is intended, run: standby sync --confirm-deletes');
    this.#onHold({ deletions, reason });
  }

  /** Releases what is held: the owner applies it in a full reconcile that skips the guard once. Returns how many deletions were held. */
  confirm(): number {
    const deletions = this.#held?.deletions ?? 0;
    this.#confirmed = true;
    this.#held = undefined;
    return deletions;
  }

  /**
   * A full reconcile landed, counting `entries` in the workspace. The
   * confirmation is spent; when it held nothing, a hold that came from an
   * earlier full reconcile is over (the standby no longer has the extra
   * entries).
   */
  fullReconcileDone(entries: number, heldAny: boolean): void {
    this.treeEntries = entries;
    this.#confirmed = false;
    if (!heldAny && this.#held && this.#heldByFullReconcile) this.#held = undefined;
  }
}
