// bench/proxy-overhead: what the Standby proxy costs on the request path, beside
// the server alone and the reference proxies, in the same run:
//  - HTTP: wrk (-t1 -c50 -d5s --latency, keep-alive GET /whoami, a 3-byte answer)
//    against the workspace-server stand-in directly, through the Standby proxy
//    (`bin/standby proxy`, no agent, never failing over), through http-proxy-3
//    alone (the library the proxy forwards with, same options), through nginx and
//    through HAProxy; systems alternate (A B C D E, A B C D E, ...) for several
//    rounds, and the figures are the median and the spread of the rounds;
//  - the Standby proxy and http-proxy-3 alone loaded at the same time on one
//    core: the ratio of their throughputs and of their CPU per request (each
//    process's utime+stime from /proc over the requests it served), the figures
//    the targets are judged by; and the CPU each spends with no traffic;
//  - WebSocket: sequential round trips of a small message to the stand-in's echo,
//    directly and through each proxy, alternating the same way.
// CPUs (2 here): the process wrk talks to runs alone on CPU 1; wrk, and the
// upstream server behind the proxies, on CPU 0.
import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../core/free-port.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../../test/fixtures/workspace-server.ts';
import { startBareProxy } from '../bare-proxy.ts';
import { foreignCpu } from '../foreign-cpu.ts';
import { startHaproxy } from '../haproxy-process.ts';
import { startNginx } from '../nginx-process.ts';
import { TICKS_PER_S, usage } from '../proc-usage.ts';
import { percent, percentile, type CaseResult, type Table } from '../report.ts';
import { removeScratch, scratchDir } from '../scratch.ts';
import { startStandbyProxy } from '../standby-proxy-process.ts';
import { runWrk, type WrkResult } from '../wrk.ts';
import { wsRoundTrips } from '../ws-rtt.ts';

/** BENCH_ROUNDS=n: rounds of the alternation (default 7; at least 3 for a figure worth keeping) */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const WRK = { threads: 1, connections: 50, seconds: 5 };
const WARMUP_S = 3;
/** rounds of the Standby proxy and http-proxy-3 alone measured at once, sharing one core */
const PAIR_ROUNDS = 8;
const PAIR_SECONDS = 3;
/** CPU per request of the Standby proxy, at most this times http-proxy-3 alone's (measured at once, sharing one core) */
const CPU_RATIO_TARGET = 1.1;
/** seconds each proxy is watched with no traffic, for the CPU it spends on its own (timers, probes) */
const IDLE_SECONDS = 10;
const WS_MESSAGES = 2_000;
const WS_ROUNDS = 3;
const THROUGHPUT_TARGET = 0.9;
/** a round during any run of which other processes took more than this share of a core is run again */
const FOREIGN_LIMIT = 0.1;
/** rounds run at most, clean or not: 2x the rounds wanted */
const MAX_ATTEMPTS = 2;
const WS_OVERHEAD_TARGET_MS = 0.05;

interface System {
  key: string;
  label: string;
  /** http://host:port, answers GET /whoami */
  url: string;
  /** the pid whose process tree does the work (for its CPU use) */
  pid: number;
}

interface HttpRound {
  wrk: WrkResult;
  /** CPU the system's processes used during the run, as a fraction of one core */
  cpu: number;
  /** CPU other work on the machine took during the run, same unit */
  foreign: number;
}

function micros(ms: number | undefined): string {
  return ms === undefined || !Number.isFinite(ms) ? '-' : `${Math.round(ms * 1000)} us`;
}

function millis(ms: number | undefined): string {
  return ms === undefined || !Number.isFinite(ms) ? '-' : `${ms.toFixed(2)} ms`;
}

function rate(n: number | undefined): string {
  return n === undefined ? '-' : `${Math.round(n).toLocaleString('en')}`;
}

async function wrkOnce(s: System, seconds: number, cpu: number | undefined): Promise<HttpRound> {
  const before = usage(s.pid).ticks;
  const others = foreignCpu();
  const t = performance.now();
  const wrk = await runWrk({ url: `${s.url}/whoami`, ...WRK, seconds, cpu });
  const used = (usage(s.pid).ticks - before) / TICKS_PER_S / ((performance.now() - t) / 1000);
  return { wrk, cpu: used, foreign: others.stop() };
}

