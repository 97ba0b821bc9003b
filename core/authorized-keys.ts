// The writer's entry in the standby's authorized_keys: the agent's public key,
// restricted to `standby receive` as its forced command (docs/fencing.md).
// Adding it again replaces the line with the same key; other lines are never touched.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileDurably } from './durable-file.ts';
import { StandbyError } from './errors.ts';

const KEY_TYPES = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;

export interface PublicKey {
  type: string;
  blob: string;
  comment: string;
}

/** Reads "ssh-ed25519 AAAA... comment"; throws a StandbyError naming what is wrong. */
export function parsePublicKey(text: string): PublicKey {
  const [type = '', blob = '', ...rest] = text.trim().split(/\s+/);
  if (!KEY_TYPES.test(type) || !/^[A-Za-z0-9+/]+={0,3}$/.test(blob)) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `--agent-key ${JSON.stringify(text.slice(0, 40))}...: expected one ssh public key line such as "ssh-ed25519 AAAA... agent@gpu" (the agent install prints it; it is /etc/standby/keys/id_ed25519.pub on the GPU)`, { agentKey: text });
  }
  return { type, blob, comment: rest.join(' ') };
}

/** OpenSSH's SHA256 fingerprint of a key blob (as `ssh-keygen -l` prints it). */
export function fingerprintOf(blob: string): string {
  return 'SHA256:' + createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '');
}

/** The line for the writer's key: the forced receiver, nothing else allowed. */
export function writerEntry(key: PublicKey, command: string): string {
  if (command.includes('"')) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `forced command ${command}: paths with a double quote cannot go into authorized_keys; choose a workspace path without one`, { command });
  return `command="${command}",restrict ${key.type} ${key.blob}${key.comment ? ' ' + key.comment : ''}`;
}

/** True when the line (with or without options) carries this key. */
export function carries(line: string, key: PublicKey): boolean {
  const words = line.trim().split(/\s+/);
  const at = words.indexOf(key.blob);
  return at > 0 && words[at - 1] === key.type;
}

/** The file's text with the key's line replaced by (or, when absent, appended as) `entry`. */
function withEntry(text: string, key: PublicKey, entry: string): string {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  let placed = false;
  const out: string[] = [];
  for (const line of lines) {
    if (carries(line, key)) {
      if (!placed) out.push(entry);
      placed = true;
    } else {
      out.push(line);
    }
  }
  if (!placed) out.push(entry);
  return out.join('\n') + '\n';
}

/** The file's text without the key's lines. */
function withoutKey(text: string, key: PublicKey): string {
  const lines = text.replace(/\n$/, '').split('\n').filter((line) => line !== '' && !carries(line, key));
  return lines.length ? lines.join('\n') + '\n' : '';
}

/** The file's non-empty lines. */
export function authorizedKeysLines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

/** Replaces the file with these lines, atomically, 0600 (its folder made 0700 when missing). */
export function writeAuthorizedKeys(file: string, lines: readonly string[]): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileDurably(file, lines.length ? lines.join('\n') + '\n' : '');
}

/** Adds or replaces the writer's entry; returns whether the file changed. */
export function authorizeWriter(file: string, key: PublicKey, command: string): boolean {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const before = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const after = withEntry(before, key, writerEntry(key, command));
  if (after === before) return false;
  writeFileDurably(file, after);
  return true;
}

/** The keys whose forced command is the fencing receiver (`receive --allow-fence`), as written by writerEntry. */
export function fencingKeys(file: string): PublicKey[] {
  if (!existsSync(file)) return [];
  const keys: PublicKey[] = [];
  for (const line of authorizedKeysLines(readFileSync(file, 'utf8'))) {
    const m = /^command="([^"]*)",restrict (\S+) (\S+)(?: (.*))?$/.exec(line.trim());
    if (m && / receive --allow-fence /.test(m[1]!)) keys.push({ type: m[2]!, blob: m[3]!, comment: m[4] ?? '' });
  }
  return keys;
}

/** Removes the key's lines; returns whether the file changed. */
export function revokeWriter(file: string, key: PublicKey): boolean {
  if (!existsSync(file)) return false;
  const before = readFileSync(file, 'utf8');
  const after = withoutKey(before, key);
  if (after === before) return false;
  writeFileDurably(file, after);
  return true;
}
