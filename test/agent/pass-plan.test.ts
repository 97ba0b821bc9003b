// planPass: which paths one incremental pass hands to rsync: the transfer's
// list (--files-from=- --from0) and the deletions' filter rules (--include-from=- --from0).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Change, ChangeKind } from '../../agent/change-set.ts';
import { filterRules, planPass } from '../../agent/pass-plan.ts';

let seq = 0;
function ch(kind: ChangeKind, path: string): Change {
  return { root: 0, path, kind, seq: ++seq, firstAt: 0 };
}

/** the NUL list as the paths it names (every entry NUL-terminated) */
function entriesOf(list: Buffer): string[] {
  const text = list.toString('utf8');
  if (text.length === 0) return [];
  assert.ok(text.endsWith('\0'), 'the list ends with a NUL');
  return text.slice(0, -1).split('\0');
}

describe('planPass', () => {
  const cases: { name: string; changes: Change[]; want: string[]; deletions: number; rules?: string[] }[] = [
    { name: 'nothing to send is an empty list', changes: [], want: [], deletions: 0 },
    { name: 'changed files are listed as they are', changes: [ch('change', 'b.txt'), ch('add', 'a.txt')], want: ['a.txt', 'b.txt'], deletions: 0 },
    {
      name: 'a new folder collapses its contents into one entry',
      changes: [ch('addDir', 'data'), ch('add', 'data/1.bin'), ch('addDir', 'data/sub'), ch('add', 'data/sub/2.bin'), ch('change', 'other.txt')],
      want: ['data', 'other.txt'],
      deletions: 0,
    },
    {
      name: 'a nested new folder under an old one collapses only its own contents',
      changes: [ch('change', 'old/keep.txt'), ch('addDir', 'old/new'), ch('add', 'old/new/x')],
      want: ['old/keep.txt', 'old/new'],
      deletions: 0,
    },
    {
      name: 'a folder whose name is a prefix of another does not swallow it',
      changes: [ch('addDir', 'ab'), ch('add', 'abc/file'), ch('add', 'ab/file')],
      want: ['ab', 'abc/file'],
      deletions: 0,
    },
    {
      name: 'deletions become rules, not list entries; a path in a deleted folder goes with the folder',
      changes: [ch('unlink', 'gone.txt'), ch('unlinkDir', 'olddir'), ch('unlink', 'olddir/f'), ch('add', 'new.txt')],
      want: ['new.txt'],
      deletions: 2,
      rules: ['/gone.txt', '/gone.txt/***', '/olddir', '/olddir/***'],
    },
    {
      name: 'a change in a folder deleted since (renamed away) is neither sent nor named: it goes with its folder',
      changes: [ch('change', 'src/pkg/mod.py'), ch('unlinkDir', 'src/pkg'), ch('addDir', 'src/package'), ch('add', 'src/package/mod.py')],
      want: ['src/package'],
      deletions: 1,
      rules: ['/src/', '/src/pkg', '/src/pkg/***'],
    },
    {
      name: 'a deletion deep down includes each parent folder once, so rsync descends to it',
      changes: [ch('unlink', 'a/b/c.txt'), ch('unlink', 'a/b/d.txt'), ch('unlink', 'a/e')],
      want: [],
      deletions: 3,
      rules: ['/a/', '/a/b/', '/a/b/c.txt', '/a/b/c.txt/***', '/a/b/d.txt', '/a/b/d.txt/***', '/a/e', '/a/e/***'],
    },
    {
      name: "names rsync would read as wildcards, rule prefixes or comments match only themselves",
      changes: [ch('unlink', 'st*r'), ch('unlink', 'q?/[x]'), ch('unlink', 'back\\slash'), ch('unlink', '+ plus'), ch('unlink', '- minus'), ch('unlink', '#hash'), ch('unlink', '!')],
      want: [],
      deletions: 7,
      rules: ['/!', '/!/***', '/#hash', '/#hash/***', '/+ plus', '/+ plus/***', '/- minus', '/- minus/***', '/back\\slash', '/back\\\\slash/***', '/q\\?/', '/q\\?/\\[x]', '/q\\?/\\[x]/***', '/st\\*r', '/st\\*r/***'],
    },
    {
      name: 'a deletion inside a new folder is covered by the folder (not counted)',
      changes: [ch('addDir', 'tmp'), ch('unlink', 'tmp/scratch')],
      want: ['tmp'],
      deletions: 0,
    },
    {
      name: 'a folder renamed: the old one deleted, the new one sent whole',
      changes: [ch('unlinkDir', 'before'), ch('unlink', 'before/f'), ch('addDir', 'after'), ch('add', 'after/f')],
      want: ['after'],
      deletions: 1,
      rules: ['/before', '/before/***'],
    },
    {
      name: 'names with spaces, newlines and unicode survive intact',
      changes: [ch('add', 'a b.txt'), ch('add', 'line\nbreak'), ch('add', 'ünïcødé/日本.txt'), ch('add', ' lead and trail ')],
      want: [' lead and trail ', 'a b.txt', 'line\nbreak', 'ünïcødé/日本.txt'],
      deletions: 0,
    },
    {
      name: 'a new folder with a space in its name collapses its contents',
      changes: [ch('addDir', 'my dir'), ch('add', 'my dir/f 1'), ch('add', 'my dirt')],
      want: ['my dir', 'my dirt'],
      deletions: 0,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const plan = planPass(c.changes);
      assert.deepEqual(entriesOf(plan.list), c.want);
      assert.equal(plan.entries, c.want.length);
      assert.equal(plan.deletions, c.deletions);
      assert.deepEqual(entriesOf(plan.deletionRules), c.rules ?? []);
    });
  }

  test('filterRules: a path named alone goes or comes by itself (a folder goes only when empty; its own deletion event takes its content)', () => {
    assert.deepEqual(entriesOf(filterRules(['old'], ['a/b.txt', 'c'])), ['/old', '/old/***', '/a/', '/a/b.txt', '/c']);
  });

  test('a pass that deletes also names what it sends, in one set of rules: new and deleted folders whole, deleted files and other paths alone', () => {
    const plan = planPass([ch('unlink', 'gone.txt'), ch('unlinkDir', 'old'), ch('change', 'src/edited.py'), ch('addDir', 'new'), ch('add', 'new/f')]);
    assert.deepEqual(entriesOf(plan.rules), ['/old', '/old/***', '/new', '/new/***', '/gone.txt', '/src/', '/src/edited.py']);
    assert.equal(planPass([ch('change', 'a')]).rules.length, 0, 'a pass without deletions takes the --files-from list');
  });

  test('a deleted path is a folder when the watcher saw one go, even if its last event is a file\'s (no `/***` rule for a file: a wildcard every entry is matched against)', () => {
    const madeAndGone: Change = { ...ch('unlink', 'reused'), entries: 3 }; // a folder deleted, then a file made and deleted at its path
    const plan = planPass([ch('unlink', 'a.txt'), ch('unlinkDir', 'dir'), madeAndGone]);
    assert.deepEqual(plan.deletedFolders, ['dir', 'reused']);
    assert.deepEqual(plan.deletedFiles, ['a.txt']);
    assert.deepEqual(entriesOf(plan.rules), ['/dir', '/dir/***', '/reused', '/reused/***', '/a.txt']);
    assert.deepEqual(entriesOf(plan.deletionRules), ['/a.txt', '/a.txt/***', '/dir', '/dir/***', '/reused', '/reused/***'], 'a dry run counts every deletion with all under it');
  });

  test('the list is sorted, so parents come before their children', () => {
    const paths = ['z/1', 'a', 'a/b/c', 'a/b', 'a b', 'a-b', 'a.b', 'é', 'Z'];
    const plan = planPass(paths.map((p) => ch('change', p)));
    const got = entriesOf(plan.list);
    assert.deepEqual(got, [...paths].sort());
    for (const p of got) {
      const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : undefined;
      if (parent && got.includes(parent)) assert.ok(got.indexOf(parent) < got.indexOf(p), `${parent} before ${p}`);
    }
  });

  test('the list is NUL-separated UTF-8 bytes with a trailing NUL', () => {
    const plan = planPass([ch('add', 'ü'), ch('add', 'x y')]);
    assert.deepEqual(plan.list, Buffer.concat([Buffer.from('x y'), Buffer.from([0]), Buffer.from([0xc3, 0xbc]), Buffer.from([0])]));
    assert.equal(planPass([]).list.length, 0);
  });

  test('regression: a burst of 5,000 files in a new folder costs one list entry', () => {
    const changes = [ch('addDir', 'burst')];
    for (let i = 0; i < 5000; i++) changes.push(ch('add', `burst/f${i}`));
    const plan = planPass(changes);
    assert.equal(plan.entries, 1);
    assert.deepEqual(entriesOf(plan.list), ['burst']);
  });
});
