// The standby's disk fills up mid-stream and is freed: the agent keeps every
// change, reports the failure, and converges once there is room.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startPair } from '../fixtures/sync-pair.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { watchAcknowledgements, WriterLog } from '../fixtures/writer-log.ts';

test('standby disk full, then freed: nothing dropped, converges, verify clean', async (t) => {
  const mount = mkdtempSync(join(tmpdir(), 'standby-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mount]);
  } catch (err) {
    rmSync(mount, { recursive: true, force: true });
    throw new Error(`this test mounts a 24 MB tmpfs as the standby's disk and needs root (CAP_SYS_ADMIN): ${(err as Error).message}`);
  }
  const cpu = join(mount, 'workspace');
  const filler = join(mount, 'filler');
  const pair = await startPair({ cpu });
  t.after(async () => {
    await pair.close();
    execFileSync('umount', ['-l', mount]);
    rmSync(mount, { recursive: true, force: true });
  });

  const log = new WriterLog(pair.gpu, pair.engine);
  const acks = watchAcknowledgements(pair.engine, log, pair.cpu);
  log.write('small.txt');
  await pair.synced();
  // someone else fills the standby's disk
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=32', 'status=none'], { stdio: 'ignore' });
  } catch {
    // dd stops at "No space left on device": that is the point
  }
  mkdirSync(join(pair.gpu, 'data'));
  for (let i = 0; i < 6; i++) log.write(`data/chunk-${i}.bin`, 'z'.repeat(1024 * 1024));
  await waitFor('a failed pass', () => pair.engine.status().failedPasses > 0, { timeoutMs: 15_000 });
  const s = pair.engine.status();
  assert.ok(s.pending > 0, 'the changes are still pending, not dropped');
  assert.ok(s.watermark < s.lastSeq, 'and not acknowledged');
  assert.match(s.lastError?.message ?? '', /disk full|No space|I\/O|partial/i, 'the error says what went wrong');
  rmSync(filler); // room again
  await pair.synced(30_000);
  assert.ok(acks.checks() > 0);
  assert.deepEqual(acks.violations, [], 'every acknowledged write is on the standby');
  assert.deepEqual(await pair.verify(), []);
});
