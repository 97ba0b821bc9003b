// When the next pass is due: once the tree has been quiet for delayMs, and at
// most maxDelayMs after the first change of the batch, however busy the tree.
// One timer, re-armed only when it fires, so an event costs O(1) and no syscalls.

export class Batcher {
  #delayMs: number;
  #maxDelayMs: number;
  #onDue: () => void;
  #now: () => number;
  #firstAt: number | undefined;
  #lastAt = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(delayMs: number, maxDelayMs: number, onDue: () => void, now: () => number = () => performance.now()) {
    this.#delayMs = delayMs;
    this.#maxDelayMs = maxDelayMs;
    this.#onDue = onDue;
    this.#now = now;
  }

  /** A change arrived. */
  touch(): void {
    const now = this.#now();
    this.#lastAt = now;
    this.#firstAt ??= now;
    if (!this.#timer) this.#arm(this.#delayMs);
  }

  /** A pass took everything: the next change starts a new batch. */
  taken(): void {
    this.#firstAt = undefined;
    this.clear();
  }

  /** Monotonic ms at which the current batch is due, if there is one. */
  get dueAt(): number | undefined {
    if (this.#firstAt === undefined) return undefined;
    return Math.min(this.#lastAt + this.#delayMs, this.#firstAt + this.#maxDelayMs);
  }

  /** Re-checks the batch now (after a pass or a backoff ended), firing or re-arming as needed. */
  poke(): void {
    this.clear();
    const due = this.dueAt;
    if (due === undefined) return;
    const wait = due - this.#now();
    if (wait <= 0) this.#onDue();
    else this.#arm(wait);
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.poke();
    }, Math.max(0, Math.ceil(ms)));
  }

  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