interface Rounds<T> {
  /** rounds during which the machine was quiet enough, or every round when too few were */
  used: Map<string, T>[];
  clean: number;
  run: number;
}

/**
 * Runs `one` for every system in turn, round after round, until `want` rounds were clean
 * (no run of the round saw other work above FOREIGN_LIMIT) or MAX_ATTEMPTS x `want` rounds ran.
 * Fewer than 3 clean rounds: every round is used, and the figures say the machine was busy.
 */
async function alternate<T extends { foreign: number }>(what: string, systems: System[], want: number, one: (s: System) => Promise<T>, show: (r: T) => string): Promise<Rounds<T>> {
  const clean: Map<string, T>[] = [];
  const disturbed: Map<string, T>[] = [];
  for (let attempt = 1; clean.length < want && attempt <= want * MAX_ATTEMPTS; attempt++) {
    const round = new Map<string, T>();
    for (const s of systems) {
      const r = await one(s);
      round.set(s.key, r);
      process.stderr.write(`  ${what} round ${attempt}: ${s.key}: ${show(r)}${r.foreign > FOREIGN_LIMIT ? ` (other work: ${percent(r.foreign)} of a core)` : ''}\n`);
    }
    const quiet = [...round.values()].every((r) => r.foreign <= FOREIGN_LIMIT);
    (quiet ? clean : disturbed).push(round);
    if (!quiet) process.stderr.write(`  ${what} round ${attempt}: other work on the machine during it: not counted, running another\n`);
  }
  const enough = clean.length >= Math.min(3, want);
  return { used: enough ? clean : [...clean, ...disturbed], clean: clean.length, run: clean.length + disturbed.length };
}

function busy(r: Rounds<unknown>): string {
  return r.used.length > r.clean ? ' (machine busy)' : '';
}

function roundsNote(what: string, r: Rounds<unknown>): string {
  const base = `${what}: ${r.clean} clean rounds of ${r.run} run (a round counts only when, during each of its runs, other processes on the machine took at most ${percent(FOREIGN_LIMIT)} of a core).`;
  return r.used.length > r.clean ? `${base} NOT QUIET: too few clean rounds, so every round is used and the figures may be disturbed.` : base;
}

