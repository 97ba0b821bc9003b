// Watches the sync roots and reports each change as (root, relative path,
// kind). It reports, it does not decide: errors go to the owner, which answers
// with a full reconcile.
//
// One inotify watch per folder through Node's fs.watch, the same primitive
// chokidar's native backend sets, without chokidar's per-entry stat tree: on a
// 100,000-file workspace chokidar 6 held over 128 MB of live heap during its
// first scan and left the process at 370-420 MB resident, against about 130 MB
// and a tenth of the scan time here (docs/benchmarks.md). The agent does not
// need stats: rsync compares, the watcher only names what to look at.
import { lstatSync, readdirSync, watch, type Dirent, type FSWatcher } from 'node:fs';
import { basename, join } from 'node:path';
import type { ChangeKind } from './change-set.ts';

export interface WatchHandlers {
  /** `entries`: for an unlinkDir, what the folder held as last seen, itself included (an upper bound; undefined when not known) */
  change(root: number, path: string, kind: ChangeKind, entries?: number): void;
  error(err: Error): void;
}

export interface RootWatch {
  close(): Promise<void>;
  /** folders watched (one inotify watch each) */
  readonly folders: number;
}

/**
 * A watched folder: its watch, the inode it was set on, the watched folders
 * under it by name, and how many entries it may hold: what it listed plus every
 * entry that appeared since. Nothing is taken off when one goes (a file made and
 * deleted at once is seen gone twice and never seen made), so the count is never
 * below the truth, and what a folder that goes held is known without asking the
 * standby (sync-pass.ts weighs it against the mass-deletion guard). A count run
 * well past what was listed is listed again.
 */
interface Folder {
  watcher: FSWatcher;
  ino: number;
  children: Set<string>;
  entries: number;
  listed: number;
}

/** A folder whose count passed twice what it listed, plus this, is listed again. */
const RECOUNT_SLACK = 256;

const GONE_MAX = 10_000;

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i === -1 ? '' : rel.slice(0, i);
}

