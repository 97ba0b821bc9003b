// parseStats on real `rsync --stats` output (captured here from local runs,
// thousands separators included), runRsync on a local transfer, describeExit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { describeExit, onlyMissing, parseStats, RSYNC_MAX_DELETE, RSYNC_OK, runRsync, unescapeName } from '../../agent/rsync.ts';

let root = '';
let src = '';

function rsync(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('rsync', args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** rsync's own summary line, "sent 93,266 bytes  received 28,519 bytes", read independently of parseStats */
function summaryLine(text: string): { sent: number; received: number } {
  const m = /sent ([\d,]+) bytes\s+received ([\d,]+) bytes/.exec(text);
  assert.ok(m, `no summary line in:\n${text}`);
  return { sent: Number(m[1]!.replaceAll(',', '')), received: Number(m[2]!.replaceAll(',', '')) };
}

function freshDst(name: string): string {
  const dst = join(root, name);
  rmSync(dst, { recursive: true, force: true });
  mkdirSync(dst);
  return dst;
}

before(() => {
  root = mkdtempSync(join(tmpdir(), 'standby-rsync-'));
  src = join(root, 'src');
  mkdirSync(src);
  for (let i = 0; i < 1500; i++) writeFileSync(join(src, `f${i}`), `file ${i}\n`);
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('parseStats on real rsync --stats output', () => {
  test('a 1,500-file first copy: counts with thousands separators', () => {
    const dst = freshDst('dst-copy');
    const r = rsync(['-a', '--stats', `${src}/`, `${dst}/`]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Number of files: 1,501 /, 'the captured output uses thousands separators');
    const stats = parseStats(r.stdout);
    const summary = summaryLine(r.stdout);
    assert.deepEqual(stats, {
      files: 1501,
      filesTransferred: 1500,
      filesDeleted: 0,
      deletionsSkipped: 0,
      bytesSent: summary.sent,
      bytesReceived: summary.received,
      transferredSize: [...Array(1500).keys()].reduce((n, i) => n + `file ${i}\n`.length, 0),
    });
    assert.ok(stats.bytesSent > 1000, 'more than a thousand bytes sent');
  });

  test('a second run sends nothing', () => {
    const dst = freshDst('dst-again');
    rsync(['-a', `${src}/`, `${dst}/`]);
    const r = rsync(['-a', '--stats', `${src}/`, `${dst}/`]);
    const stats = parseStats(r.stdout);
    assert.equal(stats.files, 1501);
    assert.equal(stats.filesTransferred, 0);
  });

  test('deletions of 1,203 extra files are counted', () => {
    const dst = freshDst('dst-delete');
    rsync(['-a', `${src}/`, `${dst}/`]);
    for (let i = 0; i < 1203; i++) writeFileSync(join(dst, `extra${i}`), 'x');
    const r = rsync(['-a', '--delete', '--stats', `${src}/`, `${dst}/`]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Number of deleted files: 1,203/);
    assert.equal(parseStats(r.stdout).filesDeleted, 1203);
  });

  test('--max-delete=0 stops deletions: exit 25 and "Deletions stopped ... (N skipped)" parsed', () => {
    const dst = freshDst('dst-maxdel');
    rsync(['-a', `${src}/`, `${dst}/`]);
    for (let i = 0; i < 1203; i++) writeFileSync(join(dst, `extra${i}`), 'x');
    const r = rsync(['-a', '--delete', '--max-delete=0', '--stats', `${src}/`, `${dst}/`]);
    assert.equal(r.status, RSYNC_MAX_DELETE);
    const both = `${r.stdout}\n${r.stderr}`;
    assert.match(both, /Deletions stopped due to --max-delete limit \(1,?203 skipped\)/);
    const stats = parseStats(both);
    assert.equal(stats.deletionsSkipped, 1203);
    assert.equal(stats.filesDeleted, 0);
    assert.equal(readdirSync(dst).length, 1500 + 1203, 'nothing deleted');
  });

  const textCases: { name: string; text: string; want: Partial<ReturnType<typeof parseStats>> }[] = [
    { name: 'empty text gives zeros', text: '', want: { files: 0, filesTransferred: 0, filesDeleted: 0, deletionsSkipped: 0, bytesSent: 0, bytesReceived: 0, transferredSize: 0 } },
    { name: 'a locale that separates thousands with dots', text: 'Number of files: 1.501 (reg: 1.500, dir: 1)\nTotal bytes sent: 93.266\n', want: { files: 1501, bytesSent: 93266 } },
    { name: 'a million', text: 'Total bytes received: 1,234,567\n', want: { bytesReceived: 1_234_567 } },
    { name: 'a skipped count with a separator', text: 'Deletions stopped due to --max-delete limit (12,345 skipped)\n', want: { deletionsSkipped: 12_345 } },
    { name: 'deleted files with a breakdown', text: 'Number of deleted files: 3 (reg: 2, dir: 1)\n', want: { filesDeleted: 3 } },
  ];
  for (const c of textCases) {
    test(c.name, () => {
      const got = parseStats(c.text);
      for (const [k, v] of Object.entries(c.want)) assert.equal(got[k as keyof typeof got], v, k);
    });
  }
});

describe('runRsync on a local transfer', () => {
  test('reports exit code, stats from stdout and itemized lines', async () => {
    const dst = freshDst('dst-run');
    const run = runRsync(['-a', '--stats', '--itemize-changes', `${src}/`, `${dst}/`], { itemize: true });
    assert.ok(typeof run.pid === 'number');
    const result = await run.result;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.signal, null);
    assert.ok(RSYNC_OK.has(result.code!));
    assert.equal(result.stats.files, 1501);
    assert.equal(result.stats.filesTransferred, 1500);
    assert.equal(result.items.filter((l) => l.startsWith('>f+++++++++ f')).length, 1500);
    assert.ok(result.durationMs > 0);
  });

  test('reads the --max-delete notice from stderr', async () => {
    const dst = freshDst('dst-run-maxdel');
    rsync(['-a', `${src}/`, `${dst}/`]);
    for (let i = 0; i < 7; i++) writeFileSync(join(dst, `extra${i}`), 'x');
    const result = await runRsync(['-a', '--delete', '--max-delete=0', '--stats', `${src}/`, `${dst}/`]).result;
    assert.equal(result.code, RSYNC_MAX_DELETE);
    assert.equal(result.stats.deletionsSkipped, 7);
    assert.match(result.stderr, /max-delete/);
  });

  test('takes the file list on stdin (--files-from=- --from0)', async () => {
    const dst = freshDst('dst-run-list');
    const result = await runRsync(['-a', '--stats', '--files-from=-', '--from0', `${src}/`, `${dst}/`], { stdin: Buffer.from('f1\0f22\0') }).result;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stats.filesTransferred, 2);
    assert.deepEqual(readdirSync(dst).sort(), ['f1', 'f22']);
  });

  test('a missing source gives a non-zero code (23) and its stderr', async () => {
    const result = await runRsync(['-a', join(root, 'no-such-dir') + '/', freshDst('dst-missing') + '/']).result;
    assert.equal(result.code, 23);
    assert.match(result.stderr, /No such file or directory/);
  });

  test('listed paths deleted before rsync looked: everything else is sent, and the gone ones are named (odd names too)', async () => {
    const dst = freshDst('dst-gone');
    const list = Buffer.from(['f1', 'gone.txt', 'new\nline gone', 'ünï gone', 'f2', ''].join('\0'));
    const result = await runRsync(['-a', '--stats', '--files-from=-', '--from0', `${src}/`, `${dst}/`], { stdin: list }).result;
    assert.equal(result.code, 23);
    assert.deepEqual(readdirSync(dst).sort(), ['f1', 'f2'], 'the rest was sent');
    assert.deepEqual(result.missing.sort(), [join(src, 'gone.txt'), join(src, 'new\nline gone'), join(src, 'ünï gone')].sort(), 'rsync\'s escapes (\\#012, \\#303...) read back');
    assert.equal(result.otherErrors, false);
    assert.equal(onlyMissing(result), true);
  });

  test('a real error beside a gone path is not taken for only missing files', async () => {
    const result = await runRsync(['-a', '--files-from=-', '--from0', `${src}/`, '/proc/1/no-such/'], { stdin: Buffer.from('f1\0gone.txt\0') }).result;
    assert.notEqual(result.code, 0);
    assert.equal(onlyMissing(result), false, result.stderr);
  });

  test('unescapeName reads rsync\'s \\#ooo bytes as UTF-8 and leaves other names alone', () => {
    assert.equal(unescapeName('a\\#012b'), 'a\nb');
    assert.equal(unescapeName('\\#303\\#274'), 'ü');
    assert.equal(unescapeName('plain name'), 'plain name');
  });
});

describe('describeExit', () => {
  const cases: { name: string; code: number | null; signal: NodeJS.Signals | null; want: RegExp }[] = [
    { name: 'success', code: 0, signal: null, want: /^ok$/ },
    { name: 'a signal wins over the code', code: null, signal: 'SIGKILL', want: /killed by SIGKILL/ },
    { name: 'no rsync on the standby', code: 5, signal: null, want: /rsync installed on the standby/ },
    { name: 'disk full', code: 11, signal: null, want: /disk full/ },
    { name: 'stream error', code: 12, signal: null, want: /connection lost/ },
    { name: 'partial transfer', code: 23, signal: null, want: /partial transfer/ },
    { name: 'vanished files', code: 24, signal: null, want: /vanished/ },
    { name: 'max-delete', code: RSYNC_MAX_DELETE, signal: null, want: /--max-delete/ },
    { name: 'I/O timeout', code: 30, signal: null, want: /timeout/ },
    { name: 'ssh failed', code: 255, signal: null, want: /ssh failed/ },
    { name: 'an unknown code says the number', code: 42, signal: null, want: /exit code 42/ },
  ];
  for (const c of cases) test(c.name, () => assert.match(describeExit(c.code, c.signal), c.want));

  test('RSYNC_OK holds 0 and 24 only', () => {
    assert.deepEqual([...RSYNC_OK].sort((a, b) => a - b), [0, 24]);
  });
});