export async function run(): Promise<CaseResult> {
  const tmp = scratchDir('standby-bench-overhead-');
  const closers: (() => Promise<void>)[] = [];
  const pin = availableParallelism() >= 2;
  const serverCpu = pin ? 1 : undefined;
  const clientCpu = pin ? 0 : undefined;
  const wrap = (cpu: number | undefined): string[] | undefined => (cpu === undefined ? undefined : ['taskset', '-c', String(cpu)]);
  try {
    const started = (w: WorkspaceServer): WorkspaceServer => {
      closers.push(() => w.close());
      return w;
    };
    // the upstream behind every proxy, the one measured alone, and the Standby proxy's (idle) standby side
    const origin = started(await startWorkspaceServer({ name: 'origin', wrap: wrap(clientCpu) }));
    const direct = started(await startWorkspaceServer({ name: 'direct', wrap: wrap(serverCpu) }));
    const spare = started(await startWorkspaceServer({ name: 'spare', wrap: wrap(clientCpu) }));
    const dir = (name: string): string => {
      const d = join(tmp, name);
      mkdirSync(d);
      return d;
    };
    const standby = await startStandbyProxy({ port: await freePort(), primaryUrl: origin.url, standbyUrl: spare.url, primaryName: 'origin', dir: dir('standby'), cpu: serverCpu });
    closers.push(() => standby.stop());
    const bare = await startBareProxy({ port: await freePort(), target: origin.url, cpu: serverCpu });
    closers.push(() => bare.stop());
    const nginx = await startNginx({ port: await freePort(), upstream: `127.0.0.1:${origin.port}`, dir: dir('nginx'), cpu: serverCpu });
    closers.push(() => nginx.stop());
    const haproxy = await startHaproxy({ port: await freePort(), servers: [{ name: 'origin', address: `127.0.0.1:${origin.port}` }], dir: dir('haproxy'), cpu: serverCpu });
    closers.push(() => haproxy.stop());

    const systems: System[] = [
      { key: 'direct', label: 'workspace-server directly (Node http)', url: direct.url, pid: direct.pid },
      { key: 'standby', label: 'Standby proxy (bin/standby proxy)', url: standby.url, pid: standby.process.pid },
      { key: 'bare', label: 'http-proxy-3 alone', url: bare.url, pid: bare.process.pid },
      { key: 'nginx', label: 'nginx 1.22 (1 worker, keepalive upstream)', url: nginx.url, pid: nginx.process.pid },
      { key: 'haproxy', label: 'HAProxy 2.6 (1 thread)', url: haproxy.url, pid: haproxy.process.pid },
    ];

    // HTTP throughput, alternating
    for (const s of systems) await wrkOnce(s, WARMUP_S, clientCpu);
    const http = await alternate('http', systems, ROUNDS, (s) => wrkOnce(s, WRK.seconds, clientCpu), (r) =>
      `${rate(r.wrk.rps)} req/s, p50 ${millis(r.wrk.p50)}, p99 ${millis(r.wrk.p99)}, server CPU ${percent(r.cpu)}${r.wrk.errors ? `, ${r.wrk.errors} errors` : ''}`);

    // the same pair at once on one core: both see the same core speed at the same moment
    const idle = await idleCpu([systems[1]!, systems[2]!]);
    const paired = pin ? await sideBySide(systems[1]!, systems[2]!, clientCpu) : undefined;

    // WebSocket round trips, alternating; direct = the same upstream the proxies reach
    const wsTargets: System[] = [{ ...systems[0]!, label: 'workspace-server directly', url: origin.url }, ...systems.slice(1)];
    const ws = await alternate('ws', wsTargets, WS_ROUNDS, async (s) => {
      const others = foreignCpu();
      const rtts = await wsRoundTrips({ url: `${s.url.replace('http', 'ws')}/ws-bench`, count: WS_MESSAGES });
      return { rtts, foreign: others.stop() };
    }, (r) => `p50 ${micros(percentile(r.rtts, 50))}, p99 ${micros(percentile(r.rtts, 99))}`);

    // the Standby proxy still routed to the primary all along (no failover, no transition page)
    const still = await fetch(`${standby.url}/whoami`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.text());
    if (still !== 'origin') throw new Error(`the Standby proxy stopped routing to the primary during the run (answered ${still})`);

    return {
      tables: [httpTable(systems, http), ...(paired ? [pairTable(systems[1]!, systems[2]!, paired, idle)] : []), wsTable(wsTargets, ws)],
      notes: [roundsNote('HTTP', http), ...(paired ? [roundsNote('HTTP sharing one core', paired)] : []), roundsNote('WebSocket', ws), ...notes(pin)],
    };
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    removeScratch(tmp);
  }
}

interface PairRound {
  a: WrkResult;
  b: WrkResult;
  /** CPU each used in the round, share of one core */
  cpuA: number;
  cpuB: number;
  /** CPU seconds each used in the round */
  secA: number;
  secB: number;
  /** CPU other processes on the machine took during the round, share of one core */
  foreign: number;
}

/** CPU time per request (ms) of one side of a pair round: its utime+stime over the requests it served. */
function perRequest(r: PairRound, side: 'a' | 'b'): number {
  return ((side === 'a' ? r.secA : r.secB) * 1000) / (side === 'a' ? r.a : r.b).requests;
}

/** CPU each system spends with no traffic at all (its timers: probes, the failover loop, metrics), ms per second. */
async function idleCpu(systems: System[]): Promise<Map<string, number>> {
  const before = systems.map((s) => usage(s.pid).ticks);
  const t = performance.now();
  await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
  const s = (performance.now() - t) / 1000;
  return new Map(systems.map((sys, i) => [sys.key, ((usage(sys.pid).ticks - before[i]!) / TICKS_PER_S / s) * 1000]));
}

