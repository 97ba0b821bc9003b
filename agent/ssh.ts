// The SSH side of sync: the ssh command rsync runs (-e), and one long-lived
// ControlMaster connection the agent owns, so a pass does not pay a handshake.
// If the master is down, ssh falls back to a direct connection, so passes never
// depend on it; the agent restarts it when a pass next needs the link. The check
// before a full pass waits for a master just started (whenUp): its sessions
// would otherwise each make a connection of their own.
// Every ssh the agent starts dies with it, SIGKILL included (parent-death.ts),
// so a killed agent leaves no master and no session on the standby.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, watch, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../core/log.ts';
import { quoteWord } from '../protocol/command-words.ts';
import type { StandbyTarget } from '../config/agent.ts';
import { dieWithParent, dieWithParentPrefix } from '../core/parent-death.ts';
import { cipherArgs } from './ssh-ciphers.ts';

/** A control socket path short enough for a unix socket (108 bytes); `session` tells apart two sessions with one host (a target given up and its successor). */
export function controlPath(target: StandbyTarget, runDir: string | undefined, session = ''): string {
  const id = createHash('sha256').update(`${target.user}@${target.host}:${target.port}:${process.pid}${session ? `:${session}` : ''}`).digest('hex').slice(0, 12);
  const dir = runDir ?? join(tmpdir(), 'standby-ssh');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return join(dir, `cm-${id}`);
}

/** ssh's ConnectTimeout: a connection not made within it fails (so does a master's). */
export const CONNECT_TIMEOUT_S = 10;

/** ssh arguments (without the program and the destination). User options come first: ssh keeps the first value it sees. */
export function sshArgs(target: StandbyTarget, control?: string): string[] {
  const args = [...target.sshOptions, '-p', String(target.port)];
  if (target.identityFile) args.push('-i', target.identityFile, '-o', 'IdentitiesOnly=yes');
  args.push(
    '-o', 'BatchMode=yes', // never prompt: a daemon has no one to answer
    '-o', `ConnectTimeout=${CONNECT_TIMEOUT_S}`,
    '-o', 'ServerAliveInterval=5', // a dead link fails within ~15 s instead of hanging
    '-o', 'ServerAliveCountMax=3',
    ...cipherArgs(), // AES-GCM first where the CPU has AES instructions (ssh-ciphers.ts); a Ciphers in sshOptions wins
  );
  if (control) args.push('-o', `ControlPath=${control}`, '-o', 'ControlMaster=no');
  return args;
}

export function destination(target: StandbyTarget): string {
  return `${target.user}@${target.host}`;
}

/** rsync's spelling of a folder on the standby: user@host:/path/ */
export function remoteDir(target: StandbyTarget, path: string): string {
  return `${destination(target)}:${path.replace(/\/?$/, '/')}`;
}

/** The -e value for rsync. */
export function rsyncShell(target: StandbyTarget, control?: string): string {
  // quoted for the shell-like splitting rsync applies to -e; the ssh dies with its rsync
  return [...dieWithParentPrefix(), 'ssh', ...sshArgs(target, control)].map(quoteWord).join(' ');
}

/**
 * Runs one command on the standby (through the control master when it is up);
 * `env` goes before it as assignments (names unquoted, values quoted).
 * Resolves with its exit code and the tails of its output; a timeout kills it
 * and reports code null.
 */
export function runRemote(target: StandbyTarget, control: string | undefined, command: string[], timeoutMs: number, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const line = [...Object.entries(env).map(([k, v]) => `${k}=${quoteWord(v)}`), ...command.map(quoteWord)].join(' ');
  return new Promise((resolve, reject) => {
    const [program, args] = dieWithParent('ssh', [...sshArgs(target, control), destination(target), line]);
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => {
      stdout = (stdout + d.toString()).slice(-2000);
    });
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr: stderr.trim() }));
  });
}

/** Owns the ControlMaster process: start when wanted, restart after it dies, close on shutdown. */
export class ControlMaster {
  readonly path: string;
  #target: StandbyTarget;
  #log: Logger;
  #child: ChildProcess | undefined;
  /** the running master's: true once it listens on its socket, false if it exits first */
  #up: Promise<boolean> | undefined;
  #closed = false;

  constructor(target: StandbyTarget, runDir: string | undefined, log: Logger, session = '') {
    this.#target = target;
    this.path = controlPath(target, runDir, session);
    this.#log = log;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts the master if it is not running. Returns at once: only the check before a full pass waits for it (whenUp). */
  ensure(): void {
    if (this.#closed || this.#child) return;
    rmSync(this.path, { force: true }); // a stale socket from a killed agent would make ssh refuse to listen
    // ControlPersist=no: the master stays in the foreground as this process's child (a persisting one forks away, out of reach of parent-death)
    const [program, args] = dieWithParent('ssh', [...sshArgs(this.#target), '-M', '-N', '-o', `ControlPath=${this.path}`, '-o', 'ControlPersist=no', destination(this.#target)]);
    const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    this.#up = this.#listening(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    child.once('error', (err) => {
      this.#log.warn({ err }, 'ssh control master could not start');
    });
    child.once('exit', (code, signal) => {
      if (this.#child === child) this.#child = undefined;
      if (!this.#closed) this.#log.debug({ code, signal, stderr: stderr.trim() }, 'ssh control master exited');
    });
  }

  /**
   * Resolves true once the running master listens on its socket (ssh sessions then share its
   * connection), false when none runs, it exits first, or `timeoutMs` passes.
   */
  async whenUp(timeoutMs: number): Promise<boolean> {
    const up = this.#up;
    if (!this.#child || !up) return false;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([up, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Whether `child` comes to listen on the socket (ssh makes it once logged in), told by a watch on its folder, not by polling. */
  #listening(child: ChildProcess): Promise<boolean> {
    return new Promise((resolve) => {
      let watcher: FSWatcher | undefined;
      const done = (up: boolean): void => {
        watcher?.close();
        child.off('exit', gone);
        resolve(up);
      };
      const gone = (): void => done(false);
      child.once('exit', gone);
      const name = basename(this.path);
      try {
        watcher = watch(dirname(this.path), (_event, file) => {
          if (file === name && existsSync(this.path)) done(true);
        });
        watcher.on('error', () => done(existsSync(this.path)));
      } catch {
        done(false); // no watch to be had (inotify watches exhausted): nobody waits for the master
        return;
      }
      if (existsSync(this.path)) done(true); // made before the watch was set
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const child = this.#child;
    if (!child) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    rmSync(this.path, { force: true });
  }
}
