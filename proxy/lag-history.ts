// The sync lag over time, for the dashboard's chart: from the heartbeats of
// the agent that writes the standby's copy, one sample per `sampleMs` (the
// highest lag and pending count heard in it, so a spike between two samples
// is not lost), in a ring of `capacity` samples (the oldest go first), kept
// in <stateDir>/lag-history.json so a proxy restart does not empty the chart.
// Written at most every `persistEveryMs` (a heartbeat comes twice a second:
// the disk is not written that often) and at close.
import { join } from 'node:path';
import { readStateFile, writeStateFile } from '../core/durable-file.ts';
import type { Logger } from '../core/log.ts';
import type { SyncState } from '../protocol/messages.ts';

/** One sample: when it began (wall clock, ms), the highest lag heard in it (the oldest change not yet on the standby, ms), the most changes pending. */
export type LagSample = [at: number, lagMs: number, pending: number];

export interface LagHistoryOptions {
  stateDir: string;
  /** one sample per this many ms (default 2000) */
  sampleMs?: number;
  /** samples kept (default 5400: three hours at 2 s) */
  capacity?: number;
  /** the file is written at most this often, ms (default 30000) */
  persistEveryMs?: number;
  log: Logger;
  /** wall clock, ms (tests) */
  now?: () => number;
}

const FILE = 'lag-history.json';
const WHAT = "the dashboard's lag history";

export class LagHistory {
  readonly sampleMs: number;
  readonly capacity: number;
  #persistEveryMs: number;
  #file: string;
  #log: Logger;
  #now: () => number;
  /** a ring: #start is the oldest sample's index once full */
  #ring: LagSample[] = [];
  #start = 0;
  #dirty = false;
  #writtenAt = -Infinity;
  /** file writes since start (tests: the throttle holds) */
  writes = 0;

  constructor(o: LagHistoryOptions) {
    this.sampleMs = o.sampleMs ?? 2_000;
    this.capacity = o.capacity ?? 5_400;
    this.#persistEveryMs = o.persistEveryMs ?? 30_000;
    this.#file = join(o.stateDir, FILE);
    this.#log = o.log;
    this.#now = o.now ?? (() => Date.now());
    this.#load();
  }

  #load(): void {
    const text = readStateFile(this.#file, { what: WHAT });
    if (text === undefined) return;
    let samples: unknown;
    try {
      samples = (JSON.parse(text) as { samples?: unknown }).samples;
    } catch (err) {
      // a chart's history is not worth refusing to start for: said, then begun afresh
      this.#log.warn({ file: this.#file, err: (err as Error).message }, 'the lag history is not JSON: the chart starts empty');
      return;
    }
    if (!Array.isArray(samples)) return void this.#log.warn({ file: this.#file }, 'the lag history has no samples list: the chart starts empty');
    const good = samples.filter((s): s is LagSample => Array.isArray(s) && s.length === 3 && s.every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0));
    this.#ring = good.slice(-this.capacity);
  }

  /** A heartbeat's sync state from the agent that writes the copy. Returns the sample it went into. */
  record(sync: Pick<SyncState, 'oldestPendingAgeMs' | 'pending'>, at = this.#now()): LagSample {
    const lag = Math.max(0, Math.round(sync.oldestPendingAgeMs ?? 0));
    const last = this.#last();
    let sample: LagSample;
    if (last && at >= last[0] && at - last[0] < this.sampleMs) {
      last[1] = Math.max(last[1], lag);
      last[2] = Math.max(last[2], sync.pending);
      sample = last;
    } else {
      // aligned to the sample grid, so a restart continues on the same steps
      sample = [at - (at % this.sampleMs), lag, sync.pending];
      if (this.#ring.length < this.capacity) this.#ring.push(sample);
      else {
        this.#ring[this.#start] = sample;
        this.#start = (this.#start + 1) % this.capacity;
      }
    }
    this.#dirty = true;
    if (performance.now() - this.#writtenAt >= this.#persistEveryMs) this.flush();
    return [...sample];
  }

  #last(): LagSample | undefined {
    if (this.#ring.length === 0) return undefined;
    return this.#ring[(this.#start + this.#ring.length - 1) % this.#ring.length];
  }

  /** Oldest first, copies. */
  samples(): LagSample[] {
    return [...this.#ring.slice(this.#start), ...this.#ring.slice(0, this.#start)].map((s) => [...s] as LagSample);
  }

  /** Writes the ring if it changed since the last write. */
  flush(): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    this.#writtenAt = performance.now();
    this.writes++;
    try {
      writeStateFile(this.#file, JSON.stringify({ sampleMs: this.sampleMs, samples: this.samples() }) + '\n', { what: WHAT });
    } catch (err) {
      // the chart's loss is not the proxy's: logged, tried again at the next write
      this.#dirty = true;
      this.#log.warn({ err }, 'the lag history could not be written');
    }
  }

  close(): void {
    this.flush();
  }
}