/**
 * Two servers pinned to the same core, each loaded by its own wrk (half the connections) at the
 * same time: the scheduler gives both the same CPU time, so the ratio of their throughputs is
 * the ratio of their costs per request, free of the drift of the core's speed between runs;
 * and each one's CPU time (/proc) over the requests it served is its CPU per request, measured
 * at the same moment as the other's. Rounds disturbed by other work are run again (as above).
 */
async function sideBySide(a: System, b: System, cpu: number | undefined): Promise<Rounds<PairRound>> {
  const pair = { ...a, key: 'pair' };
  let round = 0;
  return alternate('one core', [pair], PAIR_ROUNDS, async () => {
    round++;
    const [a0, b0] = [usage(a.pid).ticks, usage(b.pid).ticks];
    const others = foreignCpu();
    const t = performance.now();
    const one = (s: System) => runWrk({ url: `${s.url}/whoami`, threads: 1, connections: WRK.connections / 2, seconds: PAIR_SECONDS, cpu });
    // which wrk starts first alternates, so neither side always gets the head start
    const [ra, rb] = round % 2 ? await Promise.all([one(a), one(b)]) : await Promise.all([one(b), one(a)]).then(([y, x]) => [x, y] as const);
    const s = (performance.now() - t) / 1000;
    const [secA, secB] = [(usage(a.pid).ticks - a0) / TICKS_PER_S, (usage(b.pid).ticks - b0) / TICKS_PER_S];
    return { a: ra, b: rb, cpuA: secA / s, cpuB: secB / s, secA, secB, foreign: others.stop() };
  }, (r) => `${a.key} ${rate(r.a.rps)} req/s (CPU ${percent(r.cpuA)}, ${micros(perRequest(r, 'a'))} per request), ${b.key} ${rate(r.b.rps)} req/s (CPU ${percent(r.cpuB)}, ${micros(perRequest(r, 'b'))} per request): throughput ${percent(r.a.rps / r.b.rps)}, CPU per request ${(perRequest(r, 'a') / perRequest(r, 'b')).toFixed(2)}x`);
}

function pairTable(a: System, b: System, paired: Rounds<PairRound>, idle: Map<string, number>): Table {
  const rounds = paired.used.map((m) => m.get('pair')!);
  const ratios = rounds.map((r) => r.a.rps / r.b.rps);
  const cpuRatios = rounds.map((r) => perRequest(r, 'a') / perRequest(r, 'b'));
  const med = percentile(ratios, 50);
  const cpuMed = percentile(cpuRatios, 50);
  const errors = rounds.reduce((n, r) => n + r.a.errors + r.b.errors, 0);
  const verdict = (ok: boolean): string => (errors > 0 ? 'INVALID (errors)' : (ok ? 'met' : 'MISSED') + busy(paired));
  const x = (n: number): string => `${n.toFixed(2)}x`;
  return {
    title: `HTTP, sharing one core: ${a.label} and ${b.label} loaded at the same time, ${rounds.length} rounds of ${PAIR_SECONDS} s`,
    columns: ['measure', `${a.key} / ${b.key} (median)`, 'min - max', `${a.key}, ${b.key} (medians)`, 'errors', 'target', 'verdict'],
    rows: [
      [
        'throughput (each with wrk -t1 -c' + WRK.connections / 2 + ')',
        percent(med),
        `${percent(Math.min(...ratios))} - ${percent(Math.max(...ratios))}`,
        `${rate(percentile(rounds.map((r) => r.a.rps), 50))}, ${rate(percentile(rounds.map((r) => r.b.rps), 50))} req/s`,
        String(errors),
        `>= ${percent(THROUGHPUT_TARGET)}`,
        verdict(med !== undefined && med >= THROUGHPUT_TARGET),
      ],
      [
        'CPU per request (utime+stime from /proc over requests served)',
        cpuMed === undefined ? '-' : x(cpuMed),
        `${x(Math.min(...cpuRatios))} - ${x(Math.max(...cpuRatios))}`,
        `${micros(percentile(rounds.map((r) => perRequest(r, 'a')), 50))}, ${micros(percentile(rounds.map((r) => perRequest(r, 'b')), 50))}`,
        String(errors),
        `<= ${x(CPU_RATIO_TARGET)}`,
        verdict(cpuMed !== undefined && cpuMed <= CPU_RATIO_TARGET),
      ],
      [
        `CPU with no traffic (${IDLE_SECONDS} s watched before the rounds)`,
        '-',
        '-',
        `${(idle.get(a.key) ?? NaN).toFixed(1)}, ${(idle.get(b.key) ?? NaN).toFixed(1)} ms per s`,
        '',
        '',
        '',
      ],
    ],
    notes: [
      `Both pinned to CPU 1 (as in the rounds above), both wrk on CPU 0: the scheduler shares the core evenly (CPU per round, median: ${a.key} ${percent(percentile(rounds.map((r) => r.cpuA), 50))}, ${b.key} ${percent(percentile(rounds.map((r) => r.cpuB), 50))}), so the throughput ratio is the inverse ratio of CPU per request, measured at one moment; CPU per request is also measured directly, per process, in the same rounds. The rounds above compare runs taken seconds apart, through the drift of the core's speed; these are the figures to judge the targets by.`,
      `Round by round: throughput ${ratios.map((r) => percent(r)).join(', ')}; CPU per request ${cpuRatios.map(x).join(', ')}.`,
      `CPU with no traffic: what each process spends on its own timers (the Standby proxy probes the code-server that serves every 250 ms and the other every 2 s, runs its failover loop every 100 ms, and prom-client samples the event loop's delay); under load the serving side's probes stop (passive health: its answers to forwarded requests stand in for them), the rest is paid once per second, not per request, so it weighs more per request when the machine serves fewer requests.`,
    ],
  };
}

