// bench/agent-resources: what the agent costs while it watches a 100,000-file
// workspace: start-up (spawn to watches set and first full reconcile done)
// beside a one-shot rsync of the same tree to an empty standby, memory (VmRSS,
// VmHWM) and CPU (utime+stime of the agent, its children and the ssh master it
// runs, from /proc) while idle for 20 s and during a 5,000-file burst.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { agentUnavailable, startAgent, type Agent, type AgentStatus } from '../../test/fixtures/agent-process.ts';
import { observe } from '../observer.ts';
import { commandLine, pidsWithMarker } from '../../test/fixtures/process-tree.ts';
import { TICKS_PER_S, inotifyWatches, sample, type Sampler } from '../proc-usage.ts';
import { megabytes, percent, percentile, seconds, type CaseResult, type Table } from '../report.ts';
import { rsyncOnce } from '../rsync-run.ts';
import { removeScratch, scratchDir, terminate } from '../scratch.ts';
import { startBenchSshd, sshTarget } from '../ssh-target.ts';
import { makeTree } from '../tree.ts';
import { burst } from '../workloads.ts';

const TREE_FILES = 100_000;
const IDLE_MS = 20_000;
const ONE_SHOT_RUNS = 3;
const RSS_TARGET = 250e6;
const IDLE_CPU_TARGET = 0.01;

function verdict(ok: boolean | undefined): string {
  return ok === undefined ? '-' : ok ? 'met' : 'MISSED';
}

function cpu(s: ReturnType<Sampler['stop']>): number {
  return (s.last.ticks - s.first.ticks) / TICKS_PER_S / (s.ms / 1000);
}

