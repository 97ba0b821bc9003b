// The receiver's contract (protocol/receiver.ts): the refusal line as agents
// already installed on GPU hosts read it (byte for byte), reading it back from
// stderr, the fence's request words and its answer.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  authorizeRequestArgs,
  emptyFoldersIn,
  emptyFoldersLine,
  EPOCH_VAR,
  fenceRequestArgs,
  formatRefusal,
  isFenced,
  parseAuthorizeReport,
  parseFenceReport,
  refusalIn,
  revokedHostMessage,
  staleEpochMessage,
  type FenceReport,
} from '../../protocol/receiver.ts';

// the lines as the receiver printed them before the contract had a file of its own
const STALE_LINE = "standby receive: refused: this writer's epoch 1 is older than the standby's epoch 2: the standby was fenced by a failover and accepts writes of epoch 2 or newer only. Nothing was written. This host must stop syncing to the standby (see docs/fencing.md) [STANDBY_ERR_EPOCH_STALE]";
const REVOKED_LINE = 'standby receive: refused: host gpu-1 was revoked at 2026-01-02T03:04:05.678Z (epoch 7), when it was fenced or removed: its key may not write to this standby again. Nothing was written. Enroll it again (standby hosts add gpu-1 on the proxy) to give it new credentials [STANDBY_ERR_HOST_REVOKED]';