function httpTable(systems: System[], http: Rounds<HttpRound>): Table {
  const of = (key: string): HttpRound[] => http.used.map((round) => round.get(key)!);
  const median = (key: string, f: (r: HttpRound) => number): number | undefined => percentile(of(key).map(f), 50);
  const bareRps = median('bare', (r) => r.wrk.rps);
  const ratios = http.used.map((round) => round.get('standby')!.wrk.rps / round.get('bare')!.wrk.rps);
  const cpuPerRequest = (r: HttpRound): number => (r.cpu / r.wrk.rps) * 1000; // ms of CPU per request
  const directRps = of('direct').map((r) => r.wrk.rps);
  const rows = systems.map((s) => {
    const rounds = of(s.key);
    const rps = rounds.map((r) => r.wrk.rps);
    const med = percentile(rps, 50);
    const errors = rounds.reduce((a, r) => a + r.wrk.errors, 0);
    const isStandby = s.key === 'standby';
    const ratio = med !== undefined && bareRps ? med / bareRps : undefined;
    return [
      s.label,
      rate(med),
      `${rate(Math.min(...rps))} - ${rate(Math.max(...rps))}`,
      millis(median(s.key, (r) => r.wrk.p50)),
      millis(median(s.key, (r) => r.wrk.p99)),
      percent(median(s.key, (r) => r.cpu)),
      micros(median(s.key, cpuPerRequest)),
      String(errors),
      ratio === undefined ? '-' : percent(ratio),
      isStandby ? `>= ${percent(THROUGHPUT_TARGET)} of http-proxy-3 alone (medians of runs seconds apart; see the one-core table)` : '',
      isStandby ? (errors > 0 ? 'INVALID (errors)' : (ratio !== undefined && ratio >= THROUGHPUT_TARGET ? 'met' : 'MISSED') + busy(http)) : '',
    ];
  });
  return {
    title: `HTTP: GET /whoami, wrk -t${WRK.threads} -c${WRK.connections} -d${WRK.seconds}s, ${http.used.length} alternating rounds`,
    columns: ['system', 'req/s (median)', 'req/s (min - max)', 'latency p50', 'latency p99', 'server CPU', 'server CPU per request', 'errors', 'vs http-proxy-3 alone', 'target', 'verdict'],
    rows,
    notes: [
      `Standby / http-proxy-3 alone, round by round: ${ratios.map((r) => percent(r)).join(', ')} (median ${percent(percentile(ratios, 50))}); CPU per request, Standby / http-proxy-3 alone (medians): ${percent((median('standby', cpuPerRequest) ?? NaN) / (median('bare', cpuPerRequest) ?? NaN))}.`,
      `Noise: the workspace-server alone, CPU-bound on its own core, ranged ${rate(Math.min(...directRps))} - ${rate(Math.max(...directRps))} req/s over the rounds with no other work counted on the machine; on a VM whose host shares its cores, the speed of a core drifts from one run to the next, so compare systems by the median, and Standby with http-proxy-3 also by CPU per request.`,
      'Latency: wrk\'s own distribution (--latency) with 50 connections in a closed loop, mostly queueing; the median of the rounds. Server CPU: utime+stime of the process wrk talks to (and its children: nginx\'s worker), as a share of one core; per request: that CPU time over the requests served (less sensitive to a noisy machine than req/s when the server is the bottleneck).',
    ],
  };
}

