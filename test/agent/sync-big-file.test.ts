// A file of several GB arrives whole and right, and lands atomically.
import assert from 'node:assert/strict';
import { closeSync, openSync, statSync, writeSync, ftruncateSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startPair } from '../fixtures/sync-pair.ts';

const GB = 1024 ** 3;

test('a 3 GB file arrives whole, with its content checked by checksum', { timeout: 240_000 }, async () => {
  const pair = await startPair();
  try {
    const file = join(pair.gpu, 'checkpoint.pt');
    const fd = openSync(file, 'w');
    try {
      ftruncateSync(fd, 3 * GB);
      // distinct content spread over the file, so a misplaced block would show
      for (let i = 0; i < 48; i++) writeSync(fd, Buffer.alloc(64 * 1024, i + 1), 0, 64 * 1024, Math.floor((i * 3 * GB) / 48));
    } finally {
      closeSync(fd);
    }
    await pair.synced(180_000);
    assert.equal(statSync(join(pair.cpu, 'checkpoint.pt')).size, 3 * GB);
    assert.deepEqual(await pair.verify(), []);
    rmSync(file);
    await pair.synced(60_000);
  } finally {
    await pair.close();
  }
});
