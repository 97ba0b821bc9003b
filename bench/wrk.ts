// One wrk run (the Debian package): a closed loop of keep-alive GETs on `c`
// connections for `d` seconds, optionally pinned to a CPU, its summary parsed:
// requests/s, the latency distribution (--latency), and anything that was not
// a clean answer (socket errors, non-2xx/3xx responses).
import { execFile } from 'node:child_process';
import { pinned } from './server-process.ts';

export interface WrkOptions {
  url: string;
  threads?: number;
  connections?: number;
  seconds?: number;
  cpu?: number;
}

export interface WrkResult {
  requests: number;
  rps: number;
  /** latency percentiles in ms */
  p50: number;
  p75: number;
  p90: number;
  p99: number;
  /** connect + read + write + timeout socket errors, and non-2xx/3xx answers */
  errors: number;
  output: string;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function duration(text: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '');
  if (!m) return NaN;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

function parseWrk(output: string): WrkResult {
  const pct = (p: number): number => duration(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(output)?.[1]);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1]);
  if (!Number.isFinite(rps)) throw new Error(`wrk: no Requests/sec in its output:\n${output}`);
  return {
    requests: Number(/(\d+) requests in/.exec(output)?.[1] ?? NaN),
    rps,
    p50: pct(50),
    p75: pct(75),
    p90: pct(90),
    p99: pct(99),
    errors: (socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + non2xx,
    output,
  };
}

export function runWrk(o: WrkOptions): Promise<WrkResult> {
  const seconds = o.seconds ?? 5;
  const [file, args] = pinned(o.cpu, 'wrk', ['--latency', '-t', String(o.threads ?? 1), '-c', String(o.connections ?? 50), '-d', `${seconds}s`, o.url]);
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: (seconds + 30) * 1000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`wrk ${o.url} failed: ${err.message} ${stderr}`));
      try {
        resolve(parseWrk(stdout));
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}
