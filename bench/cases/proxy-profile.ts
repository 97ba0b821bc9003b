// bench/proxy-profile: where the Standby proxy's CPU per request goes, beside
// http-proxy-3 alone (bench/bare-proxy.ts), from V8's sampling profiler. Both
// run under `node --cpu-prof`, pinned to the same core, with the same upstream,
// each loaded in turn by the same wrk (-t1 -c50), rounds alternating; Node
// writes each profile when the process ends (SIGTERM). Only the samples taken
// inside the wrk runs count (the profile's clock is CLOCK_MONOTONIC, like
// process.hrtime here), so start-up (module compilation) is left out. Each
// function's self time is divided by the requests served in those runs.
// Profiles are kept in .bench-out/proxy-profile/ (open them in Chrome DevTools).
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../core/free-port.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../../test/fixtures/workspace-server.ts';
import { startBareProxy } from '../bare-proxy.ts';
import { TICKS_PER_S, usage } from '../proc-usage.ts';
import type { CaseResult, Table } from '../report.ts';
import { removeScratch, scratchDir } from '../scratch.ts';
import { startStandbyProxy } from '../standby-proxy-process.ts';
import { runWrk } from '../wrk.ts';

/** BENCH_ROUNDS=n rounds of BENCH_PROFILE_S seconds per system (defaults 3 and 5) */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_PROFILE_S ?? 5);
const INTERVAL_US = 200;
const TOP = 30;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

interface Side {
  key: 'standby' | 'bare';
  label: string;
  pid: number;
  url: string;
  stop(): Promise<void>;
  dir: string;
  /** [start, end] of each wrk run, µs of CLOCK_MONOTONIC */
  windows: [number, number][];
  requests: number;
  /** CPU ticks (utime+stime, every thread) inside the runs */
  ticks: number;
}

export interface FunctionTimes {
  /** µs of samples per function key, inside the windows */
  self: Map<string, number>;
  /** µs of samples taken in the project's own functions (self time: not node_modules, not node:, not bench/) */
  projectSelf: number;
  /** µs of samples under a timer callback (background work: probes, loops, metrics) */
  underTimers: number;
  total: number;
}

const REPO = join(import.meta.dirname, '..');

function shortUrl(url: string): string {
  return url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(`${REPO}/`, '');
}

/** Sums a profile's samples that fall inside `windows`, per function (self) and for two groups (inclusive). */
export function functionTimes(p: CpuProfile, windows: [number, number][]): FunctionTimes {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // the program's own code, from this checkout or another (STANDBY_BENCH_CLI): not libraries, not Node's, not the bench's
  const project = (n: ProfileNode): boolean => n.callFrame.url.startsWith('file://') && !n.callFrame.url.includes('/node_modules/') && !n.callFrame.url.includes('/bench/');
  const timer = (n: ProfileNode): boolean => n.callFrame.url === 'node:internal/timers' && (n.callFrame.functionName === 'listOnTimeout' || n.callFrame.functionName === 'processTimers');
  const underTimer = new Map<number, boolean>();
  const timed = (id: number): boolean => {
    const known = underTimer.get(id);
    if (known !== undefined) return known;
    const up = parent.has(id) ? timed(parent.get(id)!) : false;
    const g = up || timer(byId.get(id)!);
    underTimer.set(id, g);
    return g;
  };
  const out: FunctionTimes = { self: new Map(), projectSelf: 0, underTimers: 0, total: 0 };
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    const dt = p.timeDeltas[i + 1] ?? 0; // the time until the next sample is what this one stands for
    if (!windows.some(([a, b]) => t >= a && t < b)) continue;
    const n = byId.get(p.samples[i]!)!;
    const url = shortUrl(n.callFrame.url);
    const key = `${n.callFrame.functionName || '(anonymous)'}${url ? ` ${url}:${n.callFrame.lineNumber + 1}` : ''}`;
    out.self.set(key, (out.self.get(key) ?? 0) + dt);
    if (project(n)) out.projectSelf += dt;
    if (timed(n.id)) out.underTimers += dt;
    out.total += dt;
  }
  return out;
}

