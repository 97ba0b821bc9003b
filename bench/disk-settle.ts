// Waits for the disk under a folder to go quiet before a timed run: its dirty
// pages flushed (sync -f), then no write in flight and no sector written for
// QUIET_MS, read from /proc/diskstats. A run that starts while the last one's
// writeback (or ext4's discards) still occupies the disk pays for it: the same
// raw rsync of 100,000 files measured 16 s to 23 s back to back without this.
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';

const QUIET_MS = 1_000;
const POLL_MS = 100;

interface DiskCounters {
  sectorsWritten: number;
  inFlight: number;
}

/** The counters of the block device holding `dir` (by its major:minor), or undefined when /proc/diskstats does not list it. */
function countersOf(dir: string): DiskCounters | undefined {
  const dev = statSync(dir).dev;
  // Linux's dev_t: major in bits 8-19 (and 32+), minor in bits 0-7 and 20-31
  const major = ((dev >> 8) & 0xfff) | (Math.floor(dev / 2 ** 32) & ~0xfff);
  const minor = (dev & 0xff) | ((dev >> 12) & ~0xff);
  for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (Number(f[0]) === major && Number(f[1]) === minor) return { sectorsWritten: Number(f[9]), inFlight: Number(f[11]) };
  }
  return undefined;
}

/** Flushes `dir`'s filesystem and waits (at most `withinMs`) until its disk has been idle for QUIET_MS; resolves with the ms waited. */
export async function settleDisk(dir: string, withinMs = 60_000): Promise<number> {
  const started = performance.now();
  execFileSync('sync', ['-f', dir]);
  let last = countersOf(dir);
  if (last === undefined) return performance.now() - started;
  let quietSince = performance.now();
  while (performance.now() - started < withinMs) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    const now = countersOf(dir);
    if (now === undefined) break;
    if (now.inFlight > 0 || now.sectorsWritten !== last.sectorsWritten) quietSince = performance.now();
    last = now;
    if (performance.now() - quietSince >= QUIET_MS) break;
  }
  return performance.now() - started;
}
