// Which rsync runs on each end of a transfer, and whether Standby can work
// with it. Hosts are not ours: a GPU image brings its distribution's rsync
// (Ubuntu 20.04: 3.1.3), the standby Debian 12's (3.2.7-1+deb12u6, with the
// 2025 hardening backported). Passes use only what every rsync since 3.1.0
// does alike (no --mkpath, no --delete-missing-args: pass-plan.ts), so the
// versions choose nothing but whether sync can run at all: 3.1.0 is the first
// whose receiver reports what it deleted (protocol 31), which the deletion
// guard counts on. Older or missing is refused at once, naming the host.
import { execFile } from 'node:child_process';
import { missingBinary, StandbyError } from '../core/errors.ts';
import type { StandbyTarget } from '../config/agent.ts';
import { hasLine, RECEIVER_FLUSHES, refusalIn } from '../protocol/receiver.ts';
import { describeExit } from './rsync.ts';
import { destination, runRemote } from './ssh.ts';

export interface RsyncVersion {
  /** as rsync prints it, e.g. "3.2.7" */
  version: string;
  /** [major, minor, patch] */
  parts: [number, number, number];
  protocol: number;
}

/** The standby's rsync, and what its receiver said it takes besides. */
export interface StandbyRsync extends RsyncVersion {
  /** its receiver flushes a transfer in the same session when asked (protocol/receiver.ts FLUSH_VAR); false: a plain sshd or an older receiver */
  flushes: boolean;
}

/** The oldest rsync supported on either end. */
const MIN_RSYNC: RsyncVersion['parts'] = [3, 1, 0];
const MIN_TEXT = MIN_RSYNC.join('.');

/** Reads `rsync --version` output ("rsync  version 3.2.7  protocol version 32"); undefined when it is not that. */
export function parseRsyncVersion(output: string): RsyncVersion | undefined {
  const m = /^rsync\s+version\s+v?(\d+)\.(\d+)(?:\.(\d+))?\S*\s+protocol version (\d+)/m.exec(output);
  if (!m) return undefined;
  const parts: RsyncVersion['parts'] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  return { version: /version\s+v?(\S+)/.exec(m[0])![1]!, parts, protocol: Number(m[4]) };
}

function older(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) < (b[i] ?? 0);
  }
  return false;
}

const INSTALL = 'apt-get install rsync (Debian, Ubuntu), dnf install rsync (Fedora, RHEL), apk add rsync (Alpine)';

/**
 * Checks what `rsync --version` printed on `where` ("this host", "the standby
 * root@cpu:22"); returns the version, or throws STANDBY_ERR_RSYNC_UNSUPPORTED
 * naming the version, the host and what to install.
 */
export function checkRsyncVersion(output: string, where: string): RsyncVersion {
  const v = parseRsyncVersion(output);
  if (!v) {
    const said = output.trim().split('\n')[0]?.slice(0, 200) ?? '';
    throw new StandbyError('STANDBY_ERR_RSYNC_UNSUPPORTED', `could not tell which rsync runs on ${where}: "rsync --version" printed ${JSON.stringify(said)}. Install rsync ${MIN_TEXT} or newer there: ${INSTALL}`, { where, output: said });
  }
  if (older(v.parts, MIN_RSYNC)) {
    throw new StandbyError('STANDBY_ERR_RSYNC_UNSUPPORTED', `rsync ${v.version} (protocol ${v.protocol}) on ${where} is too old: Standby needs rsync ${MIN_TEXT} or newer on both ends (any of 3.1.x to 3.5.x). Install a newer rsync there: ${INSTALL}`, { where, version: v.version });
  }
  return v;
}

/** The rsync on this host's PATH, checked; a missing one is STANDBY_ERR_MISSING_BINARY. */
export function localRsyncVersion(): Promise<RsyncVersion> {
  return new Promise((resolve, reject) => {
    execFile('rsync', ['--version'], { env: { ...process.env, LC_ALL: 'C' }, timeout: 10_000 }, (err, stdout) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return reject(missingBinary('rsync', 'rsync', 'this host', err));
      try {
        resolve(checkRsyncVersion(stdout, 'this host'));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/**
 * Asks the standby which rsync writers get there (`rsync --version`, which its
 * receiver answers too) and checks it. Unreachable is STANDBY_ERR_RSYNC_FAILED
 * (worth a retry); missing, too old, or a receiver that predates the question
 * is STANDBY_ERR_MISSING_BINARY / STANDBY_ERR_RSYNC_UNSUPPORTED (someone must
 * install something first).
 */
export async function standbyRsyncVersion(target: StandbyTarget, control: string | undefined, timeoutMs: number, env: Record<string, string> = {}): Promise<StandbyRsync> {
  const where = `the standby ${destination(target)}:${target.port}`;
  const rsync = (target.rsyncPath ?? 'rsync').split(/\s+/).filter(Boolean);
  const probe = await runRemote(target, control, [...rsync, '--version'], timeoutMs, env);
  const refused = refusalIn(probe.stderr)?.code;
  if (probe.code === 127 || refused === 'STANDBY_ERR_MISSING_BINARY') throw missingBinary('rsync', 'rsync', where);
  if (refused === 'STANDBY_ERR_COMMAND_REFUSED') {
    throw new StandbyError('STANDBY_ERR_RSYNC_UNSUPPORTED', `${where} refused "rsync --version": its Standby receiver is older than this agent. Update Standby there (the one-line install again, or: standby install standby). It said: ${probe.stderr.slice(-300)}`, { where });
  }
  if (probe.code !== 0) {
    throw new StandbyError('STANDBY_ERR_RSYNC_FAILED', `checking the rsync of ${where} failed: ${describeExit(probe.code, null)}${probe.stderr ? ` (${probe.stderr.split('\n').slice(-2).join(' | ')})` : ''}`, { code: probe.code });
  }
  return { ...checkRsyncVersion(probe.stdout, where), flushes: hasLine(probe.stderr, RECEIVER_FLUSHES) };
}
