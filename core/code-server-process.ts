// code-server's flags, and a code-server running as a child of this process
// on Node 24: the tests' (test/fixtures/code-server.ts), and the local
// provider's hosts' in `standby demo --server code-server`
// (proxy/provision/local.ts); the installer's unit runs the same flags
// (installer/code-server-unit.ts). Here, in core, as the proxy's local
// provider and the installer both need them.
// It is a tree, not a process: entry.js forks the server proper, which starts
// the extension host, the pty host and the file watcher. kill() signals the
// whole tree (a crash of the host kills all of it), close() kills it and
// waits until every process of it is gone. It dies with this process
// (core/parent-death.ts; the forks end when their parent's IPC channel closes).
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StandbyError } from './errors.ts';
import { freePort } from './free-port.ts';
import { dieWithParent } from './parent-death.ts';
import { descendants, processAlive } from './process-tree.ts';

export interface CodeServerArgsOptions {
  host: string;
  port: number;
  userDataDir: string;
  extensionsDir: string;
  /** the folder it opens (the workspace) */
  folder: string;
}

/** code-server's flags: no auth of its own (the proxy's login, when any, is in front), no telemetry, no update check, no trust prompt. */
export function codeServerArgs(o: CodeServerArgsOptions): string[] {
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  return [
    '--auth', 'none',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--bind-addr', `${host}:${o.port}`,
    '--user-data-dir', o.userDataDir,
    '--extensions-dir', o.extensionsDir,
    o.folder,
  ];
}

export interface CodeServerProcessOptions {
  /** out/node/entry.js of an install (ensureCodeServer) */
  entry: string;
  /** the folder it opens */
  folder: string;
  userDataDir: string;
  extensionsDir: string;
  /** default 127.0.0.1 */
  host?: string;
  /** default a free one */
  port?: number;
  /** Node 24 (default: the Node running this) */
  node?: string;
  /** how long /healthz may take to answer, ms (default 30000; it answers in under 1 s on an idle machine) */
  startTimeoutMs?: number;
  /**
   * what it inherits (default process.env, with XDG_CONFIG_HOME and XDG_DATA_HOME beside userDataDir:
   * code-server writes its config.yaml and coder.json there, never into the home of whoever runs it)
   */
  env?: NodeJS.ProcessEnv;
  /** the command it runs under, given its own (default none): e.g. a mount namespace of its own; the wrapper must exec it */
  wrap?: (cmd: string, args: string[]) => [string, string[]];
  /** what the error of a failed start says it is (default "code-server") */
  name?: string;
}

export interface CodeServerProcess {
  url: string;
  port: number;
  /** the top process (entry.js) */
  pid: number;
  userDataDir: string;
  extensionsDir: string;
  /** signals every process of the tree (default SIGKILL), as a host's crash would */
  kill(signal?: NodeJS.Signals): void;
  /** whether its top process still runs */
  running(): boolean;
  /** kills the whole tree (after a SIGCONT, should it be stopped) and resolves once none of it runs */
  close(): Promise<void>;
}

/** Starts code-server and resolves once its /healthz answers 200. */
export async function startCodeServerProcess(o: CodeServerProcessOptions): Promise<CodeServerProcess> {
  const host = o.host ?? '127.0.0.1';
  const port = o.port ?? (await freePort(host));
  // code-server makes neither folder's parent
  mkdirSync(o.userDataDir, { recursive: true });
  mkdirSync(o.extensionsDir, { recursive: true });
  const args = codeServerArgs({ host, port, userDataDir: o.userDataDir, extensionsDir: o.extensionsDir, folder: o.folder });
  const [node, nodeArgs] = dieWithParent(o.node ?? process.execPath, [o.entry, ...args]);
  const [cmd, rest] = o.wrap ? o.wrap(node, nodeArgs) : [node, nodeArgs];
  const env = o.env ?? { ...process.env, XDG_CONFIG_HOME: join(dirname(o.userDataDir), 'xdg-config'), XDG_DATA_HOME: join(dirname(o.userDataDir), 'xdg-data') };
  const child = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  child.once('error', (e) => (out += `${e.message}\n`));
  child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  // every process seen in the tree, by pid and start time (a pid is reused): a fork outlives its parent's
  // SIGKILL for a moment, reparented, and must be found without its parent
  const seen = new Map<number, string>();
  const tree = (): number[] => {
    if (child.pid !== undefined && running()) {
      for (const pid of descendants(child.pid)) {
        const start = startOf(pid);
        if (start !== undefined && !seen.has(pid)) seen.set(pid, start);
      }
    }
    return [...seen.keys()].filter((pid) => startOf(pid) === seen.get(pid));
  };
  const signal = (sig: NodeJS.Signals): void => {
    for (const pid of tree()) {
      try {
        process.kill(pid, sig);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    }
  };
  const close = async (): Promise<void> => {
    signal('SIGCONT');
    signal('SIGKILL');
    await exited;
    // bounded: SIGKILLed processes end within milliseconds; pid 1 reaps the reparented ones
    const deadline = performance.now() + 10_000;
    for (;;) {
      const left = tree().filter((pid) => pid !== child.pid && processAlive(pid) && !zombie(pid));
      if (left.length === 0) return;
      if (performance.now() > deadline) throw new Error(`code-server's processes ${left.join(', ')} still run 10 s after SIGKILL`);
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      await sleep(20);
    }
  };
  const timeoutMs = o.startTimeoutMs ?? 30_000;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    tree();
    if (!running() || performance.now() > deadline) {
      const how = !running() ? `exited (${child.exitCode ?? child.signalCode})` : `did not answer /healthz within ${timeoutMs} ms`;
      await close();
      throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `${o.name ?? 'code-server'} (${o.entry}) on ${host}:${port} ${how}: ${out.trim().slice(-800) || 'no output'}`, { entry: o.entry, host, port });
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  return {
    url,
    port,
    pid: child.pid!,
    userDataDir: o.userDataDir,
    extensionsDir: o.extensionsDir,
    kill: (sig = 'SIGKILL') => signal(sig),
    running,
    close,
  };
}

/** A process's start time (clock ticks since boot): with its pid, it names one process; undefined when it is gone. */
function startOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the process has ended and waits to be reaped (it holds no port, no file, no CPU). */
function zombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] === 'Z';
  } catch {
    return true; // gone
  }
}
