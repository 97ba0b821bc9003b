// The contract between writers (the agent), the proxy and the standby's
// receiver (`standby receive`, the forced command every write to the standby
// runs through, standby/receive.ts). Both sides of the ssh connection import
// it; it imports nothing of theirs.
//   - A writer names its epoch before its command: `STANDBY_EPOCH=<n> rsync ...`.
//   - A writer may ask for its transfer to be flushed in the same session:
//     `STANDBY_FLUSH=1` before `rsync --server`. Receivers that take it say so
//     on stderr after `rsync --version` (RECEIVER_FLUSHES); after a transfer
//     they flushed, they print FLUSHED_LINE. A writer that does not see the
//     line runs `sync -f` itself.
//   - After `mkdir -p <folder>...`, the receiver names on stderr the folders
//     that hold nothing (EMPTY_FOLDERS_PREFIX and their places in the command):
//     a full pass into one may write files in place (agent/rsync-args.ts).
//   - A refusal is one line on stderr, `standby receive: <message> [<code>]`,
//     and the receiver exits with the code's exit code (core/errors.ts). Agents
//     already installed on GPU hosts read that line, the code in brackets and
//     the epoch in the message: its form does not change.
//   - The proxy asks `standby receive --fence <n> [--wait-ms <ms>] [--revoke <host>]...`
//     (or `--revoke <host>...` alone, or `--authorize <host> --key <key>`) and
//     the receiver answers with one JSON line on stdout: the FenceReport.
// No zod here: sshd starts the receiver for every transfer and flush, so it
// loads little (zod alone takes about 200 ms to load).
import { posix } from 'node:path';
import type { ErrorCode } from '../core/errors.ts';

/** How a writer names its epoch to the receiver: `STANDBY_EPOCH=<n>` before the command (a plain sshd's shell takes it too). */
export const EPOCH_VAR = 'STANDBY_EPOCH';

/**
 * How a writer asks the receiver to flush the destination's filesystem (`sync -f`)
 * once its rsync has ended well, in the same session: `STANDBY_FLUSH=1` before
 * `rsync --server`. It saves the flush its own ssh session and receiver start
 * (about 0.08 s a pass: docs/benchmarks.md, pass-cost).
 */
export const FLUSH_VAR = 'STANDBY_FLUSH';

/** What the receiver prints on stderr after `rsync --version` when it takes FLUSH_VAR (older receivers refuse it). */
export const RECEIVER_FLUSHES = `standby receive: takes ${FLUSH_VAR}=1`;

/** What the receiver prints on stderr once the flush a writer asked for is done: the transfer is on disk. */
export const FLUSHED_LINE = 'standby receive: flushed';

/**
 * What the receiver prints on stderr after a `mkdir -p` that succeeded, when
 * some of the folders it named hold nothing: this, then their places among
 * the command's folders (from 0), space-separated. Older receivers and a plain
 * sshd print nothing, and the writer takes every folder as holding files.
 */
export const EMPTY_FOLDERS_PREFIX = 'standby receive: empty folders:';

/** The line EMPTY_FOLDERS_PREFIX starts, for the folders at `places` (none: no line). */
export function emptyFoldersLine(places: readonly number[]): string | undefined {
  return places.length === 0 ? undefined : `${EMPTY_FOLDERS_PREFIX} ${places.join(' ')}`;
}

/** The places a `mkdir -p` session's stderr names as empty folders (below `count`, the folders the command named). */
export function emptyFoldersIn(stderr: string, count: number): Set<number> {
  const places = new Set<number>();
  for (const raw of stderr.split('\n')) {
    const line = raw.trimEnd();
    if (!line.startsWith(`${EMPTY_FOLDERS_PREFIX} `)) continue;
    for (const word of line.slice(EMPTY_FOLDERS_PREFIX.length + 1).split(' ')) {
      if (!/^(0|[1-9][0-9]{0,5})$/.test(word)) return new Set(); // not this receiver's line: trust none of it
      const place = Number(word);
      if (place < count) places.add(place);
    }
  }
  return places;
}

