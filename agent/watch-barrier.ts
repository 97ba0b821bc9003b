// "Has the watcher seen every write made before now?" A final pass (planned
// failover, sync-now) must cover writes that finished a moment before it was
// asked for, whose inotify events may still sit in the kernel's queue, or in
// the same poll round as the request, unread.
//
// Every fs.watch of a process shares libuv's one inotify descriptor, and the
// kernel queues its events in the order they happen. So the barrier writes a
// file in a private folder it watches, outside the workspace: when that
// file's event arrives, every event queued before it (the workspace writes
// that finished before the barrier was written) has been delivered, and the
// watcher records changes synchronously in its callback.
//
// The folder's name carries the agent's pid: an agent killed with SIGKILL
// (a GPU's death, in tests and for real) cannot remove its own, so the next
// barrier made in the same parent removes those whose process is gone.
import { mkdtempSync, readdirSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive } from '../core/process-tree.ts';

export interface WatchBarrier {
  /**
   * Resolves null once every watch event queued before the call has been
   * delivered, or why that could not be established (timeout, a broken watch).
   */
  pass(timeoutMs: number): Promise<string | null>;
  close(): void;
}

const PREFIX = 'standby-barrier-';

/** Removes the barrier folders in `parent` left by processes that are gone (killed before their close()). */
function sweepOrphans(parent: string): void {
  let entries: string[];
  try {
    entries = readdirSync(parent);
  } catch {
    return; // mkdtempSync below names the problem
  }
  for (const entry of entries) {
    const pid = /^standby-barrier-(\d+)-/.exec(entry)?.[1];
    if (pid !== undefined && Number(pid) !== process.pid && !processAlive(Number(pid))) rmSync(join(parent, entry), { recursive: true, force: true });
  }
}

export function createWatchBarrier(parent = tmpdir()): WatchBarrier {
  sweepOrphans(parent);
  const dir = mkdtempSync(join(parent, `${PREFIX}${process.pid}-`));
  const waiting = new Map<string, (why: string | null) => void>();
  let watcher: FSWatcher;
  try {
    watcher = watch(dir, { persistent: false }, (_event, name) => {
      if (name !== null) waiting.get(name.toString())?.(null);
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  watcher.on('error', (err) => {
    for (const finish of [...waiting.values()]) finish(`the barrier's watch on ${dir} failed: ${err.message}`);
  });
  let n = 0;
  return {
    pass(timeoutMs) {
      const name = `b-${++n}`;
      return new Promise((resolve) => {
        const finish = (why: string | null) => {
          clearTimeout(timer);
          waiting.delete(name);
          rmSync(join(dir, name), { force: true });
          resolve(why);
        };
        const timer = setTimeout(() => finish(`no event for ${join(dir, name)} within ${timeoutMs} ms`), timeoutMs);
        waiting.set(name, finish);
        try {
          writeFileSync(join(dir, name), '');
        } catch (err) {
          finish(`could not write ${join(dir, name)}: ${(err as Error).message}`);
        }
      });
    },
    close() {
      for (const finish of [...waiting.values()]) finish('closed');
      watcher.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