describe('the refusal line on stderr', () => {
  test('is the line agents on GPU hosts already read, byte for byte', () => {
    assert.equal(EPOCH_VAR, 'STANDBY_EPOCH');
    assert.equal(formatRefusal('standby receive', staleEpochMessage(1, 2), 'STANDBY_ERR_EPOCH_STALE'), STALE_LINE);
    assert.equal(formatRefusal('standby receive', revokedHostMessage('gpu-1', '2026-01-02T03:04:05.678Z', 7), 'STANDBY_ERR_HOST_REVOKED'), REVOKED_LINE);
    // what agents of before read in it: the code in brackets and the epoch in the words
    assert.ok(STALE_LINE.includes('[STANDBY_ERR_EPOCH_STALE]') && /older than the standby's epoch (\d+)/.exec(STALE_LINE)?.[1] === '2');
    assert.ok(REVOKED_LINE.includes('[STANDBY_ERR_HOST_REVOKED]') && /host \S+ was revoked at \S+ \(epoch (\d+)\)/.exec(REVOKED_LINE)?.[1] === '7');
  });

  test('refusalIn reads the code and the epoch from what rsync printed around it', () => {
    const rsyncSaid = `${STALE_LINE}\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\nrsync error: error in rsync protocol data stream (code 12) at io.c(232) [sender=3.2.7]\n`;
    assert.deepEqual(refusalIn(rsyncSaid), { code: 'STANDBY_ERR_EPOCH_STALE', message: STALE_LINE.replace(' [STANDBY_ERR_EPOCH_STALE]', ''), epoch: 2 });
    assert.deepEqual(refusalIn(`${REVOKED_LINE}\r\n`), { code: 'STANDBY_ERR_HOST_REVOKED', message: REVOKED_LINE.replace(' [STANDBY_ERR_HOST_REVOKED]', ''), epoch: 7 });
    const refused = 'standby receive: refused "rsync --version": only rsync --server (a transfer into the standby) or rsync --version is accepted [STANDBY_ERR_COMMAND_REFUSED]';
    assert.deepEqual(refusalIn(refused), { code: 'STANDBY_ERR_COMMAND_REFUSED', message: refused.replace(' [STANDBY_ERR_COMMAND_REFUSED]', '') });
    assert.equal(refusalIn('standby receive: rsync is not installed on the standby: install it (Debian/Ubuntu: apt-get install rsync) [STANDBY_ERR_MISSING_BINARY]')?.code, 'STANDBY_ERR_MISSING_BINARY');
  });

  test('refusalIn finds nothing in rsync\'s own errors, a code quoted mid-line, or a code the receiver does not send', () => {
    assert.equal(refusalIn(''), undefined);
    assert.equal(refusalIn('rsync: connection unexpectedly closed (0 bytes received so far) [sender]\nrsync error: (code 12) [sender=3.2.7]'), undefined);
    assert.equal(refusalIn('standby receive: refused "x [STANDBY_ERR_EPOCH_STALE] y": "x" is not a command this key may run'), undefined);
    assert.equal(refusalIn('standby install: cannot write /etc [STANDBY_ERR_INSTALL_FAILED]'), undefined);
    assert.equal(refusalIn('ssh: connect to host 10.0.0.7 port 22: Connection refused'), undefined);
  });

  test('of several, the last counts; fenced means stale or revoked only', () => {
    const both = `standby receive: the standby's write lock /x/lock stayed held exclusively for 5 ms [STANDBY_ERR_LOCK_TIMEOUT]\n${STALE_LINE}`;
    assert.equal(refusalIn(both)?.code, 'STANDBY_ERR_EPOCH_STALE');
    assert.equal(isFenced(refusalIn(STALE_LINE)), true);
    assert.equal(isFenced(refusalIn(REVOKED_LINE)), true);
    assert.equal(isFenced(refusalIn('standby receive: lock [STANDBY_ERR_LOCK_TIMEOUT]')), false);
    assert.equal(isFenced(refusalIn('standby receive: refused "cat": no [STANDBY_ERR_COMMAND_REFUSED]')), false);
    assert.equal(isFenced(undefined), false);
  });
});

describe("the fence's request and answer", () => {
  test('the request words, as the receiver reads them', () => {
    assert.deepEqual(fenceRequestArgs(7), ['--fence', '7']);
    assert.deepEqual(fenceRequestArgs(7, { waitMs: 500, revoke: ['gpu-1', 'gpu-2'] }), ['--fence', '7', '--wait-ms', '500', '--revoke', 'gpu-1', '--revoke', 'gpu-2']);
    assert.deepEqual(fenceRequestArgs(undefined, { revoke: ['gpu-1'] }), ['--revoke', 'gpu-1'], 'a revocation alone, at the current epoch');
    assert.deepEqual(authorizeRequestArgs('gpu-3', 'ssh-ed25519 AAAA x'), ['--authorize', 'gpu-3', '--key', 'ssh-ed25519 AAAA x']);
  });

  const report: FenceReport = { epoch: 3, previousEpoch: 2, waitedMs: 12, killed: 1, signalled: [{ pid: 41, epoch: 2, signal: 'SIGTERM' }], locked: true, revoked: ['gpu-1'], keysRemoved: 1 };

  test("the receiver's JSON line reads back as it was written", () => {
    assert.deepEqual(parseFenceReport(JSON.parse(JSON.stringify(report))), report);
    const { keysRemoved: _, ...noKeys } = report;
    assert.deepEqual(parseFenceReport(noKeys), noKeys, 'keysRemoved only where the receiver manages authorized_keys');
  });

  test('an answer from a receiver of before signalled, locked and revoked reads as none, locked, none', () => {
    assert.deepEqual(parseFenceReport({ epoch: 3, previousEpoch: 2, waitedMs: 0, killed: 0 }), { epoch: 3, previousEpoch: 2, waitedMs: 0, killed: 0, signalled: [], locked: true, revoked: [] });
  });

  test('anything else is not a fence answer', () => {
    const bad: unknown[] = [
      undefined, null, 'x', [report],
      { ...report, epoch: '3' }, { ...report, epoch: -1 }, { ...report, previousEpoch: undefined }, { ...report, waitedMs: 1.5 }, { ...report, killed: null },
      { ...report, signalled: 'none' }, { ...report, signalled: [{ pid: 41, epoch: 2, signal: 'SIGSTOP' }] }, { ...report, signalled: [{ pid: '41', epoch: 2, signal: 'SIGKILL' }] },
      { ...report, locked: 'yes' }, { ...report, revoked: [1] }, { ...report, keysRemoved: 'one' },
    ];
    for (const answer of bad) assert.equal(parseFenceReport(answer), undefined, JSON.stringify(answer));
  });

  test('the authorize answer names its host; a missing count is 0', () => {
    assert.deepEqual(parseAuthorizeReport({ authorized: 'gpu-3', replaced: 1, lifted: true, line: 'command="..." ssh-ed25519 AAAA', roots: ['/ws', 2] }), { authorized: 'gpu-3', replaced: 1, lifted: true, line: 'command="..." ssh-ed25519 AAAA', roots: ['/ws'] });
    assert.deepEqual(parseAuthorizeReport({ authorized: 'gpu-3' }), { authorized: 'gpu-3', replaced: 0, lifted: false, line: '', roots: [] });
    assert.equal(parseAuthorizeReport({ epoch: 3 }), undefined);
    assert.equal(parseAuthorizeReport(null), undefined);
  });
});

describe("the empty folders' line after mkdir -p", () => {
  test('reads back the places it was written with, beside rsync and ssh lines; none: no line', () => {
    assert.equal(emptyFoldersLine([]), undefined);
    assert.equal(emptyFoldersLine([0, 2]), 'standby receive: empty folders: 0 2');
    assert.deepEqual([...emptyFoldersIn(`Warning: added host\r\n${emptyFoldersLine([0, 2])}\r\n`, 3)], [0, 2]);
  });

  test('trusts nothing it cannot read whole: a place past the folders named, a word that is not a place, no line at all', () => {
    assert.deepEqual([...emptyFoldersIn('standby receive: empty folders: 0 5', 2)], [0], 'a place past the folders named is not one of them');
    assert.deepEqual([...emptyFoldersIn('standby receive: empty folders: 0 x', 2)], []);
    assert.deepEqual([...emptyFoldersIn('standby receive: empty folders: 01', 2)], []);
    assert.deepEqual([...emptyFoldersIn('standby receive: empty folders:', 2)], []);
    assert.deepEqual([...emptyFoldersIn('mkdir: created directory', 2)], []);
  });
});
