// The file a full pass's rsync writes its progress to (agent/progress-file.ts):
// only complete lines are handed over, a read that starts inside a line drops
// that line, the file is emptied when big only while rsync has many files left
// (so the closing --stats block is never cut), and nothing is left on disk.
// Then runRsync with a real rsync: progress arrives while it runs, and the
// stats are read from the file at the end.
import assert from 'node:assert/strict';
import { fstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseProgressLine } from '../../agent/pass-progress.ts';
import { ProgressFile } from '../../agent/progress-file.ts';
import { runRsync } from '../../agent/rsync.ts';

let root = '';
before(() => {
  root = mkdtempSync(join(tmpdir(), 'standby-progress-file-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

function line(n: number, left: number, total: number): string {
  return `  ${n * 100} 100%  1.00MB/s  0:00:00 (xfr#${n}, ir-chk=${left}/${total})\r`;
}

describe('ProgressFile', () => {
  test('is unlinked at once: a killed agent leaves no file behind', () => {
    const dir = join(root, 'unlinked');
    mkdirSync(dir);
    const file = new ProgressFile(dir);
    try {
      assert.deepEqual(readdirSync(dir), []);
      writeSync(file.fd, line(1, 9, 10));
      assert.equal(file.read(), line(1, 9, 10));
    } finally {
      file.close();
    }
  });

  test('hands over complete lines only; the rest of a line comes with the next read', () => {
    const file = new ProgressFile(root);
    try {
      assert.equal(file.read(), '');
      writeSync(file.fd, 'first\rsec');
      assert.equal(file.read(), 'first\r');
      assert.equal(file.read(), '');
      writeSync(file.fd, 'ond\nthird');
      assert.equal(file.read(), 'second\n');
    } finally {
      file.close();
    }
  });

  test('after much output, a read keeps the newest lines and drops the cut one at the start', () => {
    const file = new ProgressFile(root);
    try {
      for (let n = 1; n <= 2_000; n++) writeSync(file.fd, line(n, 5_000 - n, 5_000));
      const text = file.read();
      const lines = text.split('\r').filter((l) => l !== '');
      assert.ok(lines.length > 50 && lines.length < 2_000, `${lines.length} lines`);
      for (const l of lines) assert.ok(parseProgressLine(l), `a whole progress line: ${JSON.stringify(l)}`);
      assert.equal(lines.at(-1), line(2_000, 3_000, 5_000).slice(0, -1));
    } finally {
      file.close();
    }
  });

  test('is emptied above 8 MiB while many files are left, never when few are (the --stats block follows the last file)', () => {
    const few = new ProgressFile(root);
    const many = new ProgressFile(root);
    try {
      const block = (left: number) => Array.from({ length: 1_000 }, (_, i) => line(i, left, 200_000)).join('');
      for (let i = 0; i < 200; i++) {
        writeSync(many.fd, block(150_000));
        writeSync(few.fd, block(10));
      }
      assert.ok(fstatSync(many.fd).size > 8 * 1024 * 1024);
      assert.ok(many.read().length > 0);
      assert.equal(fstatSync(many.fd).size, 0, 'emptied: 150,000 files left');
      // appends go on at the new end (O_APPEND), and are read from there
      writeSync(many.fd, line(7, 149_000, 200_000));
      assert.equal(many.read(), line(7, 149_000, 200_000));
      assert.ok(few.read().length > 0);
      assert.ok(fstatSync(few.fd).size > 8 * 1024 * 1024, 'kept: 10 files left');
      writeSync(few.fd, 'Number of files: 200,000\n');
      assert.match(few.finish(), /Number of files: 200,000\n$/);
    } finally {
      few.close();
      many.close();
    }
  });
});

describe('runRsync with progress', () => {
  test('progress arrives while rsync runs, and the stats at the end are read from the file', async () => {
    const src = join(root, 'src');
    for (let d = 0; d < 20; d++) {
      mkdirSync(join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) writeFileSync(join(src, `d${d}`, `f${f}`), `${d}/${f}\n`);
    }
    // a big file sent slowly keeps rsync running across several reads
    writeFileSync(join(src, 'big.bin'), Buffer.alloc(8_000_000, 7));
    const dst = join(root, 'dst');
    mkdirSync(dst);
    const seen: { at: number; bytes: number }[] = [];
    const started = performance.now();
    const run = runRsync(['--info=progress2', '-a', '--stats', '--bwlimit=4000', `${src}/`, `${dst}/`], {
      progress: (text) => {
        const last = text.split(/[\r\n]/).map(parseProgressLine).filter((p) => p !== undefined).at(-1);
        if (last) seen.push({ at: performance.now() - started, bytes: last.bytes });
      },
    });
    const result = await run.result;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stats.filesTransferred, 2_001);
    assert.equal(result.stats.files, 2_022);
    assert.ok(seen.length >= 2, `progress seen ${seen.length} times: ${JSON.stringify(seen)}`);
    const during = seen.filter((s) => s.at < result.durationMs - 100);
    assert.ok(during.length >= 1, `progress before the end: ${JSON.stringify(seen)}`);
    assert.ok(seen.at(-1)!.bytes >= 8_000_000, 'the last figures count every byte');
  });
});
