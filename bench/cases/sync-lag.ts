// bench/sync-lag: write-to-standby lag of the agent (at its defaults and with
// delayMs 1000) beside lsyncd (delay 1), a one-shot rsync and a naive rsync loop,
// in the same run, over the same sshd on loopback: a trickle, editor saves (a
// temp file renamed over each file: passes with deletions), a burst and a big
// file on a fresh workspace, then the trickle on a workspace of 50,000 files.
// Every system reaches sshd through a pass-through relay that counts bytes.
import { join } from 'node:path';
import { AGENT_1000, AGENT_DEFAULTS, LOOP, LSYNCD, ONE_SHOT, lagTable, measureSystem, type LagContext, type LagRow, type SystemSpec } from '../lag.ts';
import { lagEcdfChart } from '../chart-specs.ts';
import { startRelay, type RelayOptions } from '../relay.ts';
import { percentile, seconds, mebibytes, type CaseResult, type Table } from '../report.ts';
import { removeScratch, scratchDir } from '../scratch.ts';
import { startBenchSshd, sshTarget } from '../ssh-target.ts';
import { makeTree } from '../tree.ts';
import { big, burst, saves, trickle, type Workload } from '../workloads.ts';

const BIG_BYTES = 200 * 1024 * 1024;
const BASE_FILES = 50_000;

/** BENCH_SYSTEMS=agent,lsyncd,one-shot,loop picks systems by kind (for debugging a run); default all. */
export function pickSystems(all: SystemSpec[]): SystemSpec[] {
  const want = process.env.BENCH_SYSTEMS?.split(',').map((s) => s.trim()).filter(Boolean);
  return want?.length ? all.filter((s) => want.includes(s.kind)) : all;
}

/** BENCH_WORKLOADS=trickle,saves,burst,big,big-slow,base picks workloads (base = the trickle on the 50,000-file tree); default all. */
function pickWorkloads<T extends { name: string }>(all: T[]): T[] {
  const want = process.env.BENCH_WORKLOADS?.split(',').map((s) => s.trim()).filter(Boolean);
  return want?.length ? all.filter((w) => want.includes(w.name)) : all;
}

export interface LagRun {
  fresh: LagRow[];
  base: LagRow[];
}

/** The whole matrix, shared with slow-link: systems x (workloads on a fresh tree, then the trickle on a 50,000-file tree). */
export async function runLagMatrix(name: string, systems: SystemSpec[], relayOptions: Omit<RelayOptions, 'targetHost' | 'targetPort'>, landTimeoutMs: Record<string, number>): Promise<LagRun> {
  const tmp = scratchDir('standby-bench-');
  const sshd = await startBenchSshd();
  const relay = await startRelay({ targetHost: sshd.host, targetPort: sshd.port, ...relayOptions }).catch(async (err: unknown) => {
    await sshd.close();
    removeScratch(tmp);
    throw err;
  });
  try {
    const ctx: LagContext = { name, target: sshTarget(sshd, relay.port, tmp), sshdDir: sshd.dir, relay, tmp, landTimeoutMs, startTimeoutMs: 180_000 };
    const workloads: Workload[] = pickWorkloads([trickle(), saves(), burst(), big(BIG_BYTES), big(BIG_BYTES, BIG_BYTES / 2)]);
    const fresh: LagRow[] = [];
    for (const system of systems) if (workloads.length > 0) fresh.push(...(await measureSystem(system, ctx, workloads, { label: 'fresh' })));

    const base: LagRow[] = [];
    if (pickWorkloads([{ name: 'base' }]).length > 0) {
      const baseDir = join(tmp, 'base-tree');
      const made = makeTree(baseDir, BASE_FILES);
      process.stderr.write(`  made a ${made.files}-file tree in ${seconds(made.ms)}\n`);
      const label = `${BASE_FILES / 1000}k files`;
      for (const system of systems) base.push(...(await measureSystem(system, ctx, [trickle()], { label, base: baseDir })));
    }
    return { fresh, base };
  } finally {
    await relay.close();
    await sshd.close();
    removeScratch(tmp);
  }
}

function find(rows: LagRow[], system: SystemSpec, workload: string): LagRow | undefined {
  return rows.find((r) => r.system === system.label && r.workload.startsWith(workload) && !r.skipped);
}

