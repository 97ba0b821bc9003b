// When the next pass is due: once the tree has been quiet for delayMs. A busy
// stream that never goes quiet gets a pass 2 x delayMs after the batch's first
// change, and never later than maxDelayMs minus the time a pass takes
// (passEstimateMs, which it learns from passTook), so maxDelayMs bounds the
// lag of a change, pass included. A sync-now (hurry) makes the batch due at
// once. The engine asks one question, passDue(), and is called back (onDue)
// when the answer turns yes.
// One timer, re-armed only when it fires, so an event costs O(1) and no syscalls.

export class Batcher {
  #delayMs: number;
  #maxDelayMs: number;
  #onDue: () => void;
  #now: () => number;
  #firstAt: number | undefined;
  #lastAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #hurried = false;
  /** what an incremental pass takes lately (passTook keeps it current); at most half of maxDelayMs counts */
  passEstimateMs = 0;

  constructor(delayMs: number, maxDelayMs: number, onDue: () => void, now: () => number = () => performance.now()) {
    this.#delayMs = delayMs;
    this.#maxDelayMs = maxDelayMs;
    this.#onDue = onDue;
    this.#now = now;
  }

  /** New delays (the proxy pushed them, or dropped what it pushed): the open batch is due by them from now on. */
  setDelays(delayMs: number, maxDelayMs: number): void {
    this.#delayMs = delayMs;
    this.#maxDelayMs = maxDelayMs;
    if (this.#firstAt !== undefined) this.poke();
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
    this.#hurried = false;
    this.clear();
  }

  /** A sync-now: the next pass the engine asks about is due at once, batch delay or not. */
  hurry(): void {
    this.#hurried = true;
  }

  /**
   * May a pass take the waiting changes now? Yes when hurried, when the batch
   * is due, or when the waiting changes belong to no batch (put back by a
   * failed pass, or released by a confirmation). When not yet, the timer is
   * armed for the rest, and onDue fires then.
   */
  passDue(): boolean {
    if (this.#hurried) return true;
    const due = this.dueAt;
    if (due === undefined || due <= this.#now()) return true;
    this.poke();
    return false;
  }

  /** An incremental pass took `ms`: the estimate the cap leaves room for, smoothed (full reconciles are not what a batch waits for). */
  passTook(ms: number): void {
    const prev = this.passEstimateMs;
    this.passEstimateMs = prev === 0 ? ms : 0.7 * prev + 0.3 * ms;
  }

  /** A pass ended: changes still waiting (put back by it: vanished files) start a batch of their own if none is open; then re-check. */
  passEnded(waiting: boolean): void {
    if (waiting && this.#firstAt === undefined) this.touch();
    this.poke();
  }

  /** Monotonic ms at which the current batch is due, if there is one. */
  get dueAt(): number | undefined {
    if (this.#firstAt === undefined) return undefined;
    const cap = this.#maxDelayMs - Math.min(this.passEstimateMs, this.#maxDelayMs / 2);
    return Math.min(this.#lastAt + this.#delayMs, this.#firstAt + 2 * this.#delayMs, this.#firstAt + cap);
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
