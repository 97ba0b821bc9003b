// Whether the sync loop is doing its work, for systemd's watchdog: idle, or a
// pass in flight whose rsync keeps reading or writing. rsync's own --timeout
// ends a pass stalled on the network, so a pass with no I/O for twice that
// long means rsync itself is stuck (stopped, hung in the kernel) or the loop
// lost track of it: the watchdog then stays silent and systemd restarts us.
import { readFileSync } from 'node:fs';

/** rchar + wchar of a process (bytes it moved through read/write calls), or undefined when it is gone. */
export function ioCount(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/io`, 'utf8');
    const r = /rchar:\s+(\d+)/.exec(text);
    const w = /wchar:\s+(\d+)/.exec(text);
    return Number(r?.[1] ?? 0) + Number(w?.[1] ?? 0);
  } catch {
    return undefined;
  }
}

export class PassLiveness {
  #stallMs: number;
  #pid: number | undefined;
  #lastCount: number | undefined;
  #lastMoveAt = 0;

  constructor(stallMs: number) {
    this.#stallMs = stallMs;
  }

  /** a pass's rsync started (or none runs: undefined) */
  track(pid: number | undefined): void {
    this.#pid = pid;
    this.#lastCount = undefined;
    this.#lastMoveAt = performance.now();
  }

  alive(now = performance.now()): boolean {
    if (this.#pid === undefined) return true;
    const count = ioCount(this.#pid);
    if (count === undefined) return true; // exited: the loop is about to see it
    if (count !== this.#lastCount) {
      this.#lastCount = count;
      this.#lastMoveAt = now;
      return true;
    }
    return now - this.#lastMoveAt < this.#stallMs;
  }
}