function p99(row: LagRow | undefined): number | undefined {
  if (!row) return undefined;
  if (row.landed < row.expected) return Infinity;
  return percentile(row.lags, 99);
}

function sum(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : a + b;
}

/** A lag figure: '-' when there is none, 'timeout' when files never landed. */
function fig(ms: number | undefined): string {
  return ms === Infinity ? 'timeout' : seconds(ms);
}

function verdict(ok: boolean | undefined): string {
  return ok === undefined ? 'no figure' : ok ? 'met' : 'MISSED';
}

export function targetsTable(run: LagRun, title: string): Table {
  const rows: string[][] = [];
  for (const [rowsOf, label] of [[run.fresh, 'fresh tree'], [run.base, `${BASE_FILES / 1000}k-file tree`]] as const) {
    const def = p99(find(rowsOf, AGENT_DEFAULTS, 'trickle'));
    if (rowsOf.length > 0) rows.push([`trickle p99 at defaults <= 1.00 s (${label})`, fig(def), verdict(def === undefined ? undefined : def <= 1000)]);
    const slow = p99(find(rowsOf, AGENT_1000, 'trickle'));
    const ls = p99(find(rowsOf, LSYNCD, 'trickle'));
    if (rowsOf.length > 0 && find(rowsOf, AGENT_1000, 'trickle')) {
      rows.push([
        `trickle p99 with delayMs 1000 < lsyncd delay 1 (${label})`,
        `${fig(slow)} vs ${fig(ls)}`,
        verdict(slow === undefined || ls === undefined ? undefined : slow < ls),
      ]);
    }
  }
  const burstAgent = find(run.fresh, AGENT_DEFAULTS, 'burst');
  const burstOnce = find(run.fresh, ONE_SHOT, 'burst');
  if (burstAgent || burstOnce) {
    const limit = burstOnce?.allLandedMs === undefined ? undefined : 1.5 * burstOnce.allLandedMs + 250;
    rows.push([
      'burst fully landed <= 1.5 x one-shot rsync + delay (defaults)',
      `${burstAgent ? seconds(burstAgent.allLandedMs, 'timeout') : '-'} vs limit ${seconds(limit)}` +
        ` (from the first write: ${seconds(sum(burstAgent?.writeMs, burstAgent?.allLandedMs))} vs one-shot ${seconds(sum(burstOnce?.writeMs, burstOnce?.allLandedMs))})`,
      verdict(limit === undefined || !burstAgent ? undefined : burstAgent.allLandedMs !== undefined && burstAgent.allLandedMs <= limit),
    ]);
  }
  for (const bigAgent of run.fresh.filter((r) => r.system === AGENT_DEFAULTS.label && r.workload.startsWith('one') && !r.skipped)) {
    rows.push([
      `${bigAgent.workload}: sent once (wire bytes < 1.2 x its size)`,
      mebibytes(bigAgent.wireUp),
      verdict(bigAgent.wireUp === undefined ? undefined : bigAgent.wireUp < 1.2 * BIG_BYTES),
    ]);
  }
  return { title, columns: ['target (issue 2)', 'figure', 'verdict'], rows };
}

const SYSTEMS = [AGENT_DEFAULTS, AGENT_1000, LSYNCD, ONE_SHOT, LOOP];

export async function run(): Promise<CaseResult> {
  const result = await runLagMatrix('sync-lag', pickSystems(SYSTEMS), {}, { trickle: 60_000, burst: 120_000, big: 120_000, 'big-slow': 120_000 });
  const notes = [
    'Lag: from the end of each file\'s write to its exact content seen on the standby (polled every 20 ms); files that never landed within the timeout count as "timeout".',
    '"all landed after last write": from the end of the last write to the last file seen on the standby; for the one-shot rsync this is the time rsync took (it starts after the writes).',
    '"sent on the wire": bytes the system sent towards sshd during the workload and until it went quiet, counted by a pass-through relay in front of sshd (SSH payload, both protocol and data).',
  ];
  return {
    tables: [
      lagTable('Fresh workspace: trickle, saves, burst, big file', result.fresh),
      lagTable(`Trickle on a workspace that already holds ${BASE_FILES.toLocaleString('en')} files (pre-synced)`, result.base),
      targetsTable(result, 'Targets'),
    ],
    notes,
    charts: [lagEcdfChart([...result.fresh, ...result.base], 'this run')].filter((c) => c !== undefined),
  };
}