function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export async function run(): Promise<CaseResult> {
  const tmp = scratchDir('standby-bench-profile-');
  const out = join(REPO, '.bench-out', 'proxy-profile');
  rmSync(out, { recursive: true, force: true });
  const pin = availableParallelism() >= 2;
  const serverCpu = pin ? 1 : undefined;
  const clientCpu = pin ? 0 : undefined;
  const wrap = pin ? ['taskset', '-c', '0'] : undefined;
  const servers: WorkspaceServer[] = [];
  const sides: Side[] = [];
  try {
    const origin = await startWorkspaceServer({ name: 'origin', wrap });
    servers.push(origin);
    const spare = await startWorkspaceServer({ name: 'spare', wrap });
    servers.push(spare);
    for (const key of ['standby', 'bare'] as const) {
      const dir = join(out, key);
      mkdirSync(dir, { recursive: true });
      const flags = ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-interval=${INTERVAL_US}`];
      const port = await freePort();
      const started = key === 'standby'
        ? await startStandbyProxy({ port, primaryUrl: origin.url, standbyUrl: spare.url, primaryName: 'origin', dir: (mkdirSync(join(tmp, key)), join(tmp, key)), cpu: serverCpu, nodeOptions: flags.join(' ') })
        : await startBareProxy({ port, target: origin.url, cpu: serverCpu, nodeArgs: flags });
      sides.push({ key, label: key === 'standby' ? 'Standby proxy' : 'http-proxy-3 alone', pid: started.process.pid, url: started.url, stop: () => started.stop(), dir, windows: [], requests: 0, ticks: 0 });
    }
    for (const s of sides) await runWrk({ url: `${s.url}/whoami`, threads: 1, connections: 50, seconds: 3, cpu: clientCpu });
    for (let round = 1; round <= ROUNDS; round++) {
      for (const s of round % 2 ? sides : [...sides].reverse()) {
        const ticks = usage(s.pid).ticks;
        const a = nowUs();
        const w = await runWrk({ url: `${s.url}/whoami`, threads: 1, connections: 50, seconds: SECONDS, cpu: clientCpu });
        s.windows.push([a, nowUs()]);
        s.ticks += usage(s.pid).ticks - ticks;
        s.requests += w.requests;
        process.stderr.write(`  profile round ${round}: ${s.key}: ${Math.round(w.rps)} req/s, CPU ${(((usage(s.pid).ticks - ticks) / TICKS_PER_S) * 1e6 / w.requests).toFixed(1)} us per request (profiler on)\n`);
      }
    }
    for (const s of sides) await s.stop();
  } finally {
    for (const s of sides) await s.stop().catch(() => undefined);
    for (const w of servers) await w.close().catch(() => undefined);
    removeScratch(tmp);
  }

  const times = sides.map((s) => {
    const file = readdirSync(s.dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`${s.key}: Node wrote no profile in ${s.dir} (did it exit on SIGTERM?)`);
    return functionTimes(JSON.parse(readFileSync(join(s.dir, file), 'utf8')) as CpuProfile, s.windows);
  });
  const [st, bt] = times as [FunctionTimes, FunctionTimes];
  const [ss, bs] = sides as [Side, Side];
  const per = (us: number | undefined, s: Side): number => (us ?? 0) / s.requests;
  const f = (n: number): string => n.toFixed(2);
  const keys = [...new Set([...st.self.keys(), ...bt.self.keys()])];
  const row = (k: string): string[] => {
    const a = per(st.self.get(k), ss);
    const b = per(bt.self.get(k), bs);
    return [k, f(a), f(b), `${a - b >= 0 ? '+' : ''}${f(a - b)}`];
  };
  const columns = ['function (self time)', 'Standby, us/request', 'http-proxy-3 alone, us/request', 'difference'];
  const cpu = (s: Side): number => ((s.ticks / TICKS_PER_S) * 1e6) / s.requests;
  const summary: Table = {
    title: `Profiled CPU per request, ${ROUNDS} alternating rounds of ${SECONDS} s each (wrk -t1 -c50), profiler on`,
    columns: ['measure', 'Standby, us/request', 'http-proxy-3 alone, us/request', 'Standby / alone'],
    rows: [
      ['CPU per request, every thread (/proc utime+stime)', f(cpu(ss)), f(cpu(bs)), `${((cpu(ss) / cpu(bs)) * 100).toFixed(1)} %`],
      ['main thread, sampled (incl. idle)', f(per(st.total, ss)), f(per(bt.total, bs)), `${((per(st.total, ss) / per(bt.total, bs)) * 100).toFixed(1)} %`],
      ['  of which idle (waiting in epoll)', f(per(st.self.get('(idle)'), ss)), f(per(bt.self.get('(idle)'), bs)), ''],
      ['  of which in the project\'s own functions (self time: proxy/*.ts and the rest of the program, not libraries)', f(per(st.projectSelf, ss)), f(per(bt.projectSelf, bs)), ''],
      ['  of which under timer callbacks (inclusive: probes, loops, metrics)', f(per(st.underTimers, ss)), f(per(bt.underTimers, bs)), ''],
      ['  of which garbage collection (main thread)', f(per(st.self.get('(garbage collector)'), ss)), f(per(bt.self.get('(garbage collector)'), bs)), ''],
    ],
    notes: [`Requests served in the profiled runs: Standby ${ss.requests.toLocaleString('en')}, http-proxy-3 alone ${bs.requests.toLocaleString('en')}. The profiler itself costs CPU (one sample every ${INTERVAL_US} us), the same for both.`],
  };
  const total = (k: string): number => per(st.self.get(k), ss) + per(bt.self.get(k), bs);
  const diff = (k: string): number => per(st.self.get(k), ss) - per(bt.self.get(k), bs);
  return {
    tables: [
      summary,
      { title: `Top ${TOP} functions by self time (both summed), us per request`, columns, rows: keys.sort((x, y) => total(y) - total(x)).slice(0, TOP).map(row) },
      { title: `Top ${TOP} differences in self time (Standby - alone), us per request`, columns, rows: keys.sort((x, y) => Math.abs(diff(y)) - Math.abs(diff(x))).slice(0, TOP).map(row) },
    ],
    notes: [
      'Both pinned to CPU 1, wrk and the upstream on CPU 0 (2+ CPUs). Self time of a native function (writev, writeLatin1String, parse) includes the kernel\'s work in that system call; on loopback that is the receiver\'s TCP work too. Differences below about 0.5 us per request are within the noise of a sampled profile on a shared machine.',
      'Profiles: .bench-out/proxy-profile/{standby,bare}/*.cpuprofile (the whole life of each process; the tables count only the samples inside the wrk runs).',
    ],
  };
}
