// Runs workloads against one sync system at a time and measures write-to-standby
// lag: shared by bench/cases/sync-lag.ts (plain loopback) and bench/cases/slow-link.ts
// (through a delaying, rate-capping relay). Every system sends through the same
// relay in front of the same sshd, so the relay's byte counts compare them.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentUnavailable, startAgent, type Agent } from '../test/fixtures/agent-process.ts';
import { startLsyncd, type Lsyncd } from './lsyncd-process.ts';
import { observe, type Arrivals } from './observer.ts';
import type { Relay } from './relay.ts';
import { terminate } from './scratch.ts';
import { descendants } from '../core/process-tree.ts';
import { commandLine, pidsWithMarker } from '../test/fixtures/process-tree.ts';
import { mebibytes, percentile, seconds, type Table } from './report.ts';
import { rsyncOnce, startRsyncLoop, type RsyncLoop } from './rsync-run.ts';
import type { SshTarget } from './ssh-target.ts';
import type { Workload } from './workloads.ts';
import { waitFor } from '../test/fixtures/wait-for.ts';

export type SystemKind = 'agent' | 'lsyncd' | 'one-shot' | 'loop';

export interface SystemSpec {
  label: string;
  kind: SystemKind;
  /** agent: sync.delayMs; lsyncd: delay in ms (whole seconds) */
  delayMs?: number;
}

export const AGENT_DEFAULTS: SystemSpec = { label: 'standby agent (delayMs 250)', kind: 'agent', delayMs: 250 };
export const AGENT_1000: SystemSpec = { label: 'standby agent (delayMs 1000)', kind: 'agent', delayMs: 1000 };
export const LSYNCD: SystemSpec = { label: 'lsyncd rsyncssh (delay 1)', kind: 'lsyncd', delayMs: 1000 };
export const ONE_SHOT: SystemSpec = { label: 'one-shot rsync -a after the writes', kind: 'one-shot' };
export const LOOP: SystemSpec = { label: 'rsync -a --delete loop every 300 ms', kind: 'loop' };

export interface LagContext {
  /** the case's name, for the logs kept in .bench-out/ */
  name: string;
  target: SshTarget;
  /** the sshd fixture's folder, to tell the standby side's processes from the client's */
  sshdDir: string;
  relay: Relay;
  /** a scratch folder; each system gets a fresh folder inside it, removed afterwards */
  tmp: string;
  /** how long a workload's files may take to land after the last write, by workload name */
  landTimeoutMs: Record<string, number>;
  /** how long a system may take to get ready (first full sync) */
  startTimeoutMs: number;
}

export interface LagRow {
  system: string;
  workload: string;
  tree: string;
  expected: number;
  landed: number;
  lags: number[];
  /** ms from the last write to the last arrival; undefined when not everything landed */
  allLandedMs?: number;
  /** ms the workload's writes took (the system's own load can slow them) */
  writeMs?: number;
  /** bytes clients sent through the relay during the workload (and until the system went quiet) */
  wireUp?: number;
  note: string;
  /** why there are no figures (system unavailable, start-up failed) */
  skipped?: string;
}

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Waits until the relay has carried no new client bytes for `quietMs`, at most `maxMs`. */
async function quiet(relay: Relay, quietMs: number, maxMs: number): Promise<boolean> {
  const deadline = performance.now() + maxMs;
  let last = (await relay.stats()).up;
  let since = performance.now();
  while (performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    const now = (await relay.stats()).up;
    if (now !== last) {
      last = now;
      since = performance.now();
    } else if (performance.now() - since >= quietMs) return true;
  }
  return false;
}

/**
 * After a system stopped: processes that still use the benchmark's key or folders. The
 * standby side (sshd's sessions, `rsync --server`) gets 3 s to wind down by itself; what is
 * left then is stopped and reported, client side first (those would be the system's leak).
 */
