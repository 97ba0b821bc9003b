// CPU time and memory of a process and what it runs, read from /proc: the
// process's own VmRSS/VmHWM, and CPU ticks of the process, its live descendants
// and (through cutime/cstime) the descendants that already exited. An ssh
// ControlMaster that detached (ControlPersist forks into the background and is
// re-parented away) is no longer a descendant; `extraPids` brings such
// processes in, found by a marker in their command line.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { descendants } from '../core/process-tree.ts';

export const TICKS_PER_S = 100; // CLK_TCK on Linux

export interface Usage {
  /** utime+stime+cutime+cstime summed over the process, its descendants and the extras, in ticks */
  ticks: number;
  /** VmRSS of the root process, KiB */
  rssKiB: number;
  /** VmHWM (peak RSS) of the root process, KiB */
  hwmKiB: number;
  /** VmRSS summed over every process counted, KiB */
  treeRssKiB: number;
  pids: number[];
}

function statTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // after "pid (comm) ": state=0 ppid=1 ... utime=11 stime=12 cutime=13 cstime=14
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return undefined;
  }
}

function statusKiB(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function usage(root: number, extraPids: number[] = []): Usage {
  const pids = new Set(descendants(root));
  for (const extra of extraPids) for (const p of descendants(extra)) pids.add(p);
  let ticks = 0;
  let treeRssKiB = 0;
  const seen: number[] = [];
  for (const pid of pids) {
    const t = statTicks(pid);
    if (t === undefined) continue;
    ticks += t;
    treeRssKiB += statusKiB(pid, 'VmRSS') ?? 0;
    seen.push(pid);
  }
  return { ticks, rssKiB: statusKiB(root, 'VmRSS') ?? 0, hwmKiB: statusKiB(root, 'VmHWM') ?? 0, treeRssKiB, pids: seen };
}

/** Samples usage every `everyMs` until stopped; keeps the peaks. */
export interface Sampler {
  stop(): { first: Usage; last: Usage; peakRssKiB: number; peakTreeRssKiB: number; samples: number; ms: number };
}

export function sample(root: number, extra: () => number[], everyMs = 500): Sampler {
  const started = performance.now();
  const first = usage(root, extra());
  let last = first;
  let peakRssKiB = first.rssKiB;
  let peakTreeRssKiB = first.treeRssKiB;
  let samples = 1;
  const tick = (): void => {
    last = usage(root, extra());
    peakRssKiB = Math.max(peakRssKiB, last.rssKiB);
    peakTreeRssKiB = Math.max(peakTreeRssKiB, last.treeRssKiB);
    samples++;
  };
  const timer = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return { first, last, peakRssKiB, peakTreeRssKiB, samples, ms: performance.now() - started };
    },
  };
}

/** How many inotify watches the process holds (from /proc/<pid>/fdinfo of its inotify descriptors). */
export function inotifyWatches(pid: number): number {
  let n = 0;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return 0;
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:inotify') continue;
      n += readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify wd:')).length;
    } catch {
      // closed while we looked
    }
  }
  return n;
}