function childOf(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

function lstatOrUndefined(path: string): { isDir: boolean; ino: number } | undefined {
  try {
    const s = lstatSync(path);
    return { isDir: s.isDirectory(), ino: s.ino };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * Watches one root. Resolves once every folder under it has its watch, so a
 * reconcile started after it misses nothing. Each folder is watched before it
 * is listed: an entry made between the two is both listed and reported.
 */
export async function watchRoot(
  root: number,
  dir: string,
  excluded: (relPath: string, isDir: boolean | undefined) => boolean,
  handlers: WatchHandlers,
): Promise<RootWatch> {
  const folders = new Map<string, Folder>();
  // folders whose own watch saw them go, until the parent's event names them: what they held
  const gone = new Map<string, number>();
  let closed = false;

  const fail = (err: unknown, rel: string): void => {
    const e = err instanceof Error ? err : new Error(String(err));
    if (!e.message.includes(dir)) e.message = `${e.message} (watching ${join(dir, rel)})`;
    handlers.error(e);
  };

  /** The entries under `rel` as counted, the folder itself included. */
  const held = (rel: string): number => {
    const f = folders.get(rel);
    if (!f) return 1;
    let n = 1 + f.entries;
    for (const name of f.children) n += held(childOf(rel, name)) - 1; // each child folder is one of f's entries already
    return n;
  };

  /** The entries of the folder `rel`; undefined when it is gone. */
  const list = (rel: string): Dirent[] | undefined => {
    try {
      return readdirSync(rel === '' ? dir : join(dir, rel), { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') fail(err, rel);
      return undefined;
    }
  };

  /** An entry appeared in the watched folder `rel` (or was renamed over one there). */
  const appeared = (rel: string): void => {
    const f = folders.get(rel);
    if (!f) return;
    f.entries++;
    if (f.entries > 2 * f.listed + RECOUNT_SLACK) {
      // counted before the listing, so an entry made meanwhile is in it or still to come as an event: never low
      const now = list(rel);
      if (!now) return;
      let kept = 0;
      for (const e of now) if (!excluded(childOf(rel, e.name), e.isDirectory())) kept++;
      f.entries = f.listed = kept;
    }
  };

  const unwatch = (rel: string): void => {
    const f = folders.get(rel);
    if (!f) return;
    for (const name of f.children) unwatch(childOf(rel, name));
    f.watcher.close();
    folders.delete(rel);
    if (rel !== '') folders.get(parentOf(rel))?.children.delete(rel.slice(rel.lastIndexOf('/') + 1));
  };

  /** Watches `start` and every folder below it; `report` names each entry found (for folders that appeared after the first scan). */
  const scan = (start: string, report: boolean): void => {
    const stack = [start];
    for (let rel = stack.pop(); rel !== undefined; rel = stack.pop()) {
      const abs = rel === '' ? dir : join(dir, rel);
      const st = lstatOrUndefined(abs);
      if (!st?.isDir) continue; // gone, or replaced by a file, since it was listed
      let watcher: FSWatcher;
      try {
        watcher = watch(abs, { persistent: true }, (event, name) => onEvent(rel, event, name));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') continue;
        fail(err, rel);
        continue;
      }
      watcher.on('error', (err) => fail(err, rel));
      const folder: Folder = { watcher, ino: st.ino, children: new Set(), entries: 0, listed: 0 };
      folders.set(rel, folder);
      if (rel !== '') folders.get(parentOf(rel))?.children.add(rel.slice(rel.lastIndexOf('/') + 1));
      const entries = list(rel);
      if (!entries) continue;
      for (const e of entries) {
        const path = childOf(rel, e.name);
        const isDir = e.isDirectory(); // a symlink to a folder is a link: never followed
        if (excluded(path, isDir)) continue;
        folder.listed++;
        if (report) handlers.change(root, path, isDir ? 'addDir' : 'add');
        if (isDir) stack.push(path);
      }
      folder.entries = folder.listed;
    }
  };

  const onEvent = (rel: string, event: string, name: string | Buffer | null): void => {
    if (closed) return;
    if (name === null || name === '') {
      // the kernel did not say what changed (not expected on Linux): let the owner reconcile
      fail(new Error(`inotify event without a name in ${join(dir, rel)}`), rel);
      return;
    }
    const path = childOf(rel, name.toString());
    try {
      onPath(rel, event, name.toString(), path);
    } catch (err) {
      fail(err, path); // lstat failed for another reason than absence (EACCES, EIO)
    }
  };

  const onPath = (rel: string, event: string, name: string, path: string): void => {
    const now = lstatOrUndefined(join(dir, path));
    if (now === undefined) {
      const here = rel === '' ? dir : join(dir, rel);
      const self = folders.get(rel);
      const selfGone = self !== undefined && lstatOrUndefined(here)?.ino !== self.ino;
      // A folder's own deletion or move comes as an event on its own watch that
      // names the folder itself (inotify gives no name, libuv puts in the
      // basename). The events for what it held come before it; the parent's
      // watch reports the folder's path.
      if (selfGone && name === basename(here)) {
        if (rel === '') {
          fail(new Error(`sync root ${dir} was removed or replaced: changes go unseen until the agent restarts`), rel);
          return;
        }
        const entries = held(rel);
        unwatch(rel);
        if (gone.size >= GONE_MAX) gone.clear(); // only a hint for the parent's event: keep it bounded
        gone.set(rel, entries);
        return;
      }
      if (excluded(path, undefined)) return;
      const watched = folders.has(path);
      const entries = watched ? held(path) : gone.get(path);
      const wasDir = watched || gone.delete(path);
      unwatch(path);
      // The same name on a folder that is still there is its own attribute change:
      // name the path without counting it as a deletion (rsync --delete-missing-args
      // still removes it if the standby has it).
      const selfNamed = !selfGone && name === basename(here);
      if (wasDir) handlers.change(root, path, 'unlinkDir', entries);
      else handlers.change(root, path, selfNamed ? 'change' : 'unlink');
      return;
    }
    if (excluded(path, now.isDir)) return;
    if (!now.isDir) {
      if (folders.has(path)) unwatch(path); // a folder replaced by a file
      else if (event !== 'change') appeared(rel);
      handlers.change(root, path, event === 'change' ? 'change' : 'add');
      return;
    }
    const known = folders.get(path);
    // The same folder: its mode, owner or times changed. Naming it would make rsync -r
    // compare all it holds; the folder's attributes ride along with the next change
    // inside it, or the periodic full reconcile.
    if (known && known.ino === now.ino) return;
    if (known) unwatch(path); // replaced by another folder of the same name
    else appeared(rel);
    handlers.change(root, path, 'addDir');
    scan(path, true);
  };

  try {
    scan('', false);
  } catch (err) {
    for (const rel of [...folders.keys()]) unwatch(rel);
    throw err;
  }
  return {
    get folders() {
      return folders.size;
    },
    async close() {
      closed = true;
      unwatch('');
    },
  };
}
