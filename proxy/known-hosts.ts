// Checks an SSH host key against an OpenSSH known_hosts file, for clients on
// the ssh2 library (which has no known_hosts support of its own). Understands
// plain and hashed (`|1|salt|hash`) host names, `[host]:port`, comma-separated
// patterns with `*`, `?` and `!` negation, and `@revoked` lines; `@cert-authority`
// lines are skipped (host certificates are not supported).
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface HostKeyCheck {
  ok: boolean;
  /** why not, in words, when not ok */
  reason?: string;
}

/** How known_hosts names a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function glob(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

function hashedMatches(entry: string, name: string): boolean {
  const [, magic, salt, hash] = entry.split('|');
  if (magic !== '1' || !salt || !hash) return false;
  return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
}

function hostMatches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|')) return hashedMatches(patterns, name);
  let matched = false;
  for (const p of patterns.split(',')) {
    if (p.startsWith('!')) {
      if (glob(p.slice(1), name)) return false;
    } else if (glob(p, name)) {
      matched = true;
    }
  }
  return matched;
}

/** Checks `key` (the raw public key blob the server presented) for host:port against the file's text. */
export function checkHostKey(knownHosts: string, host: string, port: number, key: Buffer): HostKeyCheck {
  const name = knownHostsName(host, port);
  let known = 0;
  let trusted = false;
  for (const raw of knownHosts.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0]?.startsWith('@')) marker = fields.shift();
    const [patterns, , blob] = fields;
    if (!patterns || !blob || marker === '@cert-authority') continue;
    if (!hostMatches(patterns, name)) continue;
    const same = Buffer.from(blob, 'base64').equals(key);
    if (marker === '@revoked') {
      if (same) return { ok: false, reason: `the host key of ${name} is marked @revoked in known_hosts` };
      continue;
    }
    known++;
    if (same) trusted = true;
  }
  if (trusted) return { ok: true };
  if (known === 0) return { ok: false, reason: `known_hosts has no key for ${name}: add the standby's host key (ssh-keyscan -p ${port} ${host} >> known_hosts, then check it)` };
  return { ok: false, reason: `the host key of ${name} does not match known_hosts (${known} key(s) listed): the standby was reinstalled, or someone is in between; check before you replace the entry` };
}

/** Reads the file once; the returned function checks a key for host:port. */
export function knownHostsChecker(file: string, host: string, port: number): (key: Buffer) => HostKeyCheck {
  const text = readFileSync(file, 'utf8');
  return (key) => checkHostKey(text, host, port, key);
}
