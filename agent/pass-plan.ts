// Decides the shape of an incremental pass: which paths rsync is given.
// A pass names exactly the changed paths, with one saving: a folder created in
// this batch is sent whole (rsync recurses into it), so a burst of files in a
// new folder costs one list entry, not thousands, and nothing there needs a
// content comparison since the standby has no old copy.
import type { Change } from './change-set.ts';
import { isDeletion } from './change-set.ts';

export interface PassPlan {
  /** NUL-separated paths for rsync --files-from=- --from0 */
  list: Buffer;
  /** how many entries the list holds */
  entries: number;
  /** deletions among them */
  deletions: number;
}

function hasAncestorIn(path: string, dirs: Set<string>): boolean {
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    if (dirs.has(path.slice(0, i))) return true;
  }
  return false;
}

/** Plans one root's share of a batch. `changes` are that root's, in any order. */
export function planPass(changes: readonly Change[]): PassPlan {
  const newDirs = new Set<string>();
  for (const c of changes) if (c.kind === 'addDir') newDirs.add(c.path);
  const paths: string[] = [];
  let deletions = 0;
  for (const c of changes) {
    if (newDirs.size > 0 && hasAncestorIn(c.path, newDirs)) continue; // sent with its new folder
    paths.push(c.path);
    if (isDeletion(c.kind)) deletions++;
  }
  // rsync wants parents before children to create folders in order; sorting also groups siblings.
  paths.sort();
  const list = paths.length === 0 ? Buffer.alloc(0) : Buffer.from(paths.join('\0') + '\0');
  return { list, entries: paths.length, deletions };
}
