// The deletion guard's rules on their own (agent/delete-guard.ts): when a
// deletion trips it, what it holds, what a confirmation releases, and when a
// full reconcile ends a hold. delete-guard.test.ts shows the same against a
// real standby.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { DeleteGuard } from '../../agent/delete-guard.ts';

function guard(limits = { fraction: 0.5, minFiles: 50 }): { g: DeleteGuard; holds: { deletions: number; reason: string }[] } {
  const holds: { deletions: number; reason: string }[] = [];
  return { g: new DeleteGuard(limits, pino({ level: 'silent' }), (h) => holds.push(h)), holds };
}

describe('DeleteGuard.trips', () => {
  const cases: { name: string; limits?: { fraction: number; minFiles: number }; deletions: number; before: number; want: boolean }[] = [
    { name: 'more than half of a big tree', deletions: 60, before: 100, want: true },
    { name: 'exactly half: not more than the share', deletions: 50, before: 100, want: false },
    { name: 'most of a tiny tree, under minFiles', deletions: 49, before: 60, want: false },
    { name: 'minFiles exactly, and most of the tree', deletions: 50, before: 60, want: true },
    { name: 'a small share of a big tree', deletions: 500, before: 10_000, want: false },
    { name: 'a stricter share', limits: { fraction: 0.1, minFiles: 5 }, deletions: 11, before: 100, want: true },
    { name: 'minFiles 0, nothing deleted: nothing to hold', limits: { fraction: 0.5, minFiles: 0 }, deletions: 0, before: 0, want: false },
  ];
  for (const c of cases) test(c.name, () => assert.equal(guard(c.limits).g.trips(c.deletions, c.before), c.want));
});

describe('DeleteGuard holds, confirmations and the tree it weighs by', () => {
  test('holds add up, keep the first hold\'s time and the latest reason, and are told to the owner', () => {
    const { g, holds } = guard();
    g.hold(60, 'first');
    const at = g.held!.at;
    g.hold(70, 'second');
    assert.deepEqual({ deletions: g.held!.deletions, reason: g.held!.reason, at: g.held!.at }, { deletions: 130, reason: 'second', at });
    assert.deepEqual(holds, [{ deletions: 60, reason: 'first' }, { deletions: 70, reason: 'second' }]);
  });

  test('a confirmation releases the hold and lets the next full reconcile delete, once', () => {
    const { g } = guard();
    g.hold(60, 'x');
    assert.equal(g.confirm(), 60);
    assert.equal(g.held, undefined);
    assert.equal(g.trips(1_000, 1_000), false, 'confirmed: nothing trips');
    g.fullReconcileDone(10, false);
    assert.equal(g.trips(1_000, 1_000), true, 'spent by the full reconcile');
  });

  test('a full reconcile that holds nothing ends a hold it made, not one an incremental pass made', () => {
    const full = guard().g;
    full.hold(60, 'the standby holds 60 entries', { byFullReconcile: true });
    full.fullReconcileDone(100, false);
    assert.equal(full.held, undefined);
    const incremental = guard().g;
    incremental.hold(60, '60 of about 100 files deleted in the workspace');
    incremental.fullReconcileDone(100, false);
    assert.equal(incremental.held?.deletions, 60);
  });

  test('the tree grows with additions, shrinks with deletions, and a full reconcile sets it', () => {
    const { g } = guard();
    for (const kind of ['add', 'addDir', 'add', 'change', 'unlink'] as const) g.changeSeen(kind);
    assert.equal(g.treeEntries, 2);
    g.fullReconcileDone(1234, false);
    assert.equal(g.treeEntries, 1234);
  });
});
