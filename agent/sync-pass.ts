// One pass, as rsync runs against the standby: an incremental pass sends the
// batch's paths (pass-plan.ts), a full reconcile mirrors every root; the
// deletion guard decides first what may be deleted. Each root's runs end with
// a flush, so what a pass returns is on the standby's disk: the receiver's,
// asked for with the root's last run (one session less), or a session of its
// own where the receiver does not flush (a plain sshd, an older receiver).
import type { SyncRoot } from '../config/agent.ts';
import { isDeletion, type Batch, type Change } from './change-set.ts';
import type { DeleteGuard } from './delete-guard.ts';
import { filterRules, planPass } from './pass-plan.ts';
import { fullArgs, rulesArgs, transferArgs } from './rsync-args.ts';
import { asDir, onlyMissing, RSYNC_MAX_DELETE, type RsyncResult } from './rsync.ts';
import type { PushResult, StandbyPush } from './standby-push.ts';

/**
 * A pass that deletes sends its other paths in the same run, as filter rules,
 * up to this many (one SSH session and receiver start less: 0.21 s a pass
 * through the standby's receiver). rsync matches every entry of each folder it
 * reads against every rule, on both ends, so the run's cost grows with paths x
 * folders: on a 100,000-file tree (100 files a folder), paths spread over as
 * many folders took 0.70-0.88 s as rules against 1.11-1.17 s as two runs at
 * 100 paths, 1.47-1.65 s against 1.32-1.36 s at 300, and 4.1-4.3 s against
 * 1.6 s at 1,000. Bigger batches take a --files-from run, then a run for the
 * deletions.
 */
const RULES_MAX = 200;

/**
 * While a full pass's rsync runs, the standby's disk is flushed every this many
 * ms (the same `sync -f` that ends each pass), so the flush that makes the pass
 * count finds little left to write: restoring a big tree to an empty host
 * otherwise ends by waiting for all of it to leave the page cache at once (3.6 s
 * for 554 MB here, docs/benchmarks.md, switchback). A shorter pass runs none.
 */
export const EARLY_FLUSH_MS = 2_000;

/** Runs `work` (a full pass's rsync) and flushes `root` on the standby every EARLY_FLUSH_MS until it ends; resolves with its result once no flush runs. */
async function flushingWhile<T>(push: StandbyPush, root: SyncRoot, work: Promise<T>): Promise<T> {
  let done = false;
  let wake: (() => void) | undefined;
  const ended = work.finally(() => {
    done = true;
    wake?.();
  });
  const flushes = (async () => {
    while (!done) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, EARLY_FLUSH_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      // an early flush only shortens the last one, which runs after the rsync whatever happens here and
      // reports every failure (a fence, a lost link): its own outcome decides nothing
      if (!done) await push.flush(root).catch(() => undefined);
    }
  })();
  try {
    return await ended;
  } finally {
    await flushes; // no session of the pass outlives it
  }
}

export interface PassParts {
  roots: readonly SyncRoot[];
  push: StandbyPush;
  guard: DeleteGuard;
  /** where code-server's roots start in `roots` (roots.length: none); a destination may refuse them */
  editorFrom?: number;
}

export interface PassOutcome {
  /** every rsync run that counted (for what was sent) */
  results: RsyncResult[];
  /** deletions the guard held: not on the standby, kept until confirmed */
  held: Change[];
  /** changes whose file vanished while rsync sent it: not on the standby, back to pending (a later event covers the path) */
  requeue: Change[];
  /** a full pass only: the destination's receiver does not take code-server's roots (its words); the pass synced the others */
  editorRefused?: string;
}

