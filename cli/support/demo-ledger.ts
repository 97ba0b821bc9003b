// The demo's (and the full-cycle test's) ledger: whether a workspace holds
// every acknowledged write of the writer's log (demo-writer.ts). The
// acknowledged ops are replayed in seq order into what each path must hold
// (a sha256, or nothing); a path any op not counted acknowledged touched (a
// failed one, whose effect is unknown, or one the caller excludes, e.g. above
// the sync watermark at failover) may hold either version: it is counted as
// uncertain, not checked. Every other path must be as the replay says.
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WriteRecord } from './demo-writer.ts';

export interface LostWrite {
  /** the last acknowledged op on the path */
  seq: number;
  path: string;
  /** what the replay says it holds (null: no file) */
  want: string | null;
  /** what it holds (null: no file; "not a regular file" for anything else there) */
  got: string | null;
}

export interface WorkspaceCheck {
  /** files present with the sha256 the replay wants */
  verifiedFiles: number;
  verifiedBytes: number;
  /** acknowledged writes the workspace does not hold, in seq order */
  lost: LostWrite[];
  /** paths not checked: touched by an op not counted acknowledged */
  uncertain: number;
}

/** What a path holds now: its sha256 and size, or null when there is no file. */
function current(file: string): { sha256: string; size: number } | null | 'other' {
  let st;
  try {
    st = lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw err;
  }
  if (!st.isFile()) return 'other';
  const data = readFileSync(file);
  return { sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
}

/**
 * Checks `dir` against the writer's log. `acknowledged` says which ok records
 * count (a record that is not ok never does).
 */
export function checkWorkspace(dir: string, records: readonly WriteRecord[], acknowledged: (r: WriteRecord) => boolean): WorkspaceCheck {
  const sorted = [...records].sort((a, b) => a.seq - b.seq);
  const counts = (r: WriteRecord) => r.ok && acknowledged(r);
  const uncertain = new Set<string>();
  for (const r of sorted) {
    if (counts(r)) continue;
    uncertain.add(r.path);
    if (r.to !== undefined) uncertain.add(r.to);
  }
  const want = new Map<string, { sha256: string | null; seq: number }>();
  for (const r of sorted) {
    if (!counts(r)) continue;
    switch (r.op) {
      case 'create':
      case 'edit':
      case 'append':
        want.set(r.path, { sha256: r.sha256, seq: r.seq });
        break;
      case 'delete':
        want.set(r.path, { sha256: null, seq: r.seq });
        break;
      case 'rename':
        want.set(r.path, { sha256: null, seq: r.seq });
        if (r.to !== undefined) want.set(r.to, { sha256: r.sha256, seq: r.seq });
        break;
    }
  }
  const out: WorkspaceCheck = { verifiedFiles: 0, verifiedBytes: 0, lost: [], uncertain: uncertain.size };
  for (const [path, w] of want) {
    if (uncertain.has(path)) continue;
    const got = current(join(dir, path));
    const gotSha = got === null ? null : got === 'other' ? 'not a regular file' : got.sha256;
    if (gotSha === w.sha256) {
      if (got !== null && got !== 'other') {
        out.verifiedFiles++;
        out.verifiedBytes += got.size;
      }
    } else {
      out.lost.push({ seq: w.seq, path, want: w.sha256, got: gotSha });
    }
  }
  out.lost.sort((a, b) => a.seq - b.seq);
  return out;
}