/** Whether `stderr` (a writer's ssh or rsync) holds `line` as a line of its own (ssh may add a carriage return). */
export function hasLine(stderr: string, line: string): boolean {
  return stderr.split('\n').some((l) => l.trimEnd() === line);
}

/** The codes the receiver answers with, in brackets at the end of its stderr line. */
export const RECEIVER_CODES = [
  /** the command is not one a writer (or the proxy's key) may run */
  'STANDBY_ERR_COMMAND_REFUSED',
  /** the writer's epoch is older than the standby's: it was fenced */
  'STANDBY_ERR_EPOCH_STALE',
  /** the writer's host was revoked (fenced by a failover, or removed): refused whatever epoch it claims */
  'STANDBY_ERR_HOST_REVOKED',
  /** a fence held the lock too long, or could not stop older writers */
  'STANDBY_ERR_LOCK_TIMEOUT',
  /** rsync, sync or flock is not installed on the standby */
  'STANDBY_ERR_MISSING_BINARY',
  'STANDBY_ERR_STATE_CORRUPT',
  'STANDBY_ERR_STATE_UNWRITABLE',
  'STANDBY_ERR_CONFIG_INVALID',
] as const satisfies readonly ErrorCode[];

export type ReceiverCode = (typeof RECEIVER_CODES)[number];

/** The refusals that mean the writer must stop writing to this standby: it was fenced, or its key revoked. */
export const FENCED_CODES: ReadonlySet<ReceiverCode> = new Set(['STANDBY_ERR_EPOCH_STALE', 'STANDBY_ERR_HOST_REVOKED']);

/** A refusal as a writer reads it from the receiver's stderr. */
export interface ReceiverRefusal {
  code: ReceiverCode;
  /** the line without its code: `standby receive: refused: ...` */
  message: string;
  /** the epoch the line names: the standby's (STANDBY_ERR_EPOCH_STALE), the one the host was revoked at (STANDBY_ERR_HOST_REVOKED) */
  epoch?: number;
}

/**
 * The line a refusal travels as on stderr, without its line break:
 * `<who>: <message> [<code>]`. Every command run with a label prints its
 * errors so (cli/support/run-command.ts), for scripts; the receiver's are the
 * ones writers read back with refusalIn.
 */
export function formatRefusal(who: string, message: string, code: ErrorCode): string {
  return `${who}: ${message} [${code}]`;
}

/** The receiver's refusal of a writer of an older epoch (STANDBY_ERR_EPOCH_STALE). */
export function staleEpochMessage(writerEpoch: number, standbyEpoch: number): string {
  return `refused: this writer's epoch ${writerEpoch} is older than the standby's epoch ${standbyEpoch}: the standby was fenced by a failover and accepts writes of epoch ${standbyEpoch} or newer only. Nothing was written. This host must stop syncing to the standby (see docs/fencing.md)`;
}

/** The receiver's refusal of a revoked host's writer (STANDBY_ERR_HOST_REVOKED); `at` is an ISO time. */
export function revokedHostMessage(host: string, at: string, epoch: number): string {
  return `refused: host ${host} was revoked at ${at} (epoch ${epoch}), when it was fenced or removed: its key may not write to this standby again. Nothing was written. Enroll it again (standby hosts add ${host} on the proxy) to give it new credentials`;
}

/** Where each message above names its epoch (an ISO time has no spaces). */
const EPOCH_IN: Partial<Record<ReceiverCode, RegExp>> = {
  STANDBY_ERR_EPOCH_STALE: /older than the standby's epoch (\d{1,15})\b/,
  STANDBY_ERR_HOST_REVOKED: /host \S+ was revoked at \S+ \(epoch (\d{1,15})\)/,
};

/** A line that ends with a code in brackets (the receiver's line ends there; ssh may add a carriage return). */
const TAGGED = /^(.*) \[(STANDBY_ERR_[A-Z_]+)\]\s*$/;
const KNOWN: ReadonlySet<string> = new Set(RECEIVER_CODES);

/**
 * The receiver's refusal in what a writer's ssh or rsync printed on stderr
 * (the last one, if several), or undefined when there is none. Only a line
 * that ends with a known code counts: rsync's own lines and a code quoted
 * mid-line do not.
 */
