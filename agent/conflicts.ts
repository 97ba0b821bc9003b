// A fenced GPU's unsent changes, copied aside. After a failover the standby
// refuses this host (its key revoked, its epoch old), and whatever it wrote
// since its last acknowledged pass would go with the host when a recovery
// destroys it. Before that, the proxy opens a conflicts folder beside the
// standby's workspace to this host's key (`<workspace>.conflicts/<name>`,
// receiver --conflicts-only: any epoch, nothing deleted, never the workspace)
// and asks for them: the files this agent still counts as not on the standby
// go there as they are now, with the configured standby's address and this
// agent's key; deletions are only listed. The developer picks from the folder.
import { join } from 'node:path';
import { localRoots, type AgentConfig, type SyncRoot } from '../config/agent.ts';
import type { Logger } from '../core/log.ts';
import type { ConflictsSent } from '../protocol/messages.ts';
import { isDeletion, type Change } from './change-set.ts';
import { planPass } from './pass-plan.ts';
import { standbyDestination } from './push-destination.ts';
import { baseArgs } from './rsync-args.ts';
import { asDir, onlyMissing } from './rsync.ts';
import { StandbyPush } from './standby-push.ts';

export type ConflictsOutcome = Omit<ConflictsSent, 'type' | 'id'>;

/** How many paths the answer names (the report shows them; the folder holds them all). */
const NAMED = 50;

/** Where each root's unsent files go in the folder: the workspace's at its top, any sync.paths or editor root in `root-<n>` (an editor root keeps its include list). */
function conflictRoots(config: AgentConfig, folder: string): SyncRoot[] {
  return localRoots(config).map((r, i) => ({ ...r, remote: i === 0 ? folder : join(folder, `root-${i}`) }));
}

/**
 * Copies `changes` (this agent's outstanding ones) into `folder` on the configured standby; never throws.
 * `complete`: the agent completed a pass to the standby since it started, so `changes` are all it lacks.
 */
export async function copyConflicts(config: AgentConfig, changes: readonly Change[], folder: string, log: Logger, complete = true): Promise<ConflictsOutcome> {
  const named: string[] = [];
  const outcome: ConflictsOutcome = { ok: false, files: 0, bytes: 0, deletions: 0, paths: named, complete, error: null };
  const standby = standbyDestination(config);
  if (!standby) return { ...outcome, error: 'this agent has no standby section in agent.json: it knows no standby to copy its unsent changes to' };
  const roots = conflictRoots(config, folder);
  const push = new StandbyPush(config, { target: null, ssh: { ...standby.ssh, path: folder }, label: `the standby's conflicts folder ${folder}` }, log, () => undefined);
  try {
    await push.prepare(roots);
    for (const [i, root] of roots.entries()) {
      const mine = changes.filter((c) => c.root === i);
      const deleted = mine.filter((c) => isDeletion(c.kind));
      outcome.deletions += deleted.length;
      const plan = planPass(mine.filter((c) => !isDeletion(c.kind)));
      if (plan.entries > 0) {
        const ends = push.ends(root);
        // added to the folder, never deleting there: no --delete, and the receiver refuses one anyway
        const args = [...baseArgs(push.settings(root)), '-r', '--files-from=-', '--from0', ends.from, ends.to];
        const result = await push.rsync(args, plan.list);
        // a path deleted since it was listed is simply not there to copy
        if (!onlyMissing(result)) push.check(result, `copying ${plan.entries} unsent paths of ${root.local} to ${folder}`);
        const prefix = asDir(root.local);
        const missing = new Set(result.missing.map((abs) => (abs.startsWith(prefix) ? abs.slice(prefix.length) : abs)));
        for (const p of plan.paths) {
          if (!missing.has(p) && named.length < NAMED) named.push(i === 0 ? p : join(`root-${i}`, p));
        }
        outcome.files += result.stats.filesTransferred;
        outcome.bytes += result.stats.transferredSize;
      }
      for (const c of deleted) if (named.length < NAMED) named.push(`${i === 0 ? c.path : join(`root-${i}`, c.path)} (deleted here)`);
      await push.flush(root);
    }
    outcome.ok = true;
    log.warn({ folder, files: outcome.files, bytes: outcome.bytes, deletions: outcome.deletions }, `copied ${outcome.files} unsent files (${outcome.bytes} bytes) into the standby's conflicts folder ${folder}; ${outcome.deletions} unsent deletions listed, not applied`);
  } catch (err) {
    outcome.error = (err instanceof Error ? err.message : String(err)).slice(0, 2000);
    log.error({ folder, err: outcome.error }, `copying the unsent changes into the standby's conflicts folder ${folder} failed`);
  } finally {
    await push.close().catch((err: unknown) => log.warn({ err }, 'closing the ssh session of the conflicts copy failed'));
  }
  return outcome;
}
