// Watches the sync roots with chokidar and reports each change as (root,
// relative path, kind). It reports, it does not decide: errors go to the
// owner, which answers with a full reconcile.
import { watch, type FSWatcher } from 'chokidar';
import { join, relative, sep } from 'node:path';
import type { ChangeKind } from './change-set.ts';

export interface WatchHandlers {
  change(root: number, path: string, kind: ChangeKind): void;
  error(err: Error): void;
}

export interface RootWatch {
  close(): Promise<void>;
}

/**
 * Watches one root. Resolves once the initial scan is done and every watch is
 * set, so a reconcile started after it misses nothing.
 */
export async function watchRoot(
  root: number,
  dir: string,
  excluded: (relPath: string, isDir: boolean | undefined) => boolean,
  handlers: WatchHandlers,
): Promise<RootWatch> {
  const toRel = (p: string): string => {
    const rel = relative(dir, p);
    return sep === '/' ? rel : rel.split(sep).join('/');
  };
  const watcher: FSWatcher = watch(dir, {
    ignoreInitial: true,
    followSymlinks: false, // a symlink is synced as a link, never followed
    atomic: false, // keep unlink+add as they are, and do not hide editor backup files rsync must send
    backend: 'native',
    ignored: (p, stats) => {
      const rel = toRel(p);
      return rel !== '' && excluded(rel, stats ? stats.isDirectory() : undefined);
    },
  });
  const on = (kind: ChangeKind) => (p: string) => {
    const rel = toRel(p);
    if (rel !== '' && !rel.startsWith('..')) handlers.change(root, rel, kind);
  };
  watcher.on('add', on('add'));
  watcher.on('change', on('change'));
  watcher.on('unlink', on('unlink'));
  watcher.on('addDir', on('addDir'));
  watcher.on('unlinkDir', on('unlinkDir'));
  // chokidar drops a change whose size and mtime match what it saw before (a same-size rewrite
  // with the mtime set back, as tar or cp -p do); the backend's raw event still names the file.
  watcher.on('raw', (event, name, details) => {
    const watchedPath = (details as { watchedPath?: unknown } | undefined)?.watchedPath;
    if (event !== 'change' || typeof name !== 'string' || name === '' || typeof watchedPath !== 'string') return;
    const rel = toRel(join(watchedPath, name));
    if (rel !== '' && !rel.startsWith('..') && !excluded(rel, undefined)) handlers.change(root, rel, 'change');
  });
  watcher.on('error', (err) => handlers.error(err instanceof Error ? err : new Error(String(err))));
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return { close: () => watcher.close() };
}