export async function run(): Promise<CaseResult> {
  const tmp = scratchDir('standby-bench-res-');
  const sshd = await startBenchSshd();
  let agent: Agent | undefined;
  const rows: string[][] = [];
  const notes: string[] = [];
  try {
    const target = sshTarget(sshd, sshd.port, tmp);
    const src = join(tmp, 'src');
    const made = makeTree(src, TREE_FILES);
    notes.push(`Tree: ${made.files.toLocaleString('en')} files in ${made.folders.toLocaleString('en')} leaf folders (3 levels, fan-out 10), ${megabytes(made.bytes)}; made in ${seconds(made.ms)}.`);
    process.stderr.write(`  made the ${made.files}-file tree in ${seconds(made.ms)}\n`);

    // The one-shot yardstick, three times (the disk here is noisy): each to an empty standby.
    const onceMs: number[] = [];
    for (let i = 0; i < ONE_SHOT_RUNS; i++) {
      execFileSync('sync');
      const onceDst = join(tmp, `dst-once-${i}`);
      mkdirSync(onceDst);
      const once = await rsyncOnce(src, onceDst, target, { timeoutMs: 600_000 });
      if (once.code !== 0) throw new Error(`one-shot rsync failed (${once.code}): ${once.stderr}`);
      onceMs.push(once.ms);
      rmSync(onceDst, { recursive: true, force: true });
      process.stderr.write(`  one-shot rsync ${i + 1} took ${seconds(once.ms)}\n`);
    }
    const once = { ms: percentile(onceMs, 50)! };
    rows.push([`one-shot rsync -a of the tree to an empty standby (median of ${ONE_SHOT_RUNS}: ${onceMs.map((m) => seconds(m)).join(', ')})`, seconds(once.ms), '', '']);

    const why = agentUnavailable();
    if (why) {
      rows.push(['standby agent', why, '', '']);
      return { tables: [{ title: `Agent resources on a ${TREE_FILES.toLocaleString('en')}-file workspace`, columns: ['measure', 'figure', 'target', 'verdict'], rows }], notes };
    }

    execFileSync('sync');
    const dst = join(tmp, 'dst');
    mkdirSync(dst);
    // The agent's ssh ControlMaster forks into the background and leaves its process tree: find it by the key it uses.
    const extra = (): number[] => pidsWithMarker(target.identityFile).filter((p) => !commandLine(p).startsWith('rsync'));
    agent = await startAgent({ src, dst, target, dir: tmp });
    const startSampler = sample(agent.pid, extra, 200);
    const readyMs = await agent.ready(600_000);
    const startUsage = startSampler.stop();
    const settled: AgentStatus = await agent.settled(120_000);
    process.stderr.write(`  agent ready after ${seconds(readyMs)}\n`);
    rows.push(['agent start-up: spawn to ready (watches set, first full reconcile done)', seconds(readyMs), `<= 2 x one-shot = ${seconds(2 * once.ms)}`, verdict(readyMs <= 2 * once.ms)]);
    rows.push(['agent start-up CPU (agent + rsync/ssh it runs)', `${((startUsage.last.ticks - startUsage.first.ticks) / TICKS_PER_S).toFixed(1)} CPU-s`, '', '']);
    rows.push(['agent RSS peak during start-up (VmHWM)', megabytes(startUsage.last.hwmKiB * 1024), '<= 250 MB', verdict(startUsage.last.hwmKiB * 1024 <= RSS_TARGET)]);
    rows.push(['inotify watches held by the agent', inotifyWatches(agent.pid).toLocaleString('en'), '', '']);

    // Idle: the tree is synced and nothing changes.
    const idleSampler = sample(agent.pid, extra, 500);
    await new Promise((r) => setTimeout(r, IDLE_MS)); // the measurement window, not imitated work
    const idle = idleSampler.stop();
    rows.push([`agent CPU idle for ${IDLE_MS / 1000} s (agent + children + ssh master)`, percent(cpu(idle)), '< 1 % of a core', verdict(cpu(idle) < IDLE_CPU_TARGET)]);
    rows.push(['agent RSS idle (VmRSS at the end)', megabytes(idle.last.rssKiB * 1024), '<= 250 MB', verdict(idle.last.rssKiB * 1024 <= RSS_TARGET)]);
    rows.push(['agent + children RSS idle', megabytes(idle.last.treeRssKiB * 1024), '', '']);
    process.stderr.write(`  idle CPU ${percent(cpu(idle))}\n`);

    // Burst: 5,000 files at once into the watched tree.
    const before = await agent.status();
    const observer = observe(dst);
    const burstSampler = sample(agent.pid, extra, 200);
    const w = burst();
    let burstUsage: ReturnType<Sampler['stop']>;
    let landedMs: number | undefined;
    let p99: number | undefined;
    try {
      await w.write(src, 'burst', (x) => observer.expect(x));
      const arrivals = await observer.done(180_000);
      if (arrivals.missing.length === 0) landedMs = arrivals.lastArrival! - arrivals.lastWrittenAt!;
      p99 = arrivals.missing.length === 0 ? percentile(arrivals.lags, 99) : Infinity;
      await agent.settled(60_000);
    } finally {
      observer.stop();
      burstUsage = burstSampler.stop();
    }
    const after = await agent.status();
    rows.push(['burst of 5,000 files: all landed after the last write', seconds(landedMs, 'timeout'), '', '']);
    rows.push(['burst of 5,000 files: lag p99', seconds(p99, 'timeout'), '', '']);
    rows.push(['agent CPU during the burst (until settled; agent + children + ssh master)', `${percent(cpu(burstUsage))} over ${seconds(burstUsage.ms)}`, '', '']);
    rows.push(['agent CPU during the burst, total', `${((burstUsage.last.ticks - burstUsage.first.ticks) / TICKS_PER_S).toFixed(1)} CPU-s`, '', '']);
    rows.push(['agent RSS peak during the burst (sampled VmRSS / VmHWM so far)', `${megabytes(burstUsage.peakRssKiB * 1024)} / ${megabytes(burstUsage.last.hwmKiB * 1024)}`, '<= 250 MB', verdict(burstUsage.last.hwmKiB * 1024 <= RSS_TARGET)]);
    rows.push(['agent + children RSS peak during the burst', megabytes(burstUsage.peakTreeRssKiB * 1024), '', '']);
    rows.push(['passes for the burst', `${after.passes - before.passes} (${after.filesSent - before.filesSent} files sent)`, '', '']);
    notes.push(`The agent's status after start-up: ${settled.treeEntries ?? '?'} tree entries, ${settled.passes} passes; full log in .bench-out/agent-resources.log.`);
  } finally {
    if (agent) {
      const r = await agent.stop();
      if (r.code !== 0) notes.push(`The agent exited with code ${r.code} (signal ${r.signal}) on SIGTERM.`);
      const out = join(import.meta.dirname, '..', '.bench-out');
      mkdirSync(out, { recursive: true });
      if (existsSync(agent.logFile)) copyFileSync(agent.logFile, join(out, 'agent-resources.log'));
    }
    const left = pidsWithMarker(sshd.identityFile);
    if (left.length > 0) {
      notes.push(`After the agent stopped, ${left.length} process(es) still used its key: ${left.map((p) => commandLine(p).slice(0, 100)).join('; ')} (stopped).`);
      await terminate(left);
    }
    await sshd.close();
    removeScratch(tmp);
  }
  const table: Table = { title: `Agent resources on a ${TREE_FILES.toLocaleString('en')}-file workspace`, columns: ['measure', 'figure', 'target', 'verdict'], rows };
  notes.push('CPU is utime+stime from /proc of the agent, its live children and the ones it reaped (cutime/cstime), plus its backgrounded ssh ControlMaster; the standby side (sshd, rsync --server) is not counted. Percent is of one core.');
  return { tables: [table], notes };
}
