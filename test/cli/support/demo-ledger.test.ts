// The demo's ledger (cli/support/demo-ledger.ts), table-driven: a log of
// writes and a workspace folder in, what was verified, lost and uncertain out.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { checkWorkspace, type WorkspaceCheck } from '../../../cli/support/demo-ledger.ts';
import type { WriteOp, WriteRecord } from '../../../cli/support/demo-writer.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** A record; `content` is the whole file after the op (absent for delete). */
function rec(seq: number, op: WriteOp, path: string, o: { content?: string; to?: string; ok?: boolean } = {}): WriteRecord {
  return {
    seq,
    op,
    path,
    ...(o.to !== undefined ? { to: o.to } : {}),
    sha256: o.content === undefined ? null : sha(o.content),
    size: o.content?.length ?? 0,
    ok: o.ok ?? true,
    sentAt: 1000 + seq,
    ackedAt: 1000 + seq,
  };
}

interface Case {
  name: string;
  records: WriteRecord[];
  /** the workspace: path -> content; a value of null makes a folder there */
  files: Record<string, string | null>;
  /** seqs above this are not counted acknowledged (a failover's watermark) */
  watermark?: number;
  want: Partial<WorkspaceCheck>;
}

const top = mkdtempSync(join(tmpdir(), 'ledger-'));
after(() => rmSync(top, { recursive: true, force: true }));