export function refusalIn(stderr: string): ReceiverRefusal | undefined {
  const lines = stderr.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = TAGGED.exec(lines[i]!);
    if (!m || !KNOWN.has(m[2]!)) continue;
    const code = m[2] as ReceiverCode;
    const message = m[1]!;
    const epoch = EPOCH_IN[code]?.exec(message)?.[1];
    return { code, message, ...(epoch === undefined ? {} : { epoch: Number(epoch) }) };
  }
  return undefined;
}

/** Whether the refusal means this writer must stop: fenced, or its key revoked. */
export function isFenced(refusal: ReceiverRefusal | undefined): boolean {
  return refusal !== undefined && FENCED_CODES.has(refusal.code);
}

/** The words of the proxy's requests to the receiver, after `standby receive` (standby/receive-request.ts reads them). */
export const RECEIVER_FLAGS = {
  fence: '--fence',
  waitMs: '--wait-ms',
  revoke: '--revoke',
  stateDir: '--state-dir',
  authorize: '--authorize',
  key: '--key',
  conflicts: '--conflicts',
} as const;

/**
 * The name of one conflicts folder (`--authorize <host> --key <key> --conflicts <name>`): where a
 * failed-over GPU's unsent changes land, `<workspace>.conflicts/<name>` on the standby, beside the
 * workspace and never in it. Letters, digits, ".", "_", "-"; not starting with a dot.
 */
