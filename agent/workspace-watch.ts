// Every sync root watched (watcher.ts), plus the barrier that tells sync-now
// when the watcher has read every event queued before a moment
// (watch-barrier.ts). The engine hears the changes and the errors; close()
// releases every watch.
import type { Logger } from '../core/log.ts';
import type { SyncRoot } from '../config/agent.ts';
import type { ChangeKind } from './change-set.ts';
import { excludeMatcher, outsideInclude } from './exclude.ts';
import { createWatchBarrier, type WatchBarrier } from './watch-barrier.ts';
import { watchRoot, type RootWatch } from './watcher.ts';

export interface WatchListener {
  /** `entries`: for an unlinkDir, what the folder held as the watcher last counted it (watcher.ts) */
  change(root: number, path: string, kind: ChangeKind, entries?: number): void;
  error(err: Error): void;
}

export class WorkspaceWatch {
  #roots: readonly Pick<SyncRoot, 'local' | 'include'>[];
  #excludes: readonly string[];
  #log: Logger;
  #watches: RootWatch[] = [];
  #barrier: WatchBarrier | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(roots: readonly Pick<SyncRoot, 'local' | 'include'>[], excludes: readonly string[], log: Logger) {
    this.#roots = roots;
    this.#excludes = excludes;
    this.#log = log;
  }

  /** Sets a watch on every root; false when close() came first (nothing is left watching). */
  async start(listener: WatchListener): Promise<boolean> {
    const excluded = excludeMatcher([...this.#excludes]);
    for (const [i, root] of this.#roots.entries()) {
      // a root with an include list (the editor's User folder): the rest of it is neither watched nor reported
      const { include } = root;
      const skip = include ? (path: string, isDir: boolean | undefined) => outsideInclude(include, path) || excluded(path, isDir) : excluded;
      const w = await watchRoot(i, root.local, skip, listener);
      if (this.#closed) {
        await w.close();
        return false;
      }
      this.#watches.push(w);
    }
    try {
      this.#barrier = createWatchBarrier();
    } catch (err) {
      this.#log.warn({ err }, 'no watch barrier (the temp folder is not writable?): a sync-now covers the writes the watcher has seen when it comes');
    }
    return true;
  }

  /**
   * Resolves once the watcher has read every event queued before the call (null), or with why it
   * cannot say within `ms` (a write that finished just before a sync-now may have its event unread);
   * undefined when there is no barrier to ask (not watching yet, or start() could not make one).
   */
  async caughtUp(ms: number): Promise<string | null | undefined> {
    return this.#barrier?.pass(ms);
  }

  /** Releases every watch; once (a second call waits for the first). */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= (async () => {
      await Promise.all(this.#watches.map((w) => w.close()));
      this.#barrier?.close();
    })();
    return this.#closing;
  }
}