const cases: Case[] = [
  {
    name: 'an acknowledged create present with its content is verified',
    records: [rec(1, 'create', 'src/a.txt', { content: 'one' })],
    files: { 'src/a.txt': 'one' },
    want: { verifiedFiles: 1, verifiedBytes: 3, lost: [], uncertain: 0 },
  },
  {
    name: 'an acknowledged create missing is lost',
    records: [rec(1, 'create', 'src/a.txt', { content: 'one' })],
    files: {},
    want: { verifiedFiles: 0, lost: [{ seq: 1, path: 'src/a.txt', want: sha('one'), got: null }], uncertain: 0 },
  },
  {
    name: 'an edit lost: the file holds the version before it',
    records: [rec(1, 'create', 'a.txt', { content: 'one' }), rec(2, 'edit', 'a.txt', { content: 'two' })],
    files: { 'a.txt': 'one' },
    want: { verifiedFiles: 0, lost: [{ seq: 2, path: 'a.txt', want: sha('two'), got: sha('one') }] },
  },
  {
    name: 'a rename then an edit: the new path holds the edit, the old one nothing',
    records: [rec(1, 'create', 'a.txt', { content: 'one' }), rec(2, 'rename', 'a.txt', { to: 'd/b.txt', content: 'one' }), rec(3, 'edit', 'd/b.txt', { content: 'two' })],
    files: { 'd/b.txt': 'two' },
    want: { verifiedFiles: 1, verifiedBytes: 3, lost: [], uncertain: 0 },
  },
  {
    name: 'a rename lost: the old path still there, the new one missing',
    records: [rec(1, 'create', 'a.txt', { content: 'one' }), rec(2, 'rename', 'a.txt', { to: 'b.txt', content: 'one' })],
    files: { 'a.txt': 'one' },
    want: { verifiedFiles: 0, lost: [{ seq: 2, path: 'a.txt', want: null, got: sha('one') }, { seq: 2, path: 'b.txt', want: sha('one'), got: null }] },
  },
  {
    name: 'a delete of an unacknowledged create: uncertain, either way (present)',
    records: [rec(1, 'create', 'x.txt', { content: 'one', ok: false }), rec(2, 'delete', 'x.txt')],
    files: { 'x.txt': 'one' },
    want: { verifiedFiles: 0, lost: [], uncertain: 1 },
  },
  {
    name: 'a delete of an unacknowledged create: uncertain, either way (absent)',
    records: [rec(1, 'create', 'x.txt', { content: 'one', ok: false }), rec(2, 'delete', 'x.txt')],
    files: {},
    want: { verifiedFiles: 0, lost: [], uncertain: 1 },
  },
  {
    name: 'an acknowledged delete whose file is still there is lost',
    records: [rec(1, 'create', 'x.txt', { content: 'one' }), rec(2, 'delete', 'x.txt')],
    files: { 'x.txt': 'one' },
    want: { verifiedFiles: 0, lost: [{ seq: 2, path: 'x.txt', want: null, got: sha('one') }] },
  },
  {
    name: 'an append sequence: the whole file as the last answer says',
    records: [rec(1, 'create', 'ckpt.bin', { content: 'aa' }), rec(2, 'append', 'ckpt.bin', { content: 'aabb' }), rec(3, 'append', 'ckpt.bin', { content: 'aabbcc' })],
    files: { 'ckpt.bin': 'aabbcc' },
    want: { verifiedFiles: 1, verifiedBytes: 6, lost: [] },
  },
  {
    name: 'an append sequence missing its last append',
    records: [rec(1, 'create', 'ckpt.bin', { content: 'aa' }), rec(2, 'append', 'ckpt.bin', { content: 'aabb' }), rec(3, 'append', 'ckpt.bin', { content: 'aabbcc' })],
    files: { 'ckpt.bin': 'aabb' },
    want: { verifiedFiles: 0, lost: [{ seq: 3, path: 'ckpt.bin', want: sha('aabbcc'), got: sha('aabb') }] },
  },
  {
    name: 'a failed append makes the checkpoint uncertain, later acknowledged appends too',
    records: [rec(1, 'create', 'ckpt.bin', { content: 'aa' }), rec(2, 'append', 'ckpt.bin', { content: 'aabb', ok: false }), rec(3, 'append', 'ckpt.bin', { content: 'aabbcc' })],
    files: { 'ckpt.bin': 'aacc' },
    want: { verifiedFiles: 0, lost: [], uncertain: 1 },
  },
  {
    name: 'writes above the watermark are uncertain, not lost; those below are checked',
    records: [rec(1, 'create', 'a.txt', { content: 'one' }), rec(2, 'create', 'b.txt', { content: 'bee' }), rec(3, 'edit', 'a.txt', { content: 'two' })],
    files: { 'a.txt': 'one', 'b.txt': 'bee' },
    watermark: 2,
    want: { verifiedFiles: 1, verifiedBytes: 3, lost: [], uncertain: 1 },
  },
  {
    name: 'a failed rename makes both its paths uncertain',
    records: [rec(1, 'create', 'a.txt', { content: 'one' }), rec(2, 'rename', 'a.txt', { to: 'b.txt', content: 'one', ok: false }), rec(3, 'create', 'c.txt', { content: 'c' })],
    files: { 'b.txt': 'one', 'c.txt': 'c' },
    want: { verifiedFiles: 1, verifiedBytes: 1, lost: [], uncertain: 2 },
  },
  {
    name: 'a folder where a file should be is lost, named so',
    records: [rec(1, 'create', 'a.txt', { content: 'one' })],
    files: { 'a.txt': null },
    want: { verifiedFiles: 0, lost: [{ seq: 1, path: 'a.txt', want: sha('one'), got: 'not a regular file' }] },
  },
  {
    name: 'records in any order are replayed in seq order',
    records: [rec(2, 'edit', 'a.txt', { content: 'two' }), rec(1, 'create', 'a.txt', { content: 'one' })],
    files: { 'a.txt': 'two' },
    want: { verifiedFiles: 1, lost: [] },
  },
  {
    name: 'files the log never wrote are not the ledger\'s business',
    records: [rec(1, 'create', 'a.txt', { content: 'one' })],
    files: { 'a.txt': 'one', 'other.txt': 'x', '.a.txt.tmp-1-1': 'half' },
    want: { verifiedFiles: 1, lost: [], uncertain: 0 },
  },
];

cases.forEach((c, i) => {
  test(c.name, () => {
    const dir = join(top, String(i));
    mkdirSync(dir);
    for (const [path, content] of Object.entries(c.files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      if (content === null) mkdirSync(join(dir, path));
      else writeFileSync(join(dir, path), content);
    }
    const got = checkWorkspace(dir, c.records, (r) => c.watermark === undefined || r.seq <= c.watermark);
    const picked = Object.fromEntries(Object.keys(c.want).map((k) => [k, got[k as keyof WorkspaceCheck]]));
    assert.deepEqual(picked, c.want);
  });
});
