// The fencing epoch on the standby (standby/epoch-store.ts): 0 until a fence
// writes one, read back as written, a file that is not one whole number stops
// every write, and a state folder that cannot be made says so.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { StandbyError } from '../../core/errors.ts';
import { ensureStateDir, readEpoch, writeEpoch } from '../../standby/epoch-store.ts';

describe("the standby's fencing epoch", () => {
  let top = '';
  beforeEach(() => {
    top = mkdtempSync(join(tmpdir(), 'standby-epoch-'));
  });
  afterEach(() => rmSync(top, { recursive: true, force: true }));

  test('is 0 until written; written, it reads back, one decimal number and a line break, in a folder only its owner reads', () => {
    const state = join(top, 'deep/state');
    assert.equal(readEpoch(state), 0);
    writeEpoch(state, 7);
    assert.equal(readEpoch(state), 7);
    assert.equal(readFileSync(join(state, 'epoch'), 'utf8'), '7\n');
    assert.equal(statSync(state).mode & 0o777, 0o700);
    assert.equal(statSync(join(state, 'epoch')).mode & 0o777, 0o600);
    writeEpoch(state, 123456789012345);
    assert.equal(readEpoch(state), 123456789012345, 'the largest epoch the grammar reads (15 digits)');
  });

  test('a file that is not one whole number stops every write, naming the file and how to fix it', () => {
    for (const text of ['', 'seven\n', '-1\n', '1.5\n', '7 8\n', '1234567890123456\n']) {
      writeFileSync(join(top, 'epoch'), text);
      assert.throws(() => readEpoch(top), (err: unknown) => {
        assert.ok(err instanceof StandbyError, String(err));
        assert.equal(err.code, 'STANDBY_ERR_STATE_CORRUPT');
        assert.equal(err.exitCode, 65);
        assert.match(err.message, /not a whole number: no write is accepted until it is fixed/);
        assert.ok(err.message.includes(join(top, 'epoch')));
        return true;
      }, JSON.stringify(text));
    }
    writeFileSync(join(top, 'epoch'), ' 9 \n');
    assert.equal(readEpoch(top), 9, 'white space around the number is not a second word');
  });

  test('a state folder that cannot be made is STANDBY_ERR_STATE_UNWRITABLE, naming it', () => {
    writeFileSync(join(top, 'a-file'), '');
    const state = join(top, 'a-file/state');
    assert.throws(() => ensureStateDir(state), (err: unknown) => {
      assert.ok(err instanceof StandbyError);
      assert.equal(err.code, 'STANDBY_ERR_STATE_UNWRITABLE');
      assert.ok(err.message.includes(state));
      return true;
    });
    assert.throws(() => writeEpoch(state, 1), /cannot create the receiver's state folder/);
  });
});