function wsTable(systems: System[], ws: Rounds<{ rtts: number[] }>): Table {
  const of = (key: string): number[] => ws.used.flatMap((round) => round.get(key)!.rtts);
  const directP50 = percentile(of('direct'), 50)!;
  const rows = systems.map((s) => {
    const v = of(s.key);
    const p50 = percentile(v, 50)!;
    const over = s.key === 'direct' ? undefined : p50 - directP50;
    const isStandby = s.key === 'standby';
    return [
      s.label,
      String(v.length),
      micros(p50),
      micros(percentile(v, 90)),
      micros(percentile(v, 99)),
      over === undefined ? '-' : `${over >= 0 ? '+' : ''}${micros(over)}`,
      isStandby ? `overhead p50 <= ${micros(WS_OVERHEAD_TARGET_MS)}` : '',
      isStandby ? (over !== undefined && over <= WS_OVERHEAD_TARGET_MS ? 'met' : 'MISSED') + busy(ws) : '',
    ];
  });
  return {
    title: `WebSocket: round trip of a 16-byte message to an echo, ${WS_MESSAGES} sequential per connection, ${ws.used.length} alternating rounds`,
    columns: ['system', 'round trips', 'p50', 'p90', 'p99', 'overhead at p50 (vs direct)', 'target', 'verdict'],
    rows,
    notes: ['One connection per round; each message sent when the previous echo came back, timed with performance.now() in the client (this process, unpinned); 200 warm-up round trips per connection not counted. "directly" is the upstream the proxies forward to.'],
  };
}

function notes(pinned: boolean): string[] {
  return [
    pinned
      ? 'CPUs: the process wrk talks to (the workspace-server measured alone, or the proxy) is pinned to CPU 1 with taskset; wrk and the upstream workspace-server behind the proxies share CPU 0, so the fastest proxies (HAProxy, nginx) can be held back by the upstream, which needs a core of its own at their rates.'
      : 'CPUs: fewer than 2, so nothing is pinned and every process shares the one core.',
    'The Standby proxy runs as a user runs it (bin/standby proxy --config, logLevel info, Node with its default heap settings: bin/standby keeps its memory flags to the agent since an earlier run of this case measured them costing the proxy 8-9 points), with no agent connected: it is "waiting for the GPU" and routes to the GPU side; its probes run as configured by default (the GPU every 250 ms unless forwarded requests were answered since the last probe, the standby every 2 s). http-proxy-3 alone (bench/bare-proxy.ts) runs on the same Node binary as bin/standby, with no flags either, and with the options the Standby router passes it (xfwd, ws, a keep-alive upstream Agent), with a string target as the simplest use of the library (the Standby router passes a URL object made once, which spares it the parse by http-proxy-3 of the string on every request, about 0.5 us); both see the same upstream and the same wrk settings. Where the Standby proxy\'s extra CPU goes, function by function: `npm run bench -- proxy-profile`.',
    `Each system got a ${WARMUP_S} s wrk warm-up before the first round. Partial run: BENCH_ROUNDS=n (default 7).`,
  ];
}
