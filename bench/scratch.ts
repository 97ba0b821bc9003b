// Scratch folders and child processes of a benchmark run, cleaned up even when
// the run is interrupted: cases make their folders here, and the runner calls
// `onInterrupt()` once, so Ctrl-C or SIGTERM stops every process the run started
// (SIGTERM first, so remote shells can release what they hold, then SIGKILL)
// and removes every folder before exiting.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { descendants } from '../core/process-tree.ts';
import { pidsWithMarker } from '../test/fixtures/process-tree.ts';

const folders = new Set<string>();

/** A new folder under the system's temp folder, removed by `removeScratch` or on interrupt. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  folders.add(dir);
  return dir;
}

/** Registers a folder someone else made (the sshd fixture's) for removal on interrupt. */
export function removeOnInterrupt(dir: string): void {
  folders.add(dir);
}

export function removeScratch(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  folders.delete(dir);
}

/** Signals pids gently, then for good after `graceMs`. */
export async function terminate(pids: number[], graceMs = 2_000): Promise<void> {
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = performance.now() + graceMs;
  while (pids.some(alive) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const pid of pids.filter(alive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export function onInterrupt(): void {
  let done = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (done) return;
    done = true;
    process.stderr.write(`bench: ${signal}: stopping every process of this run and removing its folders\n`);
    // Children of this run, and what left their tree but still names one of its folders (an ssh ControlMaster).
    const pids = [...new Set([...descendants(process.pid).reverse(), ...[...folders].flatMap(pidsWithMarker)])].filter((p) => p !== process.pid);
    void terminate(pids).finally(() => {
      for (const dir of folders) rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
