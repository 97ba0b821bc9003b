// The Standby agent as a benchmark sees it: `node cli.ts agent --config FILE` in
// a child process, its pino log kept in a file, its state read from the local
// status endpoint. `STANDBY_BENCH_CLI` may point at another entry point.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/fixtures/free-port.ts';
import { killTree } from '../test/fixtures/process-tree.ts';
import type { SshTarget } from './ssh-target.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = process.env.STANDBY_BENCH_CLI ? resolve(process.env.STANDBY_BENCH_CLI) : join(root, 'cli.ts');
const node = join(root, 'node_modules', '.bin', 'node');

/** What the status endpoint answers; only the fields the benchmarks read. */
export interface AgentStatus {
  ready: boolean;
  watermark: number;
  lastSeq: number;
  pending: number;
  bytesSent: number;
  filesSent: number;
  passes: number;
  [more: string]: unknown;
}

export interface AgentOptions {
  src: string;
  dst: string;
  target: SshTarget;
  delayMs?: number;
  maxDelayMs?: number;
  /** a folder for the config and the log */
  dir: string;
}

export interface Agent {
  pid: number;
  logFile: string;
  /** ms from spawn to the first status with ready: true */
  ready(timeoutMs: number): Promise<number>;
  status(): Promise<AgentStatus>;
  /** resolves when nothing is pending and the watermark has caught up with the last sequence number */
  settled(timeoutMs: number): Promise<AgentStatus>;
  /** the last lines of its log, for error messages */
  logTail(): string;
  stop(): Promise<{ code: number | null; signal: string | null; ms: number }>;
}

/** Why the agent cannot be benchmarked here, or undefined when it can. */
export function agentUnavailable(): string | undefined {
  if (!existsSync(cli)) return `agent not available (${cli} is missing)`;
  if (!existsSync(node)) return `agent not available (${node} is missing: npm ci)`;
  return undefined;
}

export async function startAgent(o: AgentOptions): Promise<Agent> {
  const statusPort = await freePort();
  const configFile = join(o.dir, 'agent.json');
  const t = o.target;
  writeFileSync(
    configFile,
    JSON.stringify(
      {
        hostId: 'bench',
        workspace: o.src,
        standby: { host: t.host, port: t.port, user: t.user, identityFile: t.identityFile, path: o.dst, sshOptions: t.sshOptions },
        sync: { delayMs: o.delayMs ?? 250, maxDelayMs: o.maxDelayMs ?? 1000, exclude: [] },
        status: { host: '127.0.0.1', port: statusPort },
        // BENCH_AGENT_LOG=debug keeps a line per pass in the log kept in .bench-out/
        ...(process.env.BENCH_AGENT_LOG ? { logLevel: process.env.BENCH_AGENT_LOG } : {}),
      },
      null,
      2,
    ),
  );
  const logFile = join(o.dir, 'agent.log');
  const log = createWriteStream(logFile);
  const spawnedAt = performance.now();
  // as users run it: bin/standby, with its memory settings (or another entry point under node)
  const [program, args] = process.env.STANDBY_BENCH_CLI ? [node, [cli, 'agent', '--config', configFile]] : [join(root, 'bin', 'standby'), ['agent', '--config', configFile]];
  const child = spawn(program, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail: string[] = [];
  const keep = (d: Buffer): void => {
    log.write(d);
    tail = [...tail, ...d.toString().split('\n').filter(Boolean)].slice(-20);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  let exitedAt: number | undefined;
  void exited.then(() => void (exitedAt = performance.now()));

  const status = async (): Promise<AgentStatus> => {
    const res = await fetch(`http://127.0.0.1:${statusPort}/status`, { signal: AbortSignal.timeout(2_000) });
    if (!res.ok) throw new Error(`status answered ${res.status}`);
    return (await res.json()) as AgentStatus;
  };
  const poll = async <T>(what: string, timeoutMs: number, everyMs: number, check: (s: AgentStatus) => T | undefined): Promise<T> => {
    const deadline = performance.now() + timeoutMs;
    let last = '';
    while (performance.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`agent exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}: ${tail.slice(-5).join(' | ')}`);
      }
      try {
        const got = check(await status());
        if (got !== undefined) return got;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
    throw new Error(`agent: no ${what} within ${timeoutMs} ms${last ? ` (last error: ${last})` : ''}: ${tail.slice(-3).join(' | ')}`);
  };

  return {
    pid: child.pid ?? -1,
    logFile,
    ready: (timeoutMs) => poll('ready', timeoutMs, 20, (s) => (s.ready ? performance.now() - spawnedAt : undefined)),
    status,
    settled: (timeoutMs) => poll('settled state', timeoutMs, 50, (s) => (s.ready && s.pending === 0 && s.watermark >= s.lastSeq ? s : undefined)),
    logTail: () => tail.join('\n'),
    async stop() {
      const started = performance.now();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => killTree(child.pid!, 'SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await new Promise<void>((done) => log.end(() => done()));
      return { code: child.exitCode, signal: child.signalCode, ms: (exitedAt ?? performance.now()) - started };
    },
  };
}
