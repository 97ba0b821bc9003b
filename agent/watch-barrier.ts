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
import { mkdtempSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface WatchBarrier {
  /**
   * Resolves null once every watch event queued before the call has been
   * delivered, or why that could not be established (timeout, a broken watch).
   */
  pass(timeoutMs: number): Promise<string | null>;
  close(): void;
}

export function createWatchBarrier(parent = tmpdir()): WatchBarrier {
  const dir = mkdtempSync(join(parent, 'standby-barrier-'));
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
