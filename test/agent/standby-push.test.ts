// The receiver's refusals told apart from other failures on the standby: read
// from stderr as the receiver prints them (`[STANDBY_ERR_<CODE>]`), and the
// error a refused pass fails with, on which the engine stops pushing.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StandbyError } from '../../core/errors.ts';
import { isRefusal, refusalOf, refusedError, type Refusal } from '../../agent/standby-push.ts';

describe('refusalOf', () => {
  const cases: { name: string; stderr: string; want: Refusal | undefined }[] = [
    { name: 'a stale epoch', stderr: 'standby receive: epoch 3 is older than the standby\'s epoch 4 [STANDBY_ERR_EPOCH_STALE]', want: 'EPOCH_STALE' },
    { name: 'a revoked host', stderr: 'standby receive: host gpu-1 was revoked at 2026-01-01T00:00:00Z (epoch 4) [STANDBY_ERR_HOST_REVOKED]', want: 'HOST_REVOKED' },
    { name: 'among rsync\'s own lines', stderr: 'rsync: connection unexpectedly closed (0 bytes received so far) [sender]\nx [STANDBY_ERR_EPOCH_STALE]\nrsync error: error in rsync protocol data stream (code 12)', want: 'EPOCH_STALE' },
    { name: 'both named: revoked wins (the key is gone for good)', stderr: '[STANDBY_ERR_EPOCH_STALE] [STANDBY_ERR_HOST_REVOKED]', want: 'HOST_REVOKED' },
    { name: 'nothing', stderr: '', want: undefined },
    { name: 'an ordinary failure', stderr: 'rsync: write failed on "/srv/x": No space left on device (28)', want: undefined },
    { name: 'another receiver refusal (not a fence)', stderr: 'standby receive: the path is outside every sync root [STANDBY_ERR_COMMAND_REFUSED]', want: undefined },
    { name: 'the code without its brackets is not the receiver speaking', stderr: 'a file named STANDBY_ERR_EPOCH_STALE vanished', want: undefined },
  ];
  for (const c of cases) test(c.name, () => assert.equal(refusalOf(c.stderr), c.want));
});

describe('refusedError', () => {
  test('a stale epoch names the epoch and why', () => {
    const err = refusedError('EPOCH_STALE', 6);
    assert.ok(err instanceof StandbyError);
    assert.equal(err.code, 'STANDBY_ERR_EPOCH_STALE');
    assert.match(err.message, /refused this agent's epoch 6: it was fenced under a newer one/);
    assert.ok(isRefusal(err));
  });
  test('a revoked key is a refusal too, and says so', () => {
    const err = refusedError('HOST_REVOKED', undefined);
    assert.match(err.message, /epoch 0: this host's key was revoked/);
    assert.ok(isRefusal(err));
  });
  test('other failures are not refusals', () => {
    assert.ok(!isRefusal(new StandbyError('STANDBY_ERR_RSYNC_FAILED', 'x', {})));
    assert.ok(!isRefusal(new Error('[STANDBY_ERR_EPOCH_STALE]')));
  });
});
