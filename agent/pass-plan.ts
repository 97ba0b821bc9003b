// Decides the shape of an incremental pass: which paths rsync is given.
// A pass names exactly the changed paths, with one saving: a folder created in
// this batch is sent whole (rsync recurses into it), so a burst of files in a
// new folder costs one entry, not thousands, and nothing there needs a content
// comparison since the standby has no old copy. Two forms:
// - a list for `--files-from` (created and changed paths), when nothing is
//   deleted, or when the batch is too big for rules;
// - filter rules, lsyncd's way, when something is deleted: rules that include
//   each named path with its parent folders and exclude everything else, so
//   `--delete` removes exactly the named paths that are gone, and sends the
//   ones that are here, in one run. Every rsync since 3.0 takes this;
//   `--delete-missing-args` is refused by hardened receivers (Debian 12's
//   3.2.7-1+deb12u6, upstream 3.4.3: RsyncProject/rsync#910).
import type { Change } from './change-set.ts';
import { isDeletion } from './change-set.ts';

export interface PassPlan {
  /** NUL-separated paths for rsync --files-from=- --from0 */
  list: Buffer;
  /** how many entries the list holds */
  entries: number;
  /** the list's paths, sorted */
  paths: string[];
  /** the deleted paths the rules name, sorted */
  deleted: string[];
  /** those that were a folder here at some point of the batch (the watcher said so): named with all under them */
  deletedFolders: string[];
  /** the others, files as far as this host saw: named alone (no `/***` rule: see `rules`) */
  deletedFiles: string[];
  /** NUL-separated filter rules for rsync --include-from=- --from0 (then --exclude='*' --delete): the deletions alone, each with all under it (for a dry run's count) */
  deletionRules: Buffer;
  /**
   * The rules for the whole pass: the deleted folders and the new folders
   * whole, the deleted files and the other listed paths alone. A `/***` rule
   * is a wildcard, matched against every entry of every folder the run reads
   * on both ends: 150 deleted files in a 100,000-file tree took 0.40-0.47 s
   * (a local dry run) named whole against 0.17-0.25 s alone. A deleted file
   * that is a non-empty folder on the standby (this host saw only a file
   * there) is then left in place, and rsync says so; sync-pass.ts sends it
   * again as a folder.
   */
  rules: Buffer;
  /** deleted paths the rules name (a path under a deleted folder goes with the folder) */
  deletions: number;
}

function hasAncestorIn(path: string, dirs: Set<string>): boolean {
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    if (dirs.has(path.slice(0, i))) return true;
  }
  return false;
}

const WILDCARD = /[*?[]/;

/**
 * A name as an rsync filter pattern that matches it and nothing else. rsync
 * compares a pattern without wildcards byte for byte; one with wildcards goes
 * through wildmatch, where a backslash escapes the next character. `wild` says
 * the rule gets a wildcard of its own (`/***`), so it is matched that way.
 */
function literalPattern(path: string, wild = false): string {
  return wild || WILDCARD.test(path) ? path.replace(/[\\*?[]/g, '\\$&') : path;
}

/**
 * Filter rules (paths relative to the root) under which `rsync -r --delete
 * --exclude='*'` makes the standby match this host for exactly these paths:
 * each parent folder (`/a/`, so rsync descends there); each path in `whole`
 * (`/a/b`, a file or a folder) and all under it (`/a/b/***`: a deleted
 * folder's contents would otherwise be excluded, and an excluded file keeps
 * its folder from deletion; a new folder is sent whole); each path in
 * `alone` by itself (`/a/b.txt`: a changed file; a folder's attributes, its
 * content untouched; a path gone since it was listed goes, a folder only
 * when empty, its content going with its own deletion event, which the guard
 * counts). Rules are anchored at the root, which also keeps rsync from reading
 * a name that starts with "+ ", "- ", "!" or "#" as a rule prefix or a comment.
 */
export function filterRules(whole: readonly string[], alone: readonly string[] = []): Buffer {
  const rules: string[] = [];
  const parents = new Set<string>();
  const withParents = (path: string): void => {
    for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
      const parent = path.slice(0, i);
      if (parents.has(parent)) continue;
      parents.add(parent);
      rules.push(`/${literalPattern(parent)}/`);
    }
  };
  for (const path of whole) {
    withParents(path);
    rules.push(`/${literalPattern(path)}`, `/${literalPattern(path, true)}/***`);
  }
  for (const path of alone) {
    withParents(path);
    rules.push(`/${literalPattern(path)}`);
  }
  return rules.length === 0 ? Buffer.alloc(0) : Buffer.from(rules.join('\0') + '\0');
}

/** Plans one root's share of a batch. `changes` are that root's, in any order. */
export function planPass(changes: readonly Change[]): PassPlan {
  const newDirs = new Set<string>();
  const goneDirs = new Set<string>();
  for (const c of changes) {
    if (c.kind === 'addDir') newDirs.add(c.path);
    else if (c.kind === 'unlinkDir') goneDirs.add(c.path);
  }
  const paths: string[] = [];
  const deleted: string[] = [];
  // a deleted path is a folder when the watcher saw one go (its last event may be a file's, made and deleted since)
  const wasFolder = new Set<string>();
  for (const c of changes) {
    if (newDirs.size > 0 && hasAncestorIn(c.path, newDirs)) continue; // sent with its new folder
    // in a folder deleted since (a folder renamed away, say): goes with the folder
    if (goneDirs.size > 0 && hasAncestorIn(c.path, goneDirs)) continue;
    if (isDeletion(c.kind)) {
      deleted.push(c.path);
      if (c.kind === 'unlinkDir' || c.entries !== undefined) wasFolder.add(c.path);
    } else paths.push(c.path);
  }
  // rsync wants parents before children to create folders in order; sorting also groups siblings.
  paths.sort();
  deleted.sort();
  const list = paths.length === 0 ? Buffer.alloc(0) : Buffer.from(paths.join('\0') + '\0');
  const deletedFolders = deleted.filter((p) => wasFolder.has(p));
  const deletedFiles = deleted.filter((p) => !wasFolder.has(p));
  const rules = deleted.length === 0 ? Buffer.alloc(0) : filterRules([...deletedFolders, ...paths.filter((p) => newDirs.has(p))], [...deletedFiles, ...paths.filter((p) => !newDirs.has(p))]);
  return { list, entries: paths.length, paths, deleted, deletedFolders, deletedFiles, deletionRules: filterRules(deleted), rules, deletions: deleted.length };
}
