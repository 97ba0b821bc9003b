// A flock(2) lock on a file, from Node without native modules: this process
// opens the file, and util-linux `flock` locks that open file description on
// the descriptor it inherits. A flock lock belongs to the open file
// description, so it stays held after the `flock` child exits, for as long as
// any process holds the description open: this one, and children given the
// descriptor (the receiver passes it to rsync, so a writer that outlives the
// receiver still holds the lock). It is released when the last of them
// closes it or dies, SIGKILL included.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { missingBinary } from '../core/errors.ts';

export type LockMode = 'shared' | 'exclusive';

export class FileLock {
  readonly path: string;
  readonly fd: number;
  #closed = false;

  constructor(path: string) {
    this.path = path;
    this.fd = openSync(path, 'a', 0o600);
  }

  /** Takes the lock, waiting at most waitMs (0: only if free now). Resolves false when it could not be had in time. */
  acquire(mode: LockMode, waitMs: number): Promise<boolean> {
    const args = [mode === 'shared' ? '-s' : '-x', ...(waitMs > 0 ? ['-w', (waitMs / 1000).toFixed(3)] : ['-n']), '-E', '75', '3'];
    return new Promise((resolve, reject) => {
      const child = spawn('flock', args, { stdio: ['ignore', 'ignore', 'pipe', this.fd] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-1000);
      });
      // flock keeps its own time; this only guards against a flock that never returns
      const guard = setTimeout(() => child.kill('SIGKILL'), waitMs + 5000);
      child.once('error', (err) => {
        clearTimeout(guard);
        const e = err as NodeJS.ErrnoException;
        reject(e.code === 'ENOENT' ? missingBinary('flock', 'util-linux', 'the standby', err) : err);
      });
      child.once('close', (code, signal) => {
        clearTimeout(guard);
        if (code === 0) resolve(true);
        else if (code === 75 || signal === 'SIGKILL') resolve(false);
        else reject(new Error(`flock ${args.join(' ')} on ${this.path} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
      });
    });
  }

  /** Closes this process's descriptor: the lock goes once no child holds it either. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.fd);
  }
}
