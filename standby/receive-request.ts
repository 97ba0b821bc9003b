// What a writer may ask the standby's receiver for, read from the command its
// ssh client sent (SSH_ORIGINAL_COMMAND), and nothing else:
//   [STANDBY_EPOCH=<n>] [STANDBY_FLUSH=1] rsync --server <options> . <folder in a root>
//                                       (receiving only; STANDBY_FLUSH: sync -f after it)
//   [STANDBY_EPOCH=<n>] sync -f <folder in a root>                      (the agent's flush)
//   [STANDBY_EPOCH=<n>] mkdir -p <folder in a root>...                  (the roots' folders: older rsyncs lack --mkpath)
//   [STANDBY_EPOCH=<n>] rsync --version                                 (which rsync the receiver runs; reads and writes nothing)
//   standby receive --fence <n> [--wait-ms <ms>] [--revoke <host>]...  (only with --allow-fence)
//   standby receive --revoke <host>... | --authorize <host> --key <key> (the same: the proxy's key)
// Options are checked against a list of what rsync sends for the agent's
// transfers; anything that reads from the standby, writes outside the
// destination or writes into place is refused with the reason.
import { realpathSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { StandbyError } from '../core/errors.ts';
import { CommandWordsError, splitCommand, type Word } from '../protocol/command-words.ts';
import { HOST_ID } from '../protocol/host-id.ts';
import { CONFLICTS_NAME, EPOCH_VAR, FLUSH_VAR, RECEIVER_FLAGS as FLAG } from '../protocol/receiver.ts';

// agent/sync-engine.ts still imports it from here: it goes once that file imports protocol/receiver.ts

export type ReceiveRequest =
  /**
   * `flush`: the writer asked for `sync -f <target>` once rsync has ended well (FLUSH_VAR).
   * `inplace`: it asked for --inplace, which the receiver runs only into a folder that holds nothing (receive.ts).
   */
  | { kind: 'rsync'; epoch: number; args: string[]; target: string; flush: boolean; inplace: boolean }
  | { kind: 'sync'; epoch: number; args: string[]; target: string }
  /** `folders`: the ones named, in order (the receiver says which of them hold nothing) */
  | { kind: 'mkdir'; epoch: number; args: string[]; target: string; folders: string[] }
  | { kind: 'version' }
  | { kind: 'fence'; epoch: number; waitMs: number | undefined; revoke: string[] }
  | { kind: 'revoke'; waitMs: number | undefined; revoke: string[] }
  | { kind: 'authorize'; host: string; key: string; conflicts?: string };

export interface RequestPolicy {
  /** sync roots, as realPath() resolved them */
  roots: readonly string[];
  /** the folder relative paths are taken from (sshd starts sessions in the home folder) */
  cwd: string;
  home: string;
  /** the forced command allows `standby receive --fence` (a proxy's key, never a writer's) */
  allowFence: boolean;
  /** the receiver's state folder: a fence request may name it, but no other */
  stateDir: string;
  /** the key writes a fenced GPU's unsent changes into a conflicts folder (--conflicts-only): nothing may be deleted */
  conflictsOnly?: boolean;
}

/** Short options rsync may bundle for a receiving server (before the `e.<capabilities>` part). No `s`: secluded args hide the destination; no `K`: it follows symlinked folders out of the root. */
const SHORT_OK = new Set('vqbunldLkWHogDtUNpEAXrcCIRxSzmOJy');
const LONG_FLAGS = new Set([
  '--delete', '--delete-before', '--delete-during', '--delete-delay', '--delete-after', '--delete-excluded',
  '--ignore-missing-args', '--ignore-errors', '--force', '--stats', '--delay-updates',
  '--numeric-ids', '--size-only', '--existing', '--ignore-existing', '--fsync', '--no-W',
  '--safe-links', '--munge-links', '--preallocate',
]);
/** accepted in the `--name=value` form only (the form rsync sends them in) */
const LONG_VALUES = new Set([
  '--timeout', '--max-delete', '--bwlimit', '--log-format', '--modify-window', '--max-size', '--min-size',
  '--compress-level', '--compress-choice', '--zc', '--checksum-choice', '--cc', '--block-size', '--iconv',
  '--info', '--debug', '--max-alloc', '--checksum-seed', '--chmod',
]);
/** never: each keeps or extends a file the standby held (--inplace is taken apart: only into a folder that holds nothing) */
const IN_PLACE = new Set(['--partial', '--append', '--append-verify']);

class Refusal extends Error {}

function refuse(reason: string): never {
  throw new Refusal(reason);
}

/** A path as the receiver checks it: absolute, `..` resolved, and symlinks resolved in the part that exists. */
export function realPath(path: string): string {
  const abs = resolve(path);
  let head = abs;
  const tail: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(head), ...tail);
    } catch {
      const parent = dirname(head);
      if (parent === head) return abs;
      tail.unshift(basename(head));
      head = parent;
    }
  }
}

