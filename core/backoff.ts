// Capped exponential backoff with jitter, for retrying a failed pass.

export class Backoff {
  #minMs: number;
  #maxMs: number;
  #attempt = 0;
  #random: () => number;

  constructor(minMs: number, maxMs: number, random: () => number = Math.random) {
    this.#minMs = minMs;
    this.#maxMs = Math.max(minMs, maxMs);
    this.#random = random;
  }

  /** failures since the last success */
  get attempts(): number {
    return this.#attempt;
  }

  /** The wait before the next attempt: min * 2^n, capped, then jittered by +-20 % so many agents do not retry in step. */
  next(): number {
    const base = Math.min(this.#maxMs, this.#minMs * 2 ** this.#attempt);
    this.#attempt++;
    return Math.round(base * (0.8 + 0.4 * this.#random()));
  }

  reset(): void {
    this.#attempt = 0;
  }
}
