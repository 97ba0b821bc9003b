// The per-host writer entries of the standby's authorized_keys, managed by the
// proxy through its fence key (`standby receive --authorize ID --key ...`,
// `--revoke ID`): one key per host, restricted to the receiver with the host
// id pinned in the forced command and tagged in the comment, so a host's
// lines can be replaced or removed without touching any other line.
import { existsSync, readFileSync } from 'node:fs';
import { StandbyError } from '../core/errors.ts';
import { quoteWord, quoteWords } from '../protocol/command-words.ts';
import { authorizedKeysLines, carries, parsePublicKey, writeAuthorizedKeys, writerEntry, type PublicKey } from '../core/authorized-keys.ts';

const TAG = 'standby-host:';

/** True when the line is an entry this file wrote for host `id`. */
function isHostLine(line: string, id: string): boolean {
  return line.trim().split(/\s+/).at(-1) === `${TAG}${id}`;
}

export interface WriterCommand {
  /** the standby program as sshd runs it, e.g. /usr/local/bin/standby */
  program: string;
  roots: readonly string[];
  stateDir: string;
  /** the entry writes a fenced GPU's unsent changes into a conflicts folder (its only root): any epoch, nothing deleted */
  conflictsOnly?: boolean;
}

function writerCommand(c: WriterCommand, id: string): string {
  const args = ['receive', ...c.roots.flatMap((r) => ['--root', r]), '--state-dir', c.stateDir, '--host', id, ...(c.conflictsOnly ? ['--conflicts-only'] : [])];
  return `${quoteWord(c.program)} ${quoteWords(args)}`;
}

/** Puts `key` in as host `id`'s only writer key (any earlier line of the host goes). Returns the line written. */
export function authorizeHostKey(file: string, id: string, keyText: string, c: WriterCommand): { line: string; replaced: number } {
  let key: PublicKey;
  try {
    key = parsePublicKey(keyText);
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_COMMAND_REFUSED', `refused the key for host ${id}: ${(err as Error).message}`, { host: id }, { cause: err });
  }
  const line = writerEntry({ ...key, comment: `${TAG}${id}` }, writerCommand(c, id));
  const before = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const kept: string[] = [];
  let replaced = 0;
  for (const l of authorizedKeysLines(before)) {
    // the host's earlier key, and any other entry carrying this very key (a key is one host's only)
    if (isHostLine(l, id) || carries(l, key)) replaced++;
    else kept.push(l);
  }
  writeAuthorizedKeys(file, [...kept, line]);
  return { line, replaced };
}

/** Removes every line of host `id`; returns how many went. */
export function removeHostKeys(file: string, id: string): number {
  if (!existsSync(file)) return 0;
  const lines = authorizedKeysLines(readFileSync(file, 'utf8'));
  const kept = lines.filter((l) => !isHostLine(l, id));
  if (kept.length !== lines.length) writeAuthorizedKeys(file, kept);
  return lines.length - kept.length;
}

