// classifyItem: turns rsync --itemize-changes lines into the differences
// `standby verify` lists. Lines are checked as written here and as a real
// `rsync -a --dry-run --checksum --delete --itemize-changes` prints them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { classifyItem, type DifferenceKind } from '../../agent/verify.ts';

describe('classifyItem on itemize lines', () => {
  const cases: { name: string; line: string; want: { path: string; kind: DifferenceKind; item: string } | undefined }[] = [
    { name: 'a new file is missing on the standby', line: '>f+++++++++ new.txt', want: { path: 'new.txt', kind: 'missing on standby', item: '>f+++++++++' } },
    { name: 'a new folder is missing on the standby', line: 'cd+++++++++ emptyd/', want: { path: 'emptyd/', kind: 'missing on standby', item: 'cd+++++++++' } },
    { name: 'a checksum difference is content', line: '>fc........ c', want: { path: 'c', kind: 'content differs', item: '>fc........' } },
    { name: 'a checksum difference with mtime too is content', line: '>fcst...... data.bin', want: { path: 'data.bin', kind: 'content differs', item: '>fcst......' } },
    { name: 'an extra file on the standby', line: '*deleting   extra', want: { path: 'extra', kind: 'extra on standby', item: '*deleting' } },
    { name: 'an extra folder on the standby', line: '*deleting   extradir/', want: { path: 'extradir/', kind: 'extra on standby', item: '*deleting' } },
    { name: 'a new symlink drops its target', line: 'cL+++++++++ newlink -> t2', want: { path: 'newlink', kind: 'missing on standby', item: 'cL+++++++++' } },
    { name: 'a symlink pointing elsewhere is content', line: 'cLc........ link -> target', want: { path: 'link', kind: 'content differs', item: 'cLc........' } },
    { name: 'a folder whose only difference is its mtime is not listed', line: '.d..t...... d/', want: undefined },
    { name: 'a folder whose permissions differ is listed', line: '.d...p..... d/', want: { path: 'd/', kind: 'attributes differ', item: '.d...p.....' } },
    { name: 'a file whose permissions differ', line: '.f...p..... perm', want: { path: 'perm', kind: 'attributes differ', item: '.f...p.....' } },
    { name: 'a file whose mtime differs', line: '.f..t...... mt', want: { path: 'mt', kind: 'attributes differ', item: '.f..t......' } },
    { name: 'an unchanged file (-ii) is not listed', line: '.f          same', want: undefined },
    { name: 'an unchanged folder (-ii) is not listed', line: '.d          ./', want: undefined },
    { name: 'a name with spaces', line: '>f+++++++++ a b.txt', want: { path: 'a b.txt', kind: 'missing on standby', item: '>f+++++++++' } },
    { name: 'a name with a leading space keeps it', line: '>f+++++++++  lead', want: { path: ' lead', kind: 'missing on standby', item: '>f+++++++++' } },
    { name: 'a unicode name', line: '>fc........ ünï/ø.txt', want: { path: 'ünï/ø.txt', kind: 'content differs', item: '>fc........' } },
    { name: 'rsync\'s escaped newline is kept as rsync prints it', line: '>f+++++++++ x\\#012y', want: { path: 'x\\#012y', kind: 'missing on standby', item: '>f+++++++++' } },
    { name: 'a message line is not an item', line: 'created directory dst', want: undefined },
    { name: 'an empty line is not an item', line: '', want: undefined },
    { name: 'regression: *deleting keeps a trailing space in the name', line: '*deleting   gone ', want: { path: 'gone ', kind: 'extra on standby', item: '*deleting' } },
    { name: 'regression: *deleting keeps a leading space in the name', line: '*deleting    lead', want: { path: ' lead', kind: 'extra on standby', item: '*deleting' } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const got = classifyItem(c.line, '/ws');
      assert.deepEqual(got, c.want === undefined ? undefined : { root: '/ws', ...c.want });
    });
  }
});

