// The hosts the standby refuses for good (standby/revoked-hosts.ts): added
// durably with the epoch of their revocation, the first record kept, lifted
// when a host is enrolled again, and a list that cannot be read refuses
// everyone rather than no one.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { StandbyError } from '../../core/errors.ts';
import { addRevoked, liftRevoked, readRevoked } from '../../standby/revoked-hosts.ts';

describe('the revoked hosts', () => {
  let state = '';
  beforeEach(() => {
    state = mkdtempSync(join(tmpdir(), 'standby-revoked-'));
  });
  afterEach(() => rmSync(state, { recursive: true, force: true }));

  test('added with the epoch, kept with their first record, lifted one by one', () => {
    assert.deepEqual(readRevoked(state), {});
    addRevoked(state, ['gpu-1', 'gpu-2'], 3);
    const first = readRevoked(state);
    assert.deepEqual(Object.keys(first).sort(), ['gpu-1', 'gpu-2']);
    assert.equal(first['gpu-1']!.epoch, 3);
    assert.ok(!Number.isNaN(Date.parse(first['gpu-1']!.at)), 'an ISO time');
    addRevoked(state, ['gpu-1'], 9);
    assert.deepEqual(readRevoked(state)['gpu-1'], first['gpu-1'], 'revoked again: the first record stays');
    assert.equal(liftRevoked(state, 'gpu-1'), true);
    assert.equal(liftRevoked(state, 'gpu-1'), false, 'lifting a host not revoked changes nothing');
    assert.deepEqual(Object.keys(readRevoked(state)), ['gpu-2']);
    assert.deepEqual(JSON.parse(readFileSync(join(state, 'revoked-hosts.json'), 'utf8')), readRevoked(state));
  });

  test('a host id outside the grammar is refused and nothing is written', () => {
    assert.throws(() => addRevoked(state, ['../etc'], 1), (err: unknown) => err instanceof StandbyError && err.code === 'STANDBY_ERR_CONFIG_INVALID');
    assert.deepEqual(readRevoked(state), {});
  });

  test('a list that is not a JSON object refuses every writer (STANDBY_ERR_STATE_CORRUPT), naming the file', () => {
    for (const text of ['{', '[]', 'null', '"gpu-1"']) {
      writeFileSync(join(state, 'revoked-hosts.json'), text);
      assert.throws(() => readRevoked(state), (err: unknown) => {
        assert.ok(err instanceof StandbyError);
        assert.equal(err.code, 'STANDBY_ERR_STATE_CORRUPT');
        assert.match(err.message, /no write is accepted until it is fixed/);
        return true;
      }, text);
      assert.throws(() => addRevoked(state, ['gpu-1'], 1), /not the revoked-hosts JSON object/);
    }
  });
});