function within(path: string, roots: readonly string[]): boolean {
  return roots.some((root) => path === root || path.startsWith(root.endsWith(sep) ? root : root + sep));
}

/** The folder a word names, checked against the roots; keeps a trailing slash (rsync reads it). */
function targetPath(word: Word, policy: RequestPolicy): string {
  let text = word.text;
  if (text.length === 0) refuse('the destination is empty');
  if (word.bare > 0 && text.startsWith('~')) {
    if (text !== '~' && !text.startsWith('~/')) refuse(`"${text}": ~user paths are not accepted`);
    text = policy.home + text.slice(1);
  }
  const checked = realPath(resolve(policy.cwd, text));
  if (!within(checked, policy.roots)) {
    refuse(`"${word.text}" is outside the sync roots (${policy.roots.join(', ')})`);
  }
  return text.endsWith('/') && !checked.endsWith('/') ? checked + '/' : checked;
}

function program(word: Word | undefined, name: string): boolean {
  return word !== undefined && (word.text === name || (word.text.startsWith('/') && basename(word.text) === name));
}

/** The assignments before the command: the writer's epoch (0 when none) and whether it asks for a flush after rsync. */
function readAssignments(words: Word[]): { epoch: number; flush: boolean; rest: Word[] } {
  let epoch: number | undefined;
  let flush = false;
  let i = 0;
  for (; i < words.length; i++) {
    const w = words[i]!;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(w.text);
    if (!m || m[0].length > w.bare) break;
    const value = w.text.slice(m[0].length);
    if (m[1] === FLUSH_VAR) {
      if (flush) refuse(`${FLUSH_VAR} is set twice`);
      if (value !== '1') refuse(`${FLUSH_VAR}="${value}": expected 1`);
      flush = true;
      continue;
    }
    if (m[1] !== EPOCH_VAR) refuse(`only ${EPOCH_VAR}=<n> and ${FLUSH_VAR}=1 may be set before the command, not ${m[1]}`);
    if (epoch !== undefined) refuse(`${EPOCH_VAR} is set twice`);
    if (!/^\d{1,15}$/.test(value)) refuse(`${EPOCH_VAR}="${value}": expected a whole number`);
    epoch = Number(value);
  }
  return { epoch: epoch ?? 0, flush, rest: words.slice(i) };
}

function checkRsyncOption(opt: string): void {
  if (opt === '--sender') refuse('reading from the standby (rsync --sender) is not allowed with this key: it may only write into the sync roots');
  if (IN_PLACE.has(opt)) refuse(`${opt} writes files in place, so a cut-off transfer would leave a torn file: the standby accepts whole-file updates only (use --delay-updates)`);
  if (opt === '--inplace') return; // the receiver checks the destination holds nothing before it runs (receive.ts)
  if (/^-[^-]/.test(opt)) {
    // `-logDtpre.iLsfxCIvu`: option letters, then `e` and rsync's capability flags
    const [letters = '', capabilities] = opt.slice(1).split(/e(.*)/s);
    if (capabilities !== undefined && !/^[.A-Za-z]*$/.test(capabilities)) refuse(`"${opt}" is not an rsync option bundle`);
    for (const ch of letters) {
      if (ch === 's') refuse('secluded arguments (-s, --secluded-args, --protect-args) hide the destination from the receiver: not accepted');
      if (!SHORT_OK.has(ch)) refuse(`the rsync option -${ch} is not accepted by the standby's receiver`);
    }
    return;
  }
  if (LONG_FLAGS.has(opt)) return;
  const eq = opt.indexOf('=');
  if (eq > 0 && LONG_VALUES.has(opt.slice(0, eq))) return;
  refuse(`the rsync option ${opt} is not accepted by the standby's receiver (it may read or write outside the destination, or the agent does not use it)`);
}