describe('classifyItem on real rsync output', () => {
  let root = '';
  let lines: string[] = [];

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'standby-verify-'));
    const src = join(root, 'src');
    const dst = join(root, 'dst');
    const old = new Date('2021-01-01T00:00:00Z');
    for (const d of [src, dst, join(src, 'd'), join(dst, 'd'), join(src, 'emptyd'), join(dst, 'extradir')]) mkdirSync(d, { recursive: true });
    const both = (name: string, a: string, b: string) => {
      writeFileSync(join(src, name), a);
      writeFileSync(join(dst, name), b);
    };
    both('same', 'hello\n', 'hello\n');
    both('c', 'aaaa\n', 'bbbb\n'); // same size, same mtime, different content
    writeFileSync(join(src, 'new'), 'new\n');
    writeFileSync(join(src, 'a b'), 'sp\n');
    writeFileSync(join(src, 'ünï'), 'u\n');
    writeFileSync(join(dst, 'extra'), 'x\n');
    writeFileSync(join(dst, 'extradir', 'f'), 'x\n');
    writeFileSync(join(dst, 'gone '), 'x\n');
    symlinkSync('target', join(src, 'link'));
    symlinkSync('other', join(dst, 'link'));
    symlinkSync('t2', join(src, 'newlink'));
    both('perm', 'p\n', 'p\n');
    chmodSync(join(src, 'perm'), 0o644);
    chmodSync(join(dst, 'perm'), 0o600);
    both('mt', 'm\n', 'm\n');
    for (const name of ['same', 'c', 'perm']) {
      utimesSync(join(src, name), old, old);
      utimesSync(join(dst, name), old, old);
    }
    utimesSync(join(src, 'mt'), new Date('2022-01-01T00:00:00Z'), new Date('2022-01-01T00:00:00Z'));
    utimesSync(join(dst, 'mt'), old, old);
    utimesSync(join(dst, 'd'), old, old); // a folder whose only difference is its mtime
    const r = spawnSync('rsync', ['-a', '-8', '--dry-run', '--checksum', '--delete', '--itemize-changes', `${src}/`, `${dst}/`], {
      encoding: 'utf8',
      env: { ...process.env, LC_ALL: 'C.UTF-8' },
    });
    assert.equal(r.status, 0, r.stderr);
    lines = r.stdout.split('\n').filter((l) => l.length > 0);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  function classified(): Map<string, DifferenceKind> {
    const out = new Map<string, DifferenceKind>();
    for (const l of lines) {
      const d = classifyItem(l, '/ws');
      if (d) out.set(d.path, d.kind);
    }
    return out;
  }

  const expected: { name: string; path: string; kind: DifferenceKind | undefined }[] = [
    { name: 'new file', path: 'new', kind: 'missing on standby' },
    { name: 'new name with a space', path: 'a b', kind: 'missing on standby' },
    { name: 'new unicode name', path: 'ünï', kind: 'missing on standby' },
    { name: 'new empty folder', path: 'emptyd/', kind: 'missing on standby' },
    { name: 'same size and mtime, other content', path: 'c', kind: 'content differs' },
    { name: 'extra file', path: 'extra', kind: 'extra on standby' },
    { name: 'extra folder', path: 'extradir/', kind: 'extra on standby' },
    { name: 'file inside an extra folder', path: 'extradir/f', kind: 'extra on standby' },
    { name: 'symlink to another target', path: 'link', kind: 'content differs' },
    { name: 'new symlink', path: 'newlink', kind: 'missing on standby' },
    { name: 'permissions', path: 'perm', kind: 'attributes differ' },
    { name: 'mtime only', path: 'mt', kind: 'attributes differ' },
    { name: 'folder mtime only is not a difference', path: 'd/', kind: undefined },
    { name: 'an identical file is not a difference', path: 'same', kind: undefined },
    { name: 'regression: an extra file named with a trailing space keeps it', path: 'gone ', kind: 'extra on standby' },
  ];
  for (const e of expected) {
    test(e.name, () => {
      assert.equal(classified().get(e.path), e.kind, `rsync printed:\n${lines.join('\n')}`);
    });
  }

  test('every line rsync printed is either classified or a no-difference line', () => {
    const unexplained = lines.filter((l) => classifyItem(l, '/ws') === undefined && !/^\.d\.\.t\.{6} /.test(l) && !/^\.[fd] {9} /.test(l));
    assert.deepEqual(unexplained, []);
  });
});
