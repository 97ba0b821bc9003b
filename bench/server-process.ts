// A server a benchmark runs in its own process (HAProxy, nginx, a proxy under
// test), optionally pinned to one CPU with taskset, its output kept in memory
// for error messages and for cases that read its log lines as they come.
// stop() ends it and every process it started (nginx's worker), SIGTERM first.
import { spawn, type ChildProcess } from 'node:child_process';
import { descendants } from '../core/process-tree.ts';
import { exitOf, waitFor } from '../test/fixtures/wait-for.ts';

export interface ServerProcessOptions {
  /** pin it (and what it starts) to this CPU with taskset */
  cpu?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** called with each line it prints (stdout or stderr) and performance.now() of its arrival */
  onLine?(line: string, at: number): void;
}

export interface ServerProcess {
  name: string;
  pid: number;
  child: ChildProcess;
  exited: Promise<void>;
  /** whether it is still running */
  alive(): boolean;
  /** its last lines of output */
  tail(): string;
  /** ends it: SIGTERM, SIGKILL after `graceMs`; then any process it left behind */
  stop(graceMs?: number): Promise<void>;
}

/** The command that runs `cmd args` pinned to `cpu` (or as it is). */
export function pinned(cpu: number | undefined, cmd: string, args: string[]): [string, string[]] {
  return cpu === undefined ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]];
}

export function startServerProcess(name: string, cmd: string, args: string[], o: ServerProcessOptions = {}): ServerProcess {
  const [file, argv] = pinned(o.cpu, cmd, args); // taskset execs the command: the pid stays the server's
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env, cwd: o.cwd });
  let lines: string[] = [];
  let partial = { out: '', err: '' };
  const keep = (which: 'out' | 'err') => (d: Buffer): void => {
    const at = performance.now();
    const parts = (partial[which] + d.toString()).split('\n');
    partial[which] = parts.pop() ?? '';
    for (const line of parts) {
      if (!line) continue;
      o.onLine?.(line, at);
      lines.push(line);
    }
    if (lines.length > 200) lines = lines.slice(-50);
  };
  child.stdout!.on('data', keep('out'));
  child.stderr!.on('data', keep('err'));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', (err) => lines.push(`spawn failed: ${err.message}`));
  const alive = (): boolean => child.exitCode === null && child.signalCode === null && child.pid !== undefined;
  return {
    name,
    pid: child.pid ?? -1,
    child,
    exited,
    alive,
    tail: () => [...lines.slice(-8), partial.out, partial.err].filter(Boolean).join(' | '),
    async stop(graceMs = 5_000) {
      if (!alive()) return;
      const family = descendants(child.pid!).slice(1);
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      for (const pid of family) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone with its parent
        }
      }
    },
  };
}

/** Waits until GET `url` answers with `body` (or any 2xx when body is undefined); fails at once when the process exits. */
async function waitForAnswer(server: ServerProcess, url: string, body?: string, timeoutMs = 15_000): Promise<void> {
  try {
    await waitFor(`${server.name} to answer ${url}`, async () => {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      const text = await res.text();
      if (res.ok && (body === undefined || text === body)) return true;
      throw new Error(`HTTP ${res.status} ${text.slice(0, 80)}`);
    }, { timeoutMs, failIf: () => exitOf(server.name, server.child) });
  } catch (err) {
    throw new Error(`${(err as Error).message}; its output: ${server.tail()}`);
  }
}

/** A server process answering on 127.0.0.1:port (GET `path`, /healthz by default, with `body` if given): started, waited for, or stopped again if it never answers. */
export interface AnsweringServer {
  url: string;
  process: ServerProcess;
  stop(): Promise<void>;
}

export async function startAnswering(proc: ServerProcess, port: number, path = '/healthz', body?: string): Promise<AnsweringServer> {
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForAnswer(proc, `${url}${path}`, body);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { url, process: proc, stop: () => proc.stop() };
}
