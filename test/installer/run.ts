// Runs `standby` (cli.ts on the pinned Node) as a child process, bounded in time.
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NODE = join(REPO, 'node_modules', '.bin', 'node');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cmd` to its end (bounded by `timeout`); with `input`, writes it to the child's stdin and closes it (else stdin stays open). */
export function run(cmd: string, args: string[], env: Record<string, string> = {}, timeout = 60_000, input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { cwd: REPO, timeout, maxBuffer: 16 << 20, env: { ...process.env, NO_COLOR: '1', ...env } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) {
      child.stdin?.on('error', () => {}); // a child that exits without reading it
      child.stdin?.end(input);
    }
  });
}

export function standby(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return run(NODE, ['cli.ts', ...args], env);
}