async function sweep(markers: string[], sshdDir: string): Promise<string | undefined> {
  const find = (): number[] => [...new Set(markers.flatMap(pidsWithMarker))];
  const deadline = performance.now() + 3_000;
  while (find().length > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const pids = find();
  if (pids.length === 0) return undefined;
  const standbySide = new Set(pidsWithMarker(join(sshdDir, 'sshd_config')).flatMap((p) => descendants(p)));
  const client = pids.filter((p) => !standbySide.has(p));
  const server = pids.filter((p) => standbySide.has(p));
  const what = (list: number[]): string => list.map((p) => `${p}: ${commandLine(p).slice(0, 120)}`).join('; ');
  await terminate(pids);
  const parts: string[] = [];
  if (client.length > 0) parts.push(`left ${client.length} process(es) running 3 s after stop: ${what(client)}`);
  if (server.length > 0) parts.push(`standby side still busy 3 s after stop: ${what(server)}`);
  return parts.join('; ');
}

const benchOut = join(dirname(fileURLToPath(import.meta.url)), '..', '.bench-out');

/** Keeps a system's log in .bench-out/ (git-ignored) for a look after the run. */
function keepLog(file: string | undefined, name: string): void {
  if (!file || !existsSync(file)) return;
  mkdirSync(benchOut, { recursive: true });
  copyFileSync(file, join(benchOut, name));
}

function log(msg: string): void {
  process.stderr.write(`  ${msg}\n`);
}

/**
 * Measures one system over the workloads, in order, on one workspace. With `baseTree`,
 * the workspace and the standby both start as copies of it (pre-synced).
 */
export async function measureSystem(spec: SystemSpec, ctx: LagContext, workloads: Workload[], tree: { label: string; base?: string }): Promise<LagRow[]> {
  const rows: LagRow[] = [];
  const skip = (why: string): LagRow[] =>
    workloads.map((w) => ({ system: spec.label, workload: w.label, tree: tree.label, expected: w.files, landed: 0, lags: [], note: '', skipped: why }));
  if (spec.kind === 'agent') {
    const why = agentUnavailable();
    if (why) return skip(why);
  }

  const dir = join(ctx.tmp, `${spec.kind}-${spec.delayMs ?? 0}-${Math.random().toString(36).slice(2, 8)}`);
  const src = join(dir, 'src');
  const dst = join(dir, 'dst');
  mkdirSync(src, { recursive: true });
  mkdirSync(dst, { recursive: true });
  let agent: Agent | undefined;
  let lsyncd: Lsyncd | undefined;
  let loop: RsyncLoop | undefined;
  const problems: string[] = [];
  try {
    if (tree.base) {
      sh('cp', ['-a', `${tree.base}/.`, src]);
      sh('cp', ['-a', `${tree.base}/.`, dst]);
    }
    let startNote = '';
    log(`${spec.label} on ${tree.label}: starting`);
    try {
      if (spec.kind === 'agent') {
        agent = await startAgent({ src, dst, target: ctx.target, delayMs: spec.delayMs, maxDelayMs: Math.max(1000, spec.delayMs ?? 0), dir });
        const ms = await agent.ready(ctx.startTimeoutMs);
        startNote = `ready after ${seconds(ms)}`;
      } else if (spec.kind === 'lsyncd') {
        const started = performance.now();
        lsyncd = startLsyncd({ src, dst, target: ctx.target, delayS: Math.round((spec.delayMs ?? 1000) / 1000), dir });
        await lsyncd.ready(ctx.startTimeoutMs);
        startNote = `startup sync ${seconds(performance.now() - started)}`;
      } else if (spec.kind === 'loop') {
        const started = performance.now();
        loop = startRsyncLoop(src, dst, ctx.target, 300);
        const l = loop;
        await waitFor('the first rsync of the loop', () => l.runs() >= 1, { timeoutMs: ctx.startTimeoutMs });
        startNote = `first run ${seconds(performance.now() - started)}`;
      }
    } catch (err) {
      const tail = agent ? ` | log: ${agent.logTail().split('\n').slice(-3).join(' | ')}` : '';
      return skip(`start-up failed: ${(err as Error).message}${tail}`.slice(0, 400));
    }

    for (const w of workloads) {
      const folder = `${w.name}-${Math.random().toString(36).slice(2, 8)}`;
      sh('sync', []); // start each workload with no dirty pages of the previous one being written back
      const before = await ctx.relay.stats();
      const agentBefore = agent ? await agent.status().catch(() => undefined) : undefined;
      const lsyncdCallsBefore = lsyncd?.rsyncCalls() ?? 0;
      const loopRunsBefore = loop?.runs() ?? 0;
      const observer = observe(dst);
      const notes: string[] = [];
      let arrivals: Arrivals;
      let writeMs: number | undefined;
      log(`${spec.label}: ${w.label}`);
      try {
        const written = await w.write(src, folder, (x) => observer.expect(x));
        writeMs = written.ms;
        notes.push(`writes took ${seconds(written.ms)}`);
        if (spec.kind === 'one-shot') {
          const r = await rsyncOnce(src, dst, ctx.target, { timeoutMs: ctx.landTimeoutMs[w.name] ?? 60_000 });
          notes.push(r.code === 0 ? `rsync took ${seconds(r.ms)}` : `rsync exit ${r.code}${r.timedOut ? ' (timeout)' : ''}: ${r.stderr.slice(0, 200)}`);
        }
        arrivals = await observer.done(ctx.landTimeoutMs[w.name] ?? 60_000);
        // Let the system finish what it does after the files landed (a second send counts too).
        if (agent) {
          await agent.settled(30_000).catch((err: Error) => void problems.push(`not settled after ${w.name}: ${err.message.slice(0, 200)}`));
          await quiet(ctx.relay, 1000, 15_000);
        } else if (lsyncd) {
          if (!(await quiet(ctx.relay, 2000, 30_000))) notes.push('relay never went quiet within 30 s');
        } else if (loop) {
          await new Promise((r) => setTimeout(r, 1000));
        }
        for (const [rel, hash] of written.hashes ?? []) {
          const got = await sha256File(join(dst, rel)).catch(() => 'missing');
          notes.push(got === hash ? 'content verified (sha256)' : `CONTENT MISMATCH on the standby for ${rel}`);
        }
      } finally {
        observer.stop();
      }
      const after = await ctx.relay.stats();
      if (agent) {
        const s = await agent.status().catch(() => undefined);
        if (s && agentBefore) {
          notes.push(`agent: ${s.passes - agentBefore.passes} passes, bytesSent ${mebibytes(s.bytesSent - agentBefore.bytesSent)}, filesSent ${s.filesSent - agentBefore.filesSent}`);
        }
      }
      if (lsyncd) notes.push(`lsyncd: ${lsyncd.rsyncCalls() - lsyncdCallsBefore} rsync calls`);
      if (loop) notes.push(`loop: ${loop.runs() - loopRunsBefore} runs (wire bytes include its idle runs)`);
      if (arrivals.missing.length > 0) notes.push(`timeout: ${arrivals.missing.length} of ${arrivals.expected} never landed (e.g. ${arrivals.missing[0]})`);
      const all = arrivals.missing.length === 0 && arrivals.lastArrival !== undefined && arrivals.lastWrittenAt !== undefined;
      rows.push({
        system: spec.label,
        workload: w.label,
        tree: tree.label,
        expected: arrivals.expected,
        landed: arrivals.lags.length,
        lags: arrivals.lags,
        allLandedMs: all ? arrivals.lastArrival! - arrivals.lastWrittenAt! : undefined,
        writeMs,
        wireUp: after.up - before.up,
        note: [startNote, ...notes].filter(Boolean).join('; '),
      });
      startNote = '';
      log(`  landed ${arrivals.lags.length}/${arrivals.expected}, p99 ${seconds(percentile(arrivals.lags, 99))}`);
    }
  } finally {
    if (loop) await loop.stop();
    if (lsyncd) await lsyncd.stop();
    if (agent) {
      const r = await agent.stop();
      if (r.code !== 0) problems.push(`agent exit on SIGTERM: code ${r.code} signal ${r.signal} after ${seconds(r.ms)}`);
      else if (r.ms > 5000) problems.push(`agent took ${seconds(r.ms)} to exit on SIGTERM`);
    }
    const left = await sweep([ctx.target.identityFile, dir], ctx.sshdDir);
    if (left) problems.push(left);
    keepLog(agent?.logFile ?? lsyncd?.logFile, `${ctx.name}-${spec.kind}-${spec.delayMs ?? 0}-${tree.label.replace(/\W+/g, '')}.log`);
    rmSync(dir, { recursive: true, force: true });
  }
  if (problems.length > 0 && rows.length > 0) rows[rows.length - 1]!.note += `; PROBLEMS: ${problems.join('; ')}`;
  return rows;
}

/** p50/p95/p99/max over every expected file; files that never landed count as infinitely late ("timeout"). */
function lagFigures(row: LagRow): string[] {
  const values = [...row.lags, ...Array<number>(row.expected - row.landed).fill(Infinity)];
  const fig = (p: number): string => seconds(percentile(values, p), 'timeout');
  return [fig(50), fig(95), fig(99), fig(100)];
}

export function lagTable(title: string, rows: LagRow[], notes: string[] = []): Table {
  return {
    title,
    columns: ['system', 'workload', 'p50', 'p95', 'p99', 'max', 'all landed after last write', 'sent on the wire', 'notes'],
    rows: rows.map((r) =>
      r.skipped
        ? [r.system, r.workload, '-', '-', '-', '-', '-', '-', r.skipped]
        : [r.system, r.workload, ...lagFigures(r), r.allLandedMs === undefined ? `timeout (${r.landed}/${r.expected})` : seconds(r.allLandedMs), mebibytes(r.wireUp), r.note],
    ),
    notes,
  };
}