export async function incrementalPass({ roots, push, guard }: PassParts, batch: Batch): Promise<PassOutcome> {
  let deletions = 0;
  for (const c of batch.changes) if (isDeletion(c.kind)) deletions++;
  let held: Change[] = [];
  let send: readonly Change[] = batch.changes;
  if (deletions > 0 && guard.trips(deletions, guard.treeEntries + deletions)) {
    held = batch.changes.filter((c) => isDeletion(c.kind));
    send = batch.changes.filter((c) => !isDeletion(c.kind));
    guard.hold(deletions, `${deletions} of about ${guard.treeEntries + deletions} files deleted in the workspace`);
  }
  const results: RsyncResult[] = [];
  const stuck: Change[] = [];
  for (const [i, root] of roots.entries()) {
    const mine = send.filter((c) => c.root === i);
    const plan = planPass(mine);
    if (plan.entries === 0 && plan.deletions === 0) continue;
    const ends = push.ends(root);
    let deleting = plan.deletions > 0;
    let flushed = false; // by the receiver, after the root's last run
    const deleted = mine.filter((c) => isDeletion(c.kind));
    if (deleting && !guard.confirmed && deleted.some((c) => c.kind === 'unlinkDir')) {
      // A folder's deletion takes all it held: the watcher's count, or rsync's in a dry run of the deletions.
      const before = guard.treeEntries + deleted.length; // the watcher took one entry off per deleted path
      const count = countedByWatcher(guard, deleted, before)
        ?? push.check(await push.rsync(rulesArgs(push.settings(root), ends, { dryRun: true }), plan.deletionRules), `counting the deletions in ${root.local}`).stats.filesDeleted;
      if (guard.trips(count, before)) {
        held = [...held, ...deleted];
        guard.hold(count, `${count} of about ${before} files deleted in ${root.local} (folders among them)`);
        deleting = false;
      } else {
        guard.treeEntries -= count - deleted.length;
      }
    }
    if (deleting && plan.entries <= RULES_MAX) {
      // one run for everything: what is here is sent, what is gone goes (a path deleted since it was seen included)
      const r = push.check(await push.rsync(rulesArgs(push.settings(root, { flush: true }), ends), plan.rules), `pass of ${plan.entries + plan.deletions} paths in ${root.local}`);
      results.push(r);
      flushed = r.flushed;
      stuck.push(...keptFolders(r, plan.deletedFiles, deleted));
    } else {
      let gone: string[] = [];
      if (plan.entries > 0) {
        const sent = await push.rsync(transferArgs(push.settings(root, { flush: !deleting }), ends), plan.list);
        flushed = sent.flushed;
        // listed paths deleted since they were seen: rsync sent everything else, and the run below
        // takes them (gone for good: deleted on the standby; back by then: sent as they are)
        if (onlyMissing(sent)) gone = goneFrom(sent, root, plan.paths);
        results.push(gone.length > 0 ? sent : push.check(sent, `incremental pass of ${plan.entries} paths in ${root.local}`));
      }
      // what is new or changed landed first, then what is gone goes: a rename never leaves the standby with neither name
      if (deleting || gone.length > 0) {
        const rules = deleting ? filterRules(plan.deletedFolders, [...plan.deletedFiles, ...gone]) : filterRules([], gone);
        const r = push.check(await push.rsync(rulesArgs(push.settings(root, { flush: true }), ends), rules), `deleting ${deleting ? plan.deletions : 0} paths (and ${gone.length} gone since they were seen) in ${root.local}`);
        results.push(r);
        flushed = r.flushed;
        if (deleting) stuck.push(...keptFolders(r, plan.deletedFiles, deleted));
      }
    }
    if (!flushed) await push.flush(root);
  }
  return { results, held, requeue: [...vanished(roots, batch, results), ...stuck] };
}

/**
 * Deleted files (as this host saw them) that rsync left in place as non-empty
 * folders on the destination: it held a folder there (a deletion the guard
 * held, then a file made and deleted at that path, say), whose content the
 * file's rule did not name. Each goes back to pending as a folder's deletion,
 * which the next pass names whole and the guard counts first.
 */
function keptFolders(result: RsyncResult, deletedFiles: readonly string[], deleted: readonly Change[]): Change[] {
  if (result.notEmptied.length === 0) return [];
  const files = new Set(deletedFiles);
  const kept = new Set(result.notEmptied.filter((p) => files.has(p)));
  return deleted.filter((c) => kept.has(c.path)).map((c) => ({ ...c, kind: 'unlinkDir' as const, entries: Infinity }));
}