function rsyncRequest(epoch: number, flush: boolean, words: Word[], policy: RequestPolicy): ReceiveRequest {
  const conflictsOnly = policy.conflictsOnly === true;
  if (words[1]?.text === '--version' && words.length === 2) {
    if (flush) refuse(`${FLUSH_VAR}=1 goes with rsync --server only`);
    return { kind: 'version' };
  }
  if (words[1]?.text !== '--server') refuse('only rsync --server (a transfer into the standby) or rsync --version is accepted');
  const args = ['--server'];
  let inplace = false;
  let i = 2;
  for (; i < words.length && words[i]!.text !== '.'; i++) {
    const opt = words[i]!.text;
    if (!opt.startsWith('-')) refuse(`expected rsync options, then ".", then the destination; got "${opt}"`);
    checkRsyncOption(opt);
    if (conflictsOnly && (opt.startsWith('--delete') || opt.startsWith('--max-delete'))) refuse(`${opt}: this key only adds to a conflicts folder, it deletes nothing`);
    if (opt === '--inplace') {
      if (conflictsOnly) refuse('--inplace: this key adds whole files to a conflicts folder only (use --delay-updates)');
      inplace = true;
    }
    args.push(opt);
  }
  if (i >= words.length) refuse('no destination: expected rsync --server OPTIONS . DESTINATION');
  const dest = words.slice(i + 1);
  if (dest.length !== 1) refuse(`expected one destination after ".", got ${dest.length}`);
  const target = targetPath(dest[0]!, policy);
  args.push('.', target);
  return { kind: 'rsync', epoch, args, target, flush, inplace };
}

function syncRequest(epoch: number, words: Word[], policy: RequestPolicy): ReceiveRequest {
  const flag = words[1]?.text;
  if ((flag !== '-f' && flag !== '--file-system') || words.length !== 3) refuse('only "sync -f <folder in a root>" is accepted');
  const target = targetPath(words[2]!, policy);
  return { kind: 'sync', epoch, args: ['-f', target], target };
}

function mkdirRequest(epoch: number, words: Word[], policy: RequestPolicy): ReceiveRequest {
  if (words[1]?.text !== '-p' || words.length < 3) refuse('only "mkdir -p <folder in a root>..." is accepted');
  const targets = words.slice(2).map((w) => {
    if (w.text.startsWith('-')) refuse(`"${w.text}": mkdir takes folders here, not options`);
    return targetPath(w, policy);
  });
  return { kind: 'mkdir', epoch, args: ['-p', '--', ...targets], target: targets.join(' '), folders: targets };
}

