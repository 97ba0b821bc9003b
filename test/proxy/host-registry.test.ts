// The proxy's host list (proxy/host-registry.ts): invitations are one-time,
// bound to one host and expire; only hashes are stored; a revoked host's token
// is told apart from a wrong one; everything survives a restart.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { AGENT_TOKEN_PREFIX, INVITE_PREFIX } from '../../protocol/admin-api.ts';
import { HostRegistry } from '../../proxy/host-registry.ts';

const KEY = { type: 'ssh-ed25519', fingerprint: 'SHA256:x', publicKey: 'ssh-ed25519 AAAA' };

describe('the host registry', () => {
  const dirs: string[] = [];
  const fresh = () => {
    const d = mkdtempSync(join(tmpdir(), 'standby-hosts-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('an invitation becomes the host\'s own token once; the file keeps hashes only; a restart keeps it all', () => {
    const dir = fresh();
    const r = HostRegistry.open(dir);
    const { token } = r.invite('gpu-1', 60_000);
    assert.ok(token.startsWith(INVITE_PREFIX));
    assert.equal(r.beginEnroll(token), 'gpu-1');
    const agentToken = r.finishEnroll('gpu-1', KEY);
    assert.ok(agentToken.startsWith(AGENT_TOKEN_PREFIX));
    assert.notEqual(agentToken, token);
    const text = readFileSync(join(dir, 'hosts.json'), 'utf8');
    assert.ok(!text.includes(token) && !text.includes(agentToken), 'no token in the file, only hashes');
    assert.throws(() => r.beginEnroll(token), /unknown or already used/);
    assert.throws(() => r.beginEnroll(agentToken), /an agent token, not an invitation/);

    const again = HostRegistry.open(dir);
    assert.equal(again.hostForToken(agentToken)?.id, 'gpu-1');
    assert.equal(again.get('gpu-1')?.state, 'active');
    assert.equal(again.hostForToken('sba_wrong'), undefined);
  });

  test('an invitation expires, and is bound to its host; a new one replaces an unused one', () => {
    const r = HostRegistry.open(fresh());
    const now = Date.now();
    const first = r.invite('gpu-2', 1_000, now);
    assert.throws(() => r.beginEnroll(first.token, now + 1_001), /invitation for gpu-2 expired/);
    const second = r.invite('gpu-2', 60_000, now);
    assert.throws(() => r.beginEnroll(first.token, now), /unknown or already used/);
    assert.equal(r.beginEnroll(second.token, now), 'gpu-2');
    assert.throws(() => r.beginEnroll(second.token, now), /already enrolling/, 'two enrollments with one invitation at once');
    r.abortEnroll('gpu-2');
    assert.equal(r.beginEnroll(second.token, now), 'gpu-2', 'an aborted enrollment leaves the invitation usable');
  });

  test('a revoked host: its token is known as revoked, its key marked to go; enrolling again makes it active', () => {
    const dir = fresh();
    const r = HostRegistry.open(dir);
    const inv = r.invite('gpu-3', 60_000);
    r.beginEnroll(inv.token);
    const token = r.finishEnroll('gpu-3', KEY);
    assert.equal(r.revoke('gpu-3', 'fenced at epoch 2'), true);
    assert.equal(r.revoke('gpu-3', 'again'), false);
    assert.equal(r.hostForToken(token)?.state, 'revoked');
    assert.deepEqual(r.pendingKeyRevocations(), ['gpu-3']);
    r.keyRevocation('gpu-3', 'standby unreachable');
    assert.equal(HostRegistry.open(dir).get('gpu-3')?.keyRevokeError, 'standby unreachable');
    r.keyRevocation('gpu-3');
    assert.deepEqual(r.pendingKeyRevocations(), []);

    const inv2 = r.invite('gpu-3', 60_000);
    r.beginEnroll(inv2.token);
    const token2 = r.finishEnroll('gpu-3', KEY);
    assert.equal(r.get('gpu-3')?.state, 'active');
    assert.equal(r.get('gpu-3')?.revokedWhy, undefined);
    assert.equal(r.hostForToken(token), undefined, 'the old token is gone for good');
    assert.equal(r.hostForToken(token2)?.id, 'gpu-3');
  });

  test('a bad host id is refused; a damaged file stops the proxy with what to do', () => {
    const dir = fresh();
    const r = HostRegistry.open(dir);
    assert.throws(() => r.invite('../etc', 60_000), /expected 1-63 letters/);
    assert.throws(() => r.invite('gpu 1', 60_000), /expected 1-63 letters/);
    writeFileSync(join(dir, 'hosts.json'), '{"hosts": 3}');
    assert.throws(() => HostRegistry.open(dir), /not the proxy's host list.*restore it/);
  });
});
