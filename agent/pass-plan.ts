// Decides the shape of an incremental pass: which paths rsync is given.
// A pass names exactly the changed paths, in two runs of rsync:
// - the transfer (`--files-from`): every created or changed path, with one
//   saving: a folder created in this batch is sent whole (rsync recurses into
//   it), so a burst of files in a new folder costs one list entry, not
//   thousands, and nothing there needs a content comparison since the standby
//   has no old copy;
// - the deletions, lsyncd's way: filter rules that include each deleted path
//   (and all under it) with its parent folders and exclude everything else, so
//   `--delete` removes exactly those on the standby. Every rsync since 3.0
//   takes this; `--delete-missing-args` is refused by hardened receivers
//   (Debian 12's 3.2.7-1+deb12u6, upstream 3.4.3: RsyncProject/rsync#910).
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
  /** NUL-separated filter rules for rsync --include-from=- --from0 (then --exclude='*' --delete) */
  deletionRules: Buffer;
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
export function literalPattern(path: string, wild = false): string {
  return wild || WILDCARD.test(path) ? path.replace(/[\\*?[]/g, '\\$&') : path;
}

/**
 * The filter rules that delete `deleted` (paths relative to the root) on the
 * standby: each parent folder (`/a/`, so rsync descends there), the path
 * itself (`/a/b`, a file or a folder) and all under it (`/a/b/***`: a
 * folder's contents would otherwise be excluded, and an excluded file keeps
 * its folder from deletion). `gone` are listed paths the transfer found
 * missing: only the path itself, so a file goes and a folder goes only when
 * empty (a folder's content goes with its own deletion event, which the guard
 * counts). Rules are anchored at the root, which also keeps rsync from reading
 * a name that starts with "+ ", "- ", "!" or "#" as a rule prefix or a comment.
 */
export function deletionRules(deleted: readonly string[], gone: readonly string[] = []): Buffer {
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
  for (const path of deleted) {
    withParents(path);
    rules.push(`/${literalPattern(path)}`, `/${literalPattern(path, true)}/***`);
  }
  for (const path of gone) {
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
  for (const c of changes) {
    if (newDirs.size > 0 && hasAncestorIn(c.path, newDirs)) continue; // sent with its new folder
    // in a folder deleted since (a folder renamed away, say): goes with the folder
    if (goneDirs.size > 0 && hasAncestorIn(c.path, goneDirs)) continue;
    if (isDeletion(c.kind)) deleted.push(c.path);
    else paths.push(c.path);
  }
  // rsync wants parents before children to create folders in order; sorting also groups siblings.
  paths.sort();
  deleted.sort();
  const list = paths.length === 0 ? Buffer.alloc(0) : Buffer.from(paths.join('\0') + '\0');
  return { list, entries: paths.length, paths, deleted, deletionRules: deletionRules(deleted), deletions: deleted.length };
}