function adminRequest(words: Word[], policy: RequestPolicy): ReceiveRequest {
  if (!policy.allowFence) refuse("fencing is not allowed with this key (its forced command has no --allow-fence): fence with the proxy's key");
  if (words[1]?.text !== 'receive') refuse('only "standby receive --fence <epoch>", "--revoke <host>" or "--authorize <host> --key <key>" is accepted');
  let epoch: number | undefined;
  let waitMs: number | undefined;
  let authorize: string | undefined;
  let key: string | undefined;
  let conflicts: string | undefined;
  const revoke: string[] = [];
  const hostId = (name: string, value: string): string => {
    if (!HOST_ID.test(value)) refuse(`${name} ${JSON.stringify(value.slice(0, 80))}: expected a host id (letters, digits, ".", "_", "-")`);
    return value;
  };
  for (let i = 2; i < words.length; i++) {
    const w = words[i]!.text;
    const [name, inline] = w.startsWith('--') && w.includes('=') ? [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)] : [w, undefined];
    const value = inline ?? words[++i]?.text;
    if (value === undefined) refuse(`${name} needs a value`);
    if (name === FLAG.fence || name === FLAG.waitMs) {
      if (!/^\d{1,15}$/.test(value)) refuse(`${name} ${value}: expected a whole number`);
      if (name === FLAG.fence) epoch = Number(value);
      else waitMs = Number(value);
    } else if (name === FLAG.stateDir) {
      if (resolve(value) !== resolve(policy.stateDir)) refuse(`--state-dir ${value}: this key fences ${policy.stateDir} only`);
    } else if (name === FLAG.revoke) {
      revoke.push(hostId(name, value));
    } else if (name === FLAG.authorize) {
      authorize = hostId(name, value);
    } else if (name === FLAG.key) {
      key = value;
    } else if (name === FLAG.conflicts) {
      if (!CONFLICTS_NAME.test(value)) refuse(`${name} ${JSON.stringify(value.slice(0, 80))}: expected a folder name (letters, digits, ".", "_", "-", not starting with a dot)`);
      conflicts = value;
    } else {
      refuse(`${name} is not accepted in a fence request (only --fence, --wait-ms, --state-dir, --revoke, --authorize, --key, --conflicts)`);
    }
  }
  if (authorize !== undefined) {
    if (key === undefined) refuse('--authorize <host> needs --key "<ssh public key line>"');
    if (epoch !== undefined || revoke.length) refuse('--authorize is a request of its own: not with --fence or --revoke');
    return { kind: 'authorize', host: authorize, key, ...(conflicts === undefined ? {} : { conflicts }) };
  }
  if (key !== undefined) refuse('--key goes with --authorize <host>');
  if (conflicts !== undefined) refuse('--conflicts goes with --authorize <host> --key <key>');
  if (epoch !== undefined) return { kind: 'fence', epoch, waitMs, revoke };
  if (revoke.length) return { kind: 'revoke', waitMs, revoke };
  refuse('only "standby receive --fence <epoch>", "--revoke <host>" or "--authorize <host> --key <key>" is accepted');
}

/** Reads what the ssh client asked for; throws STANDBY_ERR_COMMAND_REFUSED naming the command and the reason. */
export function parseRequest(command: string | undefined, policy: RequestPolicy): ReceiveRequest {
  const shown = command === undefined ? '' : command.length > 300 ? `${command.slice(0, 300)}...` : command;
  try {
    if (command === undefined || command.trim() === '') {
      refuse('no command: this key only runs rsync into the sync roots (an interactive login is not allowed)');
    }
    let words: Word[];
    try {
      words = splitCommand(command);
    } catch (err) {
      if (err instanceof CommandWordsError) refuse(err.message);
      throw err;
    }
    if (program(words[0], 'standby')) return adminRequest(words, policy);
    const { epoch, flush, rest } = readAssignments(words);
    // the proxy's key fences and manages writer entries; it never writes into the workspace itself
    if (policy.allowFence) refuse('this key (--allow-fence) only fences and authorizes or revokes writers: it does not write; writers log in with their own keys');
    if (program(rest[0], 'rsync')) return rsyncRequest(epoch, flush, rest, policy);
    if (flush) refuse(`${FLUSH_VAR}=1 goes with rsync --server only`);
    if (program(rest[0], 'sync')) return syncRequest(epoch, rest, policy);
    if (program(rest[0], 'mkdir')) return mkdirRequest(epoch, rest, policy);
    refuse(`"${rest[0]?.text ?? ''}" is not a command this key may run (only rsync --server into the sync roots, sync -f, mkdir -p and rsync --version)`);
  } catch (err) {
    if (err instanceof Refusal) {
      // a reason quotes the client's words: bounded like the command (the fuzzer sent a 200 kB one back to itself)
      const reason = err.message.length > 500 ? `${err.message.slice(0, 500)}...` : err.message;
      throw new StandbyError('STANDBY_ERR_COMMAND_REFUSED', `refused ${JSON.stringify(shown)}: ${reason}`, { command: shown, reason });
    }
    throw err;
  }
}
