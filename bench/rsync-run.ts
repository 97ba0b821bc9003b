// The rsync baselines: a one-shot `rsync -a` of the tree over ssh, and a naive
// loop of full-tree `rsync -a --delete` every 300 ms. Each run opens its own ssh
// connection, as a script calling rsync would.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { remote, rshCommand, type SshTarget } from './ssh-target.ts';

export interface RsyncResult {
  ms: number;
  code: number | null;
  /** "Total bytes sent" from --stats, when rsync got that far */
  sentBytes?: number;
  stderr: string;
  timedOut: boolean;
}

export interface RsyncOptions {
  delete?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** `rsync -a [--delete] --stats src/ user@host:dst/` over ssh; resolves when rsync exits. */
export function rsyncOnce(src: string, dst: string, target: SshTarget, options: RsyncOptions = {}): Promise<RsyncResult> {
  const args = ['-a', '--stats', '-e', rshCommand(target), ...(options.delete ? ['--delete'] : []), src.endsWith('/') ? src : src + '/', remote(target, dst)];
  const started = performance.now();
  const child = spawn('rsync', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
  let timedOut = false;
  // SIGTERM first: rsync then closes its ssh session cleanly, and the remote shell is not cut mid-way.
  const stop = (): void => {
    child.kill('SIGTERM');
    setTimeout(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'), 3_000).unref();
  };
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, options.timeoutMs ?? 300_000);
  const abort = (): void => stop();
  options.signal?.addEventListener('abort', abort, { once: true });
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', abort);
      const sent = /Total bytes sent: ([\d,.]+)/.exec(stdout)?.[1];
      resolve({
        ms: performance.now() - started,
        code,
        ...(sent !== undefined ? { sentBytes: Number(sent.replace(/[,.]/g, '')) } : {}),
        stderr: stderr.trim(),
        timedOut,
      });
    });
  });
}

export interface RsyncLoop {
  runs(): number;
  failures(): number;
  stop(): Promise<void>;
}

/** Full-tree `rsync -a --delete` over and over, `intervalMs` apart, until stopped or `maxMs` passes. */
export function startRsyncLoop(src: string, dst: string, target: SshTarget, intervalMs = 300, maxMs = 30 * 60_000): RsyncLoop {
  const controller = new AbortController();
  let runs = 0;
  let failures = 0;
  const deadline = performance.now() + maxMs;
  const loop = (async () => {
    while (!controller.signal.aborted && performance.now() < deadline) {
      const r = await rsyncOnce(src, dst, target, { delete: true, timeoutMs: 120_000, signal: controller.signal });
      runs++;
      if (r.code !== 0 && !controller.signal.aborted) failures++;
      await sleep(intervalMs, undefined, { signal: controller.signal }).catch(() => undefined);
    }
  })();
  return {
    runs: () => runs,
    failures: () => failures,
    async stop() {
      controller.abort();
      await loop;
    },
  };
}
