// rsync's arguments for each kind of run the agent makes against the standby:
// the --files-from transfer, the filter-rules run, the full reconcile, and
// verify's comparison. Pure functions of the settings: table-tested in
// test/agent/rsync-args.test.ts.
import { EPOCH_VAR, FLUSH_VAR } from '../protocol/receiver.ts';
import { excludeArgs, includeArgs } from './exclude.ts';

/** What every run against the standby shares. */
export interface RsyncSettings {
  /** rsync's --timeout (sync.ioTimeoutS): a pass with no I/O for this long fails */
  ioTimeoutS: number;
  /** the -e value: ssh and its options (ssh.ts rsyncShell) */
  shell: string;
  /** the user's exclude patterns (config excludesOf) */
  excludes: readonly string[];
  /** the epoch the proxy granted this writer (undefined: no proxy, or not primary) */
  epoch: number | undefined;
  /** standby.rsyncPath as configured (undefined: the standby's rsync on its PATH) */
  rsyncPath: string | undefined;
  /** the root's include list (SyncRoot.include): only those paths are sent, compared or deleted; undefined: the whole root */
  include?: readonly string[] | undefined;
  /** the standby's receiver flushes the run's destination once rsync ends well (FLUSH_VAR; only where its receiver said it takes it) */
  flush?: boolean;
}

/** The two ends of one sync root, as rsync names them: `local/` and `user@host:/remote/`. */
export interface RootEnds {
  from: string;
  to: string;
}

/**
 * How rsync starts the standby's side. Under a proxy the standby's receiver
 * checks the writer's epoch, given as an env assignment before the command (a
 * plain sshd runs it as one too). `flush`: the receiver is asked to flush the
 * destination before its session ends (FLUSH_VAR), the same way.
 */
export function rsyncPathArgs(epoch: number | undefined, rsyncPath: string | undefined, flush = false): string[] {
  const vars = [...(epoch === undefined ? [] : [`${EPOCH_VAR}=${epoch}`]), ...(flush ? [`${FLUSH_VAR}=1`] : [])];
  if (vars.length > 0) return [`--rsync-path=${[...vars, rsyncPath ?? 'rsync'].join(' ')}`];
  return rsyncPath ? [`--rsync-path=${rsyncPath}`] : [];
}

/**
 * The options every pass's run starts with. The user's excludes come before any run's own filter rules, so what they exclude stays protected;
 * then the root's include list, whose final `- *` keeps everything else out of the run (and, excluded, safe from --delete on the standby).
 * `delayUpdates` (default true): the pass's files land together at its end (rsync's `.~tmp~` folders), so
 * a cut pass leaves nothing of itself applied. Without it each file still lands whole (rsync writes a
 * temp file and renames it), only not together.
 */
export function baseArgs(s: RsyncSettings, { delayUpdates = true } = {}): string[] {
  return [
    '-a',
    ...(delayUpdates ? ['--delay-updates'] : []),
    `--timeout=${s.ioTimeoutS}`,
    '--stats',
    '-e', s.shell,
    ...excludeArgs(s.excludes),
    ...includeArgs(s.include),
    ...rsyncPathArgs(s.epoch, s.rsyncPath, s.flush),
  ];
}

/** Sends the paths listed on stdin (NUL-separated, pass-plan.ts) and nothing else. */
export function transferArgs(s: RsyncSettings, ends: RootEnds): string[] {
  return [
    ...baseArgs(s),
    '-r', // listed folders that are new are sent whole
    '--files-from=-',
    '--from0',
    '--force',
    '--delete', // a new folder sent whole mirrors exactly
    '--ignore-times', // compare content of the listed paths: a same-size rewrite in the same second must go
    ends.from,
    ends.to,
  ];
}

/**
 * Makes the standby match this host for the paths the filter rules on stdin
 * name (pass-plan.ts), and nothing else: deletes what is gone here, sends
 * what is here (content compared). A deleted path that is back by now is
 * sent as it is, so the standby never keeps a version older than the
 * deletion it acknowledges. `dryRun`: only count what it would delete.
 */
export function rulesArgs(s: RsyncSettings, ends: RootEnds, { dryRun = false } = {}): string[] {
  return [
    ...baseArgs(dryRun ? { ...s, flush: false } : s), // a dry run writes nothing to flush
    '--delete',
    '--force',
    '--ignore-times',
    '--from0',
    '--include-from=-',
    '--exclude=*',
    ends.from,
    ends.to,
    ...(dryRun ? ['--dry-run'] : []),
  ];
}

/**
 * A full reconcile of one root. `countDeletionsFirst`: delete nothing
 * (--max-delete=0), so rsync counts what it would delete and the guard decides
 * before any of it is gone. `inplace`: the root's folder held nothing when the
 * pass began (the receiver said so, StandbyPush.heldNothing), so each file is
 * written at its own name (--inplace) rather than into a temp file renamed
 * over it: 5.0-5.2 s against 5.5-6.2 s for a 100,000-file tree here
 * (docs/benchmarks.md, switchback). A cut pass then leaves the file it was
 * writing short at its name; the folder held nothing anyone acknowledged, the
 * pass is not acknowledged, and the next pass rewrites that file (its size and
 * time differ). Into a folder that holds files, never: the file being written
 * may be the standby's only copy of an acknowledged version.
 */
export function fullArgs(s: RsyncSettings, ends: RootEnds, { countDeletionsFirst = false, inplace = false } = {}): string[] {
  // No --delay-updates: at 100,000 files it doubles the run (each file written into a .~tmp~ folder, then
  // renamed at the end: 16-32 s against 7.5-19 s, 6 alternating pairs, docs/benchmarks.md switchback).
  // A full pass is a first sync, a reconcile after failures or a restore: a cut one leaves some files of
  // the tree newer than the watermark says, each whole, which the next pass completes. Incremental passes
  // keep it: they are small, and their batch (a rename's both ends, say) lands together.
  return [...baseArgs(s, { delayUpdates: false }), '--delete', '--delete-delay', ...(inplace ? ['--inplace'] : []), ends.from, ends.to, ...(countDeletionsFirst ? ['--max-delete=0'] : [])];
}

/** `standby verify`: a checksum comparison that writes neither side and itemizes every difference. */
export function verifyArgs(s: Omit<RsyncSettings, 'ioTimeoutS'>, ends: RootEnds): string[] {
  return [
    '-a', '--dry-run', '--checksum', '--delete', '--itemize-changes',
    '-e', s.shell,
    ...excludeArgs(s.excludes),
    ...includeArgs(s.include),
    ...rsyncPathArgs(s.epoch, s.rsyncPath),
    ends.from,
    ends.to,
  ];
}
