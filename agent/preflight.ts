// Start-up checks that turn a confusing failure later into a clear one now:
// the binaries sync needs, the roots it watches, the inotify limits.
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { missingBinary, StandbyError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { SyncRoot } from '../config/agent.ts';

export function requireBinary(name: string, debianPackage: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
  } catch {
    throw missingBinary(name, debianPackage);
  }
}

export function requireRoots(roots: readonly Pick<SyncRoot, 'local'>[]): void {
  for (const root of roots) {
    let isDir = false;
    try {
      isDir = statSync(root.local).isDirectory();
    } catch {
      isDir = false;
    }
    if (!isDir) {
      throw new StandbyError('STANDBY_ERR_WORKSPACE_MISSING', `sync root ${root.local} is not a folder on this host: create it, or fix "workspace" / "sync.paths" in the agent config`, { path: root.local });
    }
  }
}

/**
 * Makes the editor's roots that are not there yet (code-server makes its User folder at its first
 * start, which may come after the agent's): each folder made is given to the owner of the folder
 * above it, so a code-server running as the developer can still write there. Returns the folders made.
 */
export function ensureEditorRoots(roots: readonly Pick<SyncRoot, 'local'>[]): string[] {
  const made: string[] = [];
  for (const root of roots) {
    const missing: string[] = [];
    let dir = root.local;
    let owner: { uid: number; gid: number } | undefined;
    for (let i = 0; i < 64 && owner === undefined; i++) {
      try {
        const st = statSync(dir);
        owner = { uid: st.uid, gid: st.gid };
      } catch {
        missing.unshift(dir);
        if (dirname(dir) === dir) break;
        dir = dirname(dir);
      }
    }
    for (const d of missing) {
      // made meanwhile (code-server starting beside the agent): its maker's, left as it is
      if (mkdirSync(d, { recursive: true, mode: 0o755 }) === undefined) continue;
      if (owner && process.getuid?.() === 0) chownSync(d, owner.uid, owner.gid);
      made.push(d);
    }
  }
  return made;
}

function readNumber(file: string): number | undefined {
  try {
    return Number(readFileSync(file, 'utf8').trim());
  } catch {
    return undefined; // not Linux, or /proc not mounted: nothing to check
  }
}

/** Counts the inotify watches this process holds, from /proc/PID/fdinfo. */
export function inotifyWatchesHeld(pid = process.pid): number {
  let n = 0;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return 0; // no /proc: nothing to count
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:inotify') continue;
      for (const line of readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').split('\n')) if (line.startsWith('inotify wd:')) n++;
    } catch {
      continue; // the descriptor closed while we looked
    }
  }
  return n;
}

/** Warns when the watches in use come close to fs.inotify.max_user_watches, with the command that raises it. */
export function checkInotifyLimits(log: Logger, watchesHeld: number): void {
  const max = readNumber('/proc/sys/fs/inotify/max_user_watches');
  if (max === undefined) return;
  if (watchesHeld > 0.8 * max) {
    log.warn({ watchesHeld, max }, `inotify watches nearly exhausted (${watchesHeld} of ${max}): raise the limit with: sysctl -w fs.inotify.max_user_watches=${Math.max(1_048_576, watchesHeld * 4)} and persist it in /etc/sysctl.d/90-standby.conf`);
  }
  const queued = readNumber('/proc/sys/fs/inotify/max_queued_events');
  if (queued !== undefined && queued < 16_384) {
    log.warn({ maxQueuedEvents: queued }, 'fs.inotify.max_queued_events is low: bursts may overflow it; raise it with: sysctl -w fs.inotify.max_queued_events=65536');
  }
}
