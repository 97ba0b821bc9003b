// The agent's (and the proxy's) ssh key: made once, kept, and a lost .pub put back from the private key.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ensureAgentKey } from '../../installer/keys.ts';

test('made once, then kept; a missing .pub is derived and written back (0644), the key unchanged', () => {
  const dir = mkdtempSync(join(tmpdir(), 'standby-keys-'));
  try {
    const keyDir = join(dir, 'keys');
    const made = ensureAgentKey(keyDir);
    assert.equal(made.created, true);
    assert.equal(statSync(keyDir).mode & 0o777, 0o700);
    const kept = ensureAgentKey(keyDir);
    assert.deepEqual([kept.created, kept.publicKey], [false, made.publicKey]);

    rmSync(`${made.identityFile}.pub`);
    const derived = ensureAgentKey(keyDir);
    assert.equal(derived.created, false);
    assert.equal(derived.publicKey.split(' ').slice(0, 2).join(' '), made.publicKey.split(' ').slice(0, 2).join(' '), 'the same key');
    assert.equal(readFileSync(`${made.identityFile}.pub`, 'utf8').trim(), derived.publicKey, 'the .pub is back');
    assert.equal(statSync(`${made.identityFile}.pub`).mode & 0o777, 0o644);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
