// lsyncd (the Debian package) as the reference system: `default.rsyncssh` over
// the same sshd, `delay` seconds of batching, run with -nodaemon from a Lua config
// written here. Ready once its startup rsync of the whole tree has finished.
import { spawn } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SshTarget } from './ssh-target.ts';

export interface LsyncdOptions {
  src: string;
  dst: string;
  target: SshTarget;
  /** lsyncd's batching delay in seconds (default 1) */
  delayS?: number;
  /** a folder for the config and the log */
  dir: string;
}

export interface Lsyncd {
  pid: number;
  logFile: string;
  /** resolves when the startup sync is done; rejects on exit or after `timeoutMs` */
  ready(timeoutMs: number): Promise<void>;
  /** rsync runs it has started, counted from its log */
  rsyncCalls(): number;
  stop(): Promise<void>;
}

function lua(s: string): string {
  return JSON.stringify(s); // a JSON string is a valid Lua string literal for these paths
}

export function startLsyncd(o: LsyncdOptions): Lsyncd {
  const config = join(o.dir, 'lsyncd.lua');
  const logFile = join(o.dir, 'lsyncd.log');
  const t = o.target;
  const sshOptions: string[] = [];
  for (let i = 0; i + 1 < t.sshOptions.length; i += 2) {
    const [k, v] = (t.sshOptions[i + 1] ?? '').split('=');
    if (k && v !== undefined) sshOptions.push(`${k} = ${lua(v)}`);
  }
  writeFileSync(
    config,
    `settings { nodaemon = true, insist = false }
sync {
  default.rsyncssh,
  source = ${lua(o.src)},
  host = ${lua(`${t.user}@${t.host}`)},
  targetdir = ${lua(o.dst)},
  delay = ${o.delayS ?? 1},
  rsync = { archive = true },
  ssh = { port = ${t.port}, identityFile = ${lua(t.identityFile)}, options = { ${sshOptions.join(', ')} } },
}
`,
  );
  const child = spawn('lsyncd', ['-nodaemon', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(logFile);
  let started = false;
  let calls = 0;
  let tail = '';
  const readyWaiters: Array<() => void> = [];
  const onText = (d: Buffer): void => {
    log.write(d);
    const text = tail + d.toString();
    const lines = text.split('\n');
    tail = lines.pop() ?? '';
    for (const line of lines) {
      if (line.includes('Calling rsync')) calls++;
      if (!started && /Startup of .* finished/.test(line)) {
        started = true;
        for (const w of readyWaiters.splice(0)) w();
      }
    }
  };
  child.stdout.on('data', onText);
  child.stderr.on('data', onText);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  return {
    pid: child.pid ?? -1,
    logFile,
    ready(timeoutMs) {
      if (started) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`lsyncd startup sync not done within ${timeoutMs} ms (log: ${logFile})`)), timeoutMs);
        readyWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
        void exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`lsyncd exited ${child.exitCode} before its startup sync was done (log: ${logFile})`));
        });
      });
    },
    rsyncCalls: () => calls,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await new Promise<void>((resolve) => log.end(() => resolve()));
    },
  };
}
