// Whether this agent may push to the standby, and under which epoch. Without
// a proxy it always may. With one, only while the proxy grants it primary; and
// once the standby's receiver refused an epoch (fenced by the standby itself,
// whose word may come before the proxy's), no grant of that epoch or an older
// one counts again.

/** What a grant changed, for the owner to act on (start pushing, or cut the pass in flight). */
export type GrantChange = { now: 'primary' } | { now: 'fenced'; wasPushing: boolean };

export class PushGate {
  readonly #gated: boolean;
  /** the epoch the proxy granted primary under, or undefined (not primary, or no proxy) */
  #epoch: number | undefined;
  /** the epoch the standby's receiver refused: nothing more is pushed until a proxy grants a newer one */
  #refusedEpoch: number | undefined;
  /** the epoch of the last fenced grant */
  #fencedEpoch: number | undefined;

  /** `gated`: a proxy is configured, so nothing is pushed until it grants primary */
  constructor(gated: boolean) {
    this.#gated = gated;
  }

  get pushing(): boolean {
    return this.#refusedEpoch === undefined && (!this.#gated || this.#epoch !== undefined);
  }

  /** the epoch granted primary (what every write tells the standby's receiver), or undefined */
  get epoch(): number | undefined {
    return this.#epoch;
  }

  /** the epoch the proxy last named, primary or fenced */
  get toldEpoch(): number | undefined {
    return this.#epoch ?? this.#fencedEpoch;
  }

  /** The proxy's word. Returns what changed, or undefined when nothing did (a repeat, or an epoch the standby refused already). */
  grant(role: 'primary' | 'fenced', epoch: number): GrantChange | undefined {
    if (role === 'primary') {
      if (this.#epoch === epoch) return undefined; // (a refusal sets no epoch: see refuse)
      if (this.#refusedEpoch !== undefined && epoch <= this.#refusedEpoch) return undefined; // the standby refused that one already
      this.#refusedEpoch = undefined;
      this.#epoch = epoch;
      return { now: 'primary' };
    }
    if (this.#epoch === undefined && this.#fencedEpoch === epoch) return undefined;
    const wasPushing = this.#epoch !== undefined || !this.#gated;
    this.#epoch = undefined;
    this.#fencedEpoch = epoch;
    return { now: 'fenced', wasPushing };
  }

  /**
   * The proxy named another destination: a refusal by the old one (fenced
   * there under a newer epoch) says nothing about the new one, whose own
   * receiver checks the epoch again.
   */
  retarget(): void {
    this.#refusedEpoch = undefined;
  }

  /** The standby refused the current epoch (0 without one). Returns that epoch: the owner then takes it as fenced there. */
  refuse(): number {
    const epoch = this.#epoch ?? 0;
    this.#refusedEpoch = epoch;
    return epoch;
  }
}
