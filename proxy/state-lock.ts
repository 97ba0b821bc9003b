// One proxy per state folder: an exclusive flock(2) on <stateDir>/proxy.lock,
// held for the proxy's life and taken before anything in the folder is
// written. Node has no flock, so (as standby/file-lock.ts does on the standby)
// this process opens the file and util-linux `flock -n` locks that open file
// description on the descriptor it inherits; the lock stays held after the
// `flock` child exits, for as long as this process keeps the descriptor open
// (Node opens files close-on-exec, so no child of the proxy inherits it). It
// goes when the proxy closes it or dies, SIGKILL included: a stale pid file
// can never keep a proxy from starting. The holder's pid is written into the
// file only so the refusal can name it; the lock, not the pid, decides.
import { spawn } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { missingBinary, StandbyError } from '../core/errors.ts';

export const LOCK_FILE = 'proxy.lock';

export interface StateLock {
  readonly path: string;
  /** releases the lock (idempotent) */
  release(): void;
}

function flockNow(fd: number, path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', ['-x', '-n', '-E', '75', '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-1000);
    });
    child.once('error', (err) => {
      const e = err as NodeJS.ErrnoException;
      reject(e.code === 'ENOENT' ? missingBinary('flock', 'util-linux', 'the proxy', err) : err);
    });
    child.once('close', (code, signal) => {
      if (code === 0) resolve(true);
      else if (code === 75) resolve(false);
      else reject(new StandbyError('STANDBY_ERR_STATE_UNWRITABLE', `cannot lock ${path}: flock ended with ${signal ?? `exit ${code}`}: ${stderr.trim()}`, { path }));
    });
  });
}

/** Takes the state folder for this process, or throws STANDBY_ERR_ALREADY_RUNNING naming the proxy that holds it. */
export async function lockStateDir(stateDir: string): Promise<StateLock> {
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_STATE_UNWRITABLE', `cannot create the state folder ${stateDir}: ${(err as Error).message}; set "stateDir" to a folder the proxy can write`, { dir: stateDir }, { cause: err });
  }
  const path = join(stateDir, LOCK_FILE);
  let fd: number;
  try {
    // 'a+': created if missing, never truncated before the lock is ours (the holder's pid stays readable)
    fd = openSync(path, 'a+', 0o600);
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_STATE_UNWRITABLE', `cannot open ${path}: ${(err as Error).message}; set "stateDir" to a folder the proxy can write`, { path }, { cause: err });
  }
  let locked: boolean;
  try {
    locked = await flockNow(fd, path);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  if (!locked) {
    closeSync(fd);
    const holder = readFileSync(path, 'utf8').trim();
    const who = /^\d+$/.test(holder) ? `pid ${holder}` : 'a process that has not written its pid yet';
    throw new StandbyError(
      'STANDBY_ERR_ALREADY_RUNNING',
      `another proxy (${who}) runs on the state folder ${stateDir} (it holds ${path}): one proxy per state folder. Stop that one first (systemctl stop standby-proxy, or kill ${/^\d+$/.test(holder) ? holder : 'it'}), or give this one a stateDir of its own. Nothing was written`,
      { stateDir, ...(/^\d+$/.test(holder) ? { pid: Number(holder) } : {}) },
    );
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`);
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      closeSync(fd);
    },
  };
}