export async function fullPass({ roots, push, guard, editorFrom = roots.length }: PassParts, batch: Batch): Promise<PassOutcome> {
  const editorRefused = await push.prepare(roots, { optionalFrom: editorFrom });
  const results: RsyncResult[] = [];
  let entries = 0;
  let heldHere = 0;
  for (const root of editorRefused === undefined ? roots : roots.slice(0, editorFrom)) {
    const ends = push.ends(root);
    const settings = push.settings(root, { flush: true });
    // First without deleting anything: rsync counts what it would delete, so the guard can decide before any is gone.
    // Into a folder that held nothing, files are written in place (rsync-args.ts fullArgs: nothing there can be torn).
    const first = await flushingWhile(push, root, push.rsync(fullArgs(settings, ends, { countDeletionsFirst: !guard.confirmed, inplace: push.heldNothing(root) })));
    let last: PushResult;
    if (first.code === RSYNC_MAX_DELETE) {
      const skipped = first.stats.deletionsSkipped;
      const before = first.stats.files + skipped;
      if (guard.trips(skipped, before)) {
        heldHere += skipped;
        guard.hold(skipped, `the standby holds ${skipped} entries of about ${before} that ${root.local} no longer has`, { byFullReconcile: true });
        results.push(first);
        if (!first.flushed) await push.flush(root);
        entries += first.stats.files;
        continue;
      }
      // not in place: the first run has filled the folder (the receiver would refuse it)
      last = push.check(await flushingWhile(push, root, push.rsync(fullArgs(settings, ends))), `full reconcile of ${root.local}`);
    } else {
      last = push.check(first, `full reconcile of ${root.local}`);
    }
    results.push(last);
    if (!last.flushed) await push.flush(root);
    entries += first.stats.files;
  }
  guard.fullReconcileDone(entries, heldHere > 0);
  const held = heldHere === 0 ? [] : batch.changes.filter((c) => isDeletion(c.kind));
  return { results, held, requeue: vanished(roots, batch, results), ...(editorRefused === undefined ? {} : { editorRefused }) };
}

/**
 * What deleting `deleted` takes from the standby by the watcher's counts (each
 * folder's is never low, watcher.ts), when they settle the guard: the deletion
 * passes even so, and the standby holds nothing the watcher did not see (no
 * deletions held). Undefined: rsync counts it. Saves a dry run's session (0.46
 * s in docs/benchmarks.md switchback) on a pass that deletes or renames a folder.
 */
function countedByWatcher(guard: DeleteGuard, deleted: readonly Change[], before: number): number | undefined {
  if (guard.held !== undefined) return undefined;
  let n = 0;
  for (const c of deleted) n += c.kind === 'unlinkDir' ? (c.entries ?? Infinity) : 1;
  return guard.trips(n, before) ? undefined : n;
}

/** The batch's changes whose file vanished while rsync sent the pass (exit 24). */
function vanished(roots: readonly SyncRoot[], batch: Batch, results: RsyncResult[]): Change[] {
  const gone = new Set<string>();
  for (const r of results) {
    for (const abs of r.vanished) {
      const root = roots.findIndex((x) => abs.startsWith(asDir(x.local)));
      if (root >= 0) gone.add(`${root}\0${abs.slice(asDir(roots[root]!.local).length)}`);
    }
  }
  if (gone.size === 0) return [];
  return batch.changes.filter((c) => gone.has(`${c.root}\0${c.path}`));
}

/** The listed paths rsync found missing, relative to the root; every listed path when one does not map back (sending or deleting one more is harmless). */
function goneFrom(result: RsyncResult, root: SyncRoot, listed: readonly string[]): string[] {
  const prefix = asDir(root.local);
  const rel = result.missing.map((abs) => (abs.startsWith(prefix) ? abs.slice(prefix.length) : undefined));
  const known = new Set(listed);
  return rel.every((p) => p !== undefined && known.has(p)) ? (rel as string[]) : [...listed];
}
