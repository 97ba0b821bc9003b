// The fence on the standby (`standby receive --fence`, standby/fence.ts) with
// real receivers behind a real sshd and real rsync: it writes the epoch
// durably and idempotently, waits for an in-flight writer of an older epoch or,
// past its wait, kills it (no partial file left in place), kills the orphaned
// rsync of a killed receiver, leaves writers of the current epoch alone, and
// never holds up a writer of the new epoch.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { liveReceivers } from '../../standby/receiver-registry.ts';
import { startStandbyReceiver, type StandbyReceiver } from '../fixtures/standby-receiver.ts';
import { waitFor } from '../fixtures/wait-for.ts';


/** rsync is writing `name` into `dir`: its temporary file (.name.XXXXXX) or, whole, in --delay-updates' holding folder, and not yet in place */
function inFlight(dir: string, name: string): boolean {
  if (!existsSync(dir) || existsSync(join(dir, name))) return false;
  return existsSync(join(dir, '.~tmp~', name)) || readdirSync(dir).some((f) => f.startsWith(`.${name}.`));
}

function sha(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

describe('the fence, with receivers as the forced command of a real sshd', () => {
  let w: StandbyReceiver;
  let root = '';
  let state = '';
  let src = '';
  before(async () => {
    w = await startStandbyReceiver();
    ({ root, state, src } = w);
  });
  after(() => w?.close());

  const dest = (path: string): string => w.dest(path);
  const rsyncTo: StandbyReceiver['rsyncTo'] = (...args) => w.rsyncTo(...args);
  const fence: StandbyReceiver['fence'] = (...args) => w.fence(...args);
  const storedEpoch = (): number => w.storedEpoch();
  const lockFree = (): boolean => w.lockFree();
  const startReceiver: StandbyReceiver['startReceiver'] = (...args) => w.startReceiver(...args);
  const exited: StandbyReceiver['exited'] = (child) => w.exited(child);

  test('fence: writes the epoch, is idempotent, refuses a lower one', async () => {
    const base = storedEpoch();
    const first = await fence(base + 2);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(first.result, { epoch: base + 2, previousEpoch: base, waitedMs: first.result!['waitedMs'], killed: 0, signalled: [], locked: true, revoked: [] });
    const again = await fence(base + 2);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.result!['previousEpoch'], base + 2, 'the same epoch again is fine');
    const lower = await fence(base + 1);
    assert.equal(lower.code, 79);
    assert.match(lower.stderr, /already fenced at epoch \d+, newer than the requested \d+.*\[STANDBY_ERR_EPOCH_STALE\]/);
    assert.equal(storedEpoch(), base + 2);
    assert.equal(readFileSync(join(state, 'epoch'), 'utf8'), `${base + 2}\n`);
  });


  test('the fence waits for an in-flight transfer of the old epoch, which lands whole before it returns', async () => {
    const epoch = storedEpoch();
    const big = join(src, 'slow/big.bin');
    mkdirSync(dirname(big), { recursive: true });
    writeFileSync(big, randomBytes(1 << 20));
    const transfer = rsyncTo(epoch, ['-a', '--delay-updates', '--bwlimit=1000', `${src}/slow/`, dest(`${root}/slow/`)]);
    await waitFor('the transfer in flight', () => inFlight(join(root, 'slow'), 'big.bin'), { timeoutMs: 10_000, everyMs: 5 });
    const f = await fence(epoch + 1);
    assert.equal(f.code, 0, f.stderr);
    // the fence returned: the old writer is done, its file complete and in place
    assert.equal(sha(join(root, 'slow/big.bin')), sha(big), 'the whole file landed before the fence returned');
    assert.equal(f.result!['killed'], 0);
    assert.ok((f.result!['waitedMs'] as number) > 0);
    const r = await transfer;
    assert.equal(r.code, 0, r.stderr);
  });

  test('past its wait, the fence kills the old transfer, which leaves no partial file in place; then only the new epoch writes', async () => {
    const epoch = storedEpoch();
    const big = join(src, 'slower/big.bin');
    mkdirSync(dirname(big), { recursive: true });
    writeFileSync(big, randomBytes(2 << 20));
    const transfer = rsyncTo(epoch, ['-a', '--delay-updates', '--bwlimit=200', `${src}/slower/`, dest(`${root}/slower/`)]);
    await waitFor('the transfer in flight', () => inFlight(join(root, 'slower'), 'big.bin'), { timeoutMs: 10_000, everyMs: 5 });
    const started = performance.now();
    const f = await fence(epoch + 1, 300);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.result!['killed'], 1, JSON.stringify(f.result));
    assert.ok(performance.now() - started < 5_000, 'killed at once after the wait, not after the transfer');
    const r = await transfer;
    assert.notEqual(r.code, 0, 'the old transfer was cut');
    assert.equal(existsSync(join(root, 'slower/big.bin')), false, 'no partial file in place');
    assert.deepEqual(liveReceivers(state), [], 'no receiver left');

    const stale = await rsyncTo(epoch, ['-a', '--delay-updates', `${src}/slower/`, dest(`${root}/slower/`)]);
    assert.match(stale.stderr, /STANDBY_ERR_EPOCH_STALE/);
    assert.equal(existsSync(join(root, 'slower/big.bin')), false);
    const fresh = await rsyncTo(epoch + 1, ['-a', '--delay-updates', `${src}/slower/`, dest(`${root}/slower/`)]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal(sha(join(root, 'slower/big.bin')), sha(big));
  });


  test('the fence kills the orphaned rsync of a killed receiver of the old epoch', async () => {
    const epoch = storedEpoch();
    const { child, end } = startReceiver(epoch, `${root}/orphan/`);
    const record = await waitFor('the receiver running rsync', () => liveReceivers(state).find((r) => r.pid === child.pid && r.child));
    child.kill('SIGKILL');
    await exited(child);
    const f = await fence(epoch + 1, 200);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.result!['killed'], 1);
    assert.deepEqual((f.result!['signalled'] as { pid: number }[]).map((s) => s.pid), [record.pid]);
    assert.ok(lockFree(), 'the lock is free after the fence');
    assert.equal(existsSync(join(root, 'orphan')), false);
    end();
  });

  test('a fence run again at the current epoch (a restarted proxy) leaves writers of that epoch alone', async () => {
    const epoch = storedEpoch();
    const { child, end } = startReceiver(epoch, `${root}/current/`);
    try {
      await waitFor('the receiver running rsync', () => liveReceivers(state).find((r) => r.pid === child.pid && r.child));
      const started = performance.now();
      const f = await fence(epoch, 200);
      assert.equal(f.code, 0, f.stderr);
      assert.deepEqual({ ...f.result, waitedMs: 0 }, { epoch, previousEpoch: epoch, waitedMs: 0, killed: 0, signalled: [], locked: false, revoked: [] });
      assert.ok(performance.now() - started < 2_000, 'no kill rounds for writers of the current epoch');
      assert.equal(child.exitCode, null, 'the current writer still runs');
    } finally {
      end();
    }
    assert.notEqual(await exited(child), 0, "the receiver ends with its rsync, cut by the closed connection (rsync's exit code)");
  });

  test('a writer of the new epoch is not held up by a fence waiting for an old one', async () => {
    const epoch = storedEpoch();
    // an old-epoch receiver holds the lock, so the fence waits; a writer of the new epoch passes meanwhile
    const { child: old, end } = startReceiver(epoch, `${root}/queued-old/`);
    await waitFor('the old receiver running rsync', () => liveReceivers(state).find((r) => r.pid === old.pid && r.child));
    const fencing = fence(epoch + 1, 300);
    await waitFor('the epoch written', () => storedEpoch() === epoch + 1);
    const fresh = await rsyncTo(epoch + 1, ['-a', `${src}/`, dest(`${root}/queued-new/`)]);
    assert.equal(fresh.code, 0, fresh.stderr);
    const f = await fencing;
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.result!['killed'], 1, JSON.stringify(f.result));
    assert.notEqual(await exited(old), 0, 'the old receiver ends with its killed rsync');
    end();
    assert.ok(existsSync(join(root, 'queued-new/a.txt')));
  });
});
