// How much CPU other work on the machine took while a measurement ran: on a
// shared machine a test suite or a compiler beside a benchmark takes cores from
// it, and a case uses this to tell a disturbed run from a clean one.
//
// Counted from /proc, process by process: every process that is not this one
// or one of its descendants (at the start or at the end), its own CPU time and
// that of the children it reaped, summed over the processes seen at the end
// (less what they had at the start). Not from the machine's total less ours:
// a process of ours whose parent died (the GPU's ssh master when the GPU is
// killed) is reaped by init, and its whole life's CPU would leave our side in
// one step. For the same reason init's (pid 1) reaped-children time is left out,
// and so are kernel threads (kthreadd's, pid 2): their work here is mostly the
// run's own (loopback softirq, the proxy's fsyncs).
import { readdirSync, readFileSync } from 'node:fs';
import { descendants } from '../core/process-tree.ts';
import { TICKS_PER_S } from './proc-usage.ts';

/** pid -> [own ticks, reaped children's ticks] */
function allTicks(): Map<number, [number, number]> {
  const out = new Map<number, [number, number]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // after "pid (comm) ": utime=11 stime=12 cutime=13 cstime=14
      out.set(pid, [Number(f[11]) + Number(f[12]), Number(f[13]) + Number(f[14])]);
    } catch {
      // gone while we looked
    }
  }
  return out;
}

export interface ForeignCpu {
  /** CPU other processes used since foreignCpu() was called, as a fraction of one core */
  stop(): number;
}

export function foreignCpu(): ForeignCpu {
  const t0 = performance.now();
  const ours0 = descendants(process.pid);
  const before = allTicks();
  return {
    stop() {
      const after = allTicks();
      const s = (performance.now() - t0) / 1000;
      const ours = new Set([...ours0, ...descendants(process.pid), ...descendants(2)]);
      let ticks = 0;
      for (const [pid, [own, reaped]] of after) {
        if (ours.has(pid)) continue;
        const [own0, reaped0] = before.get(pid) ?? [0, 0];
        ticks += own - own0 + (pid === 1 ? 0 : reaped - reaped0);
      }
      return s > 0 ? Math.max(0, ticks) / TICKS_PER_S / s : 0;
    },
  };
}
