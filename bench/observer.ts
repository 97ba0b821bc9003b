// Watches the standby's folder (on this machine) for the files a workload
// wrote and records when each one shows its exact content there. It polls:
// every `everyMs` it lists only the folders that still wait for a file, and
// reads a file only when its name is present, so 5,000 pending files cost one
// readdir per folder per tick, not 5,000 stats.
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

/** A file a workload wrote, and how to recognise its content. */
export interface Written {
  /** path relative to the workspace root */
  rel: string;
  size: number;
  /** the file starts with this (a token unique to this write) */
  head: string;
  /** the file ends with this (big files: a second token) */
  tail?: string;
  /** performance.now() when the write was complete (file closed) */
  writtenAt: number;
}

export interface Arrivals {
  /** lag of each landed file in ms (arrival seen minus writtenAt) */
  lags: number[];
  expected: number;
  /** files never seen with the right content before the timeout */
  missing: string[];
  /** performance.now() of the last arrival seen */
  lastArrival?: number;
  lastWrittenAt?: number;
}

export interface Observer {
  expect(w: Written): void;
  /** resolves when every expected file has landed, or after `timeoutMs` with what is missing */
  done(timeoutMs: number): Promise<Arrivals>;
  stop(): void;
}

function hasContent(path: string, w: Written): boolean {
  try {
    if (w.tail === undefined) {
      const buf = readFileSync(path);
      return buf.length === w.size && buf.subarray(0, w.head.length).toString() === w.head;
    }
    if (statSync(path).size !== w.size) return false;
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.alloc(w.head.length);
      const tail = Buffer.alloc(w.tail.length);
      readSync(fd, head, 0, head.length, 0);
      readSync(fd, tail, 0, tail.length, w.size - tail.length);
      return head.toString() === w.head && tail.toString() === w.tail;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false; // not there yet, or replaced while we read
  }
}

export function observe(standbyRoot: string, everyMs = 20): Observer {
  const pending = new Map<string, Map<string, Written>>(); // folder -> name -> write
  const lags: number[] = [];
  let expected = 0;
  let lastArrival: number | undefined;
  let lastWrittenAt: number | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;

  const scan = (): void => {
    for (const [folder, files] of pending) {
      let names: string[];
      try {
        names = readdirSync(join(standbyRoot, folder));
      } catch {
        continue; // the folder has not arrived yet
      }
      for (const name of names) {
        const w = files.get(name);
        if (!w || !hasContent(join(standbyRoot, w.rel), w)) continue;
        const now = performance.now();
        lags.push(now - w.writtenAt);
        lastArrival = now;
        files.delete(name);
      }
      if (files.size === 0) pending.delete(folder);
    }
    if (pending.size === 0) wake?.();
  };
  const loop = (): void => {
    if (stopped) return;
    scan();
    timer = setTimeout(loop, everyMs);
  };
  timer = setTimeout(loop, everyMs);

  return {
    expect(w) {
      expected++;
      lastWrittenAt = Math.max(lastWrittenAt ?? 0, w.writtenAt);
      const folder = dirname(w.rel);
      const files = pending.get(folder) ?? new Map<string, Written>();
      files.set(basename(w.rel), w);
      pending.set(folder, files);
    },
    done(timeoutMs) {
      return new Promise<Arrivals>((resolve) => {
        const finish = (): void => {
          clearTimeout(deadline);
          wake = undefined;
          const missing = [...pending.values()].flatMap((files) => [...files.values()].map((w) => w.rel));
          resolve({ lags, expected, missing, lastArrival, lastWrittenAt });
        };
        const deadline = setTimeout(finish, timeoutMs);
        wake = finish;
        if (pending.size === 0) finish();
      });
    },
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}