export const CONFLICTS_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** The folder beside `root` (the standby's workspace) that conflicts folders are made in. */
export function conflictsParent(root: string): string {
  return `${root.replace(/\/+$/, '')}.conflicts`;
}

/** What a fence (or a revocation alone) asks of the standby, besides its epoch. */
export interface FenceRequest {
  /** how long writers of older epochs (and of revoked hosts) may finish before the standby kills them, ms (default: the receiver's, 10000) */
  waitMs?: number;
  /** hosts to revoke with the fence: their writers are refused from now on, whatever epoch they claim */
  revoke?: readonly string[];
}

/** `--fence <epoch> [--wait-ms <ms>] [--revoke <host>]...`; without an epoch, a revocation at the standby's current one. */
export function fenceRequestArgs(epoch: number | undefined, request: FenceRequest = {}): string[] {
  const args = epoch === undefined ? [] : [RECEIVER_FLAGS.fence, String(epoch)];
  if (request.waitMs !== undefined) args.push(RECEIVER_FLAGS.waitMs, String(request.waitMs));
  for (const id of request.revoke ?? []) args.push(RECEIVER_FLAGS.revoke, id);
  return args;
}

/**
 * `--authorize <host> --key <public key line>`: put a host's writer key in. With `conflicts`, the key
 * may write only into the conflicts folder of that name (made by the request), whatever its epoch,
 * without deleting anything; a revoked host stays revoked for the workspace.
 */
export function authorizeRequestArgs(host: string, publicKey: string, conflicts?: string): string[] {
  return [RECEIVER_FLAGS.authorize, host, RECEIVER_FLAGS.key, publicKey, ...(conflicts === undefined ? [] : [RECEIVER_FLAGS.conflicts, conflicts])];
}

/** One signal the fence sent to a writer of an older epoch (or of a revoked host). */
export interface KilledReceiver {
  pid: number;
  epoch: number;
  signal: 'SIGTERM' | 'SIGKILL';
}

/** The fence's answer: the JSON line the receiver prints on stdout for `--fence` and `--revoke`. */
export interface FenceReport {
  epoch: number;
  previousEpoch: number;
  /** from the epoch written to the end of the fence, ms */
  waitedMs: number;
  /** how many receivers of older epochs were killed (signalled) */
  killed: number;
  /** each signal sent: a receiver may get SIGTERM, then SIGKILL */
  signalled: KilledReceiver[];
  /** false when only writers of this epoch or newer still held the lock (no older one is left; the fence holds) */
  locked: boolean;
  /** the hosts revoked by this call (already revoked ones included) */
  revoked: string[];
  /** writer key lines removed from the standby's authorized_keys (absent when its receiver does not manage the file) */
  keysRemoved?: number;
}

const wholeNumber = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function killedReceiver(v: unknown): v is KilledReceiver {
  if (!v || typeof v !== 'object') return false;
  const r = v as Record<string, unknown>;
  return wholeNumber(r['pid']) && wholeNumber(r['epoch']) && (r['signal'] === 'SIGTERM' || r['signal'] === 'SIGKILL');
}

/**
 * The fence's answer read from its JSON line, or undefined when it is not one.
 * `signalled`, `locked` and `revoked` may be absent (receivers from before
 * they were reported): then none, true and none. A field of the wrong kind
 * makes the whole answer unreadable.
 */
export function parseFenceReport(value: unknown): FenceReport | undefined {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const r = value as Record<string, unknown>;
  if (!wholeNumber(r['epoch']) || !wholeNumber(r['previousEpoch']) || !wholeNumber(r['waitedMs']) || !wholeNumber(r['killed'])) return undefined;
  const signalled = r['signalled'] ?? [];
  const locked = r['locked'] ?? true;
  const revoked = r['revoked'] ?? [];
  if (!Array.isArray(signalled) || !signalled.every(killedReceiver)) return undefined;
  if (typeof locked !== 'boolean') return undefined;
  if (!Array.isArray(revoked) || !revoked.every((h) => typeof h === 'string')) return undefined;
  if (r['keysRemoved'] !== undefined && !wholeNumber(r['keysRemoved'])) return undefined;
  return {
    epoch: r['epoch'],
    previousEpoch: r['previousEpoch'],
    waitedMs: r['waitedMs'],
    killed: r['killed'],
    signalled,
    locked,
    revoked,
    ...(r['keysRemoved'] === undefined ? {} : { keysRemoved: r['keysRemoved'] as number }),
  };
}

/** The receiver's answer to `--authorize`: the JSON line it prints. */
export interface AuthorizeReport {
  /** the host whose key was put in */
  authorized: string;
  /** earlier lines of the host (or of this key) replaced */
  replaced: number;
  /** the host had been revoked and is no longer */
  lifted: boolean;
  /** the authorized_keys line written */
  line: string;
  /** the folders the key may write into (the first is where the agent mirrors to) */
  roots: string[];
}

/** code-server's folders on one host (its --user-data-dir and --extensions-dir). */
export interface EditorDirs {
  userDataDir: string;
  extensionsDir: string;
}

/**
 * The receiver's roots for code-server's folders, in the order the installer lists them after the
 * workspace (`--root <userDataDir>/User --root <extensionsDir>`).
 */
export function editorReceiveRoots(dirs: EditorDirs | undefined): string[] {
  return dirs ? [posix.join(dirs.userDataDir, 'User'), dirs.extensionsDir] : [];
}

/**
 * code-server's folders on a receiver's host, read back from the roots its authorize answer lists
 * (editorReceiveRoots' order); undefined when it takes none. Where a new GPU's or the standby's
 * code-server keeps them need not be where this host's does (another user, another home).
 */
export function editorOfRoots(roots: readonly string[]): EditorDirs | undefined {
  const user = roots[1];
  const extensionsDir = roots[2];
  if (user === undefined || extensionsDir === undefined || !user.endsWith('/User') || user.length <= '/User'.length) return undefined;
  return { userDataDir: user.slice(0, -'/User'.length), extensionsDir };
}

/** The authorize answer read from its JSON line, or undefined when it does not name a host; a missing count is 0, roots that are not strings are left out. */
export function parseAuthorizeReport(value: unknown): AuthorizeReport | undefined {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const r = value as Record<string, unknown>;
  if (typeof r['authorized'] !== 'string') return undefined;
  const roots = Array.isArray(r['roots']) ? r['roots'].filter((root): root is string => typeof root === 'string') : [];
  return { authorized: r['authorized'], replaced: Number(r['replaced'] ?? 0), lifted: r['lifted'] === true, line: typeof r['line'] === 'string' ? r['line'] : '', roots };
}
