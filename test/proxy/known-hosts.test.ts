// Host key checks against known_hosts text (proxy/known-hosts.ts), the way
// OpenSSH writes and reads the file: plain and hashed names, [host]:port,
// patterns, @revoked, and the reasons it gives when a key is not trusted.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { checkHostKey, knownHostsName } from '../../proxy/known-hosts.ts';

function key(): Buffer {
  return Buffer.concat([Buffer.from('\0\0\0\x0bssh-ed25519\0\0\0\x20', 'latin1'), randomBytes(32)]);
}
const A = key();
const B = key();
const a = `ssh-ed25519 ${A.toString('base64')}`;
const b = `ssh-ed25519 ${B.toString('base64')}`;

function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

describe('checkHostKey', () => {
  const cases: { name: string; file: string; host: string; port: number; presented: Buffer; ok: boolean; reason?: RegExp }[] = [
    { name: 'a plain entry on port 22', file: `standby.example ${a}\n`, host: 'standby.example', port: 22, presented: A, ok: true },
    { name: 'host names are not case-sensitive', file: `Standby.Example ${a}\n`, host: 'standby.example', port: 22, presented: A, ok: true },
    { name: '[host]:port for another port', file: `[10.0.0.5]:2222 ${a}\n`, host: '10.0.0.5', port: 2222, presented: A, ok: true },
    { name: 'a bare host does not cover another port', file: `10.0.0.5 ${a}\n`, host: '10.0.0.5', port: 2222, presented: A, ok: false, reason: /no key for \[10\.0\.0\.5\]:2222/ },
    { name: 'a hashed entry', file: `${hashed('[10.0.0.5]:2222')} ${a}\n`, host: '10.0.0.5', port: 2222, presented: A, ok: true },
    { name: 'a hashed entry of another host', file: `${hashed('10.0.0.6')} ${a}\n`, host: '10.0.0.5', port: 22, presented: A, ok: false, reason: /no key for 10\.0\.0\.5/ },
    { name: 'one of several names, and a comment', file: `# the standby\nstandby,10.0.0.5 ${a} root@standby\n`, host: '10.0.0.5', port: 22, presented: A, ok: true },
    { name: 'a wildcard', file: `10.0.0.* ${a}\n`, host: '10.0.0.5', port: 22, presented: A, ok: true },
    { name: 'a negated name wins over a wildcard', file: `10.0.0.*,!10.0.0.5 ${a}\n`, host: '10.0.0.5', port: 22, presented: A, ok: false, reason: /no key/ },
    { name: 'another key for the host', file: `10.0.0.5 ${b}\n`, host: '10.0.0.5', port: 22, presented: A, ok: false, reason: /does not match known_hosts \(1 key/ },
    { name: 'one of two keys for the host', file: `10.0.0.5 ${b}\n10.0.0.5 ${a}\n`, host: '10.0.0.5', port: 22, presented: A, ok: true },
    { name: 'a revoked key', file: `@revoked 10.0.0.5 ${a}\n10.0.0.5 ${a}\n`, host: '10.0.0.5', port: 22, presented: A, ok: false, reason: /@revoked/ },
    { name: 'a cert-authority line is no host key', file: `@cert-authority 10.0.0.5 ${a}\n`, host: '10.0.0.5', port: 22, presented: A, ok: false, reason: /no key/ },
    { name: 'an empty file', file: '', host: '10.0.0.5', port: 22, presented: A, ok: false, reason: /ssh-keyscan -p 22 10\.0\.0\.5/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = checkHostKey(c.file, c.host, c.port, c.presented);
      assert.equal(r.ok, c.ok, r.reason);
      if (c.reason) assert.match(r.reason ?? '', c.reason);
    });
  }

  test('knownHostsName', () => {
    assert.equal(knownHostsName('h', 22), 'h');
    assert.equal(knownHostsName('h', 2222), '[h]:2222');
  });
});
