// ChangeSet: sequence numbers, coalescing, and the watermark across pending,
// in-flight and held changes. A fake monotonic clock makes firstAt exact.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ChangeSet, isDeletion, type ChangeKind } from '../../agent/change-set.ts';

function clocked(start = 1000): { set: ChangeSet; advance(ms: number): void; now(): number } {
  let t = start;
  return {
    set: new ChangeSet(() => t),
    advance(ms: number) {
      t += ms;
    },
    now: () => t,
  };
}

/** seqs of the pending Map, in its iteration order */
function pendingOrder(set: ChangeSet): { path: string; seq: number }[] {
  // take() lists pending in Map order; fail() puts them back unchanged
  const batch = set.take(false);
  const order = batch.changes.map((c) => ({ path: c.path, seq: c.seq }));
  set.fail(batch);
  return order;
}

describe('isDeletion', () => {
  const cases: { name: string; kind: ChangeKind; want: boolean }[] = [
    { name: 'add is not a deletion', kind: 'add', want: false },
    { name: 'change is not a deletion', kind: 'change', want: false },
    { name: 'addDir is not a deletion', kind: 'addDir', want: false },
    { name: 'unlink is a deletion', kind: 'unlink', want: true },
    { name: 'unlinkDir is a deletion', kind: 'unlinkDir', want: true },
  ];
  for (const c of cases) test(c.name, () => assert.equal(isDeletion(c.kind), c.want));
});

describe('ChangeSet sequence numbers and coalescing', () => {
  test('every record gets the next sequence number, starting at 1', () => {
    const { set } = clocked();
    assert.equal(set.lastSeq, 0);
    assert.equal(set.record(0, 'a', 'add'), 1);
    assert.equal(set.record(0, 'b', 'add'), 2);
    assert.equal(set.record(0, 'a', 'change'), 3); // same path still gets a new number
    assert.equal(set.lastSeq, 3);
  });

  test('a second change to the same path coalesces into one pending entry with the newer kind and the older seq', () => {
    const { set, advance } = clocked(100);
    set.record(0, 'a', 'add');
    advance(50);
    set.record(0, 'a', 'unlink');
    assert.equal(set.pendingCount, 1);
    const batch = set.take(false);
    assert.deepEqual(batch.changes, [{ root: 0, path: 'a', kind: 'unlink', seq: 1, firstAt: 100 }]);
  });

  test('the same path under two roots is two changes', () => {
    const { set } = clocked();
    set.record(0, 'settings.json', 'change');
    set.record(1, 'settings.json', 'change');
    assert.equal(set.pendingCount, 2);
  });

  test('regression: coalescing keeps the older seq, so a superseded change is not acknowledged before its path is sent', () => {
    const { set } = clocked();
    set.record(0, 'a', 'add'); // 1
    set.record(0, 'b', 'add'); // 2
    set.record(0, 'c', 'add'); // 3
    set.record(0, 'a', 'change'); // 4: coalesces into a's entry, which stays first
    assert.deepEqual(pendingOrder(set), [
      { path: 'a', seq: 1 },
      { path: 'b', seq: 2 },
      { path: 'c', seq: 3 },
    ]);
    // change 1 to a is not on the standby: the watermark must not pass it (it once moved a to the end and did)
    assert.equal(set.watermark, 0);
    set.complete(set.take(false));
    assert.equal(set.watermark, 4, 'one pass covers 1..4');
  });
});

describe('ChangeSet: what a deleted folder held', () => {
  const entriesOf = (set: ChangeSet, path: string): number | undefined => {
    const batch = set.take(false);
    const c = batch.changes.find((x) => x.path === path);
    set.fail(batch);
    return c?.entries;
  };

  test('an unlinkDir keeps the watcher\'s count; not known is Infinity; other kinds have none', () => {
    const { set } = clocked();
    set.record(0, 'a', 'unlinkDir', 12);
    set.record(0, 'b', 'unlinkDir');
    set.record(0, 'c', 'unlink');
    assert.equal(entriesOf(set, 'a'), 12);
    assert.equal(entriesOf(set, 'b'), Infinity);
    assert.equal(entriesOf(set, 'c'), undefined);
  });

  test('while pending, the largest count stays: the standby may still hold the folder first deleted', () => {
    const { set } = clocked();
    set.record(0, 'd', 'unlinkDir', 1000);
    set.record(0, 'd', 'addDir');
    set.record(0, 'd', 'unlinkDir', 5);
    assert.equal(entriesOf(set, 'd'), 1000);
    set.record(0, 'e', 'unlinkDir');
    set.record(0, 'e', 'unlinkDir', 3);
    assert.equal(entriesOf(set, 'e'), Infinity);
  });

  test('a failed pass merged with a newer change to the path keeps the larger count', () => {
    const { set } = clocked();
    set.record(0, 'f', 'unlinkDir', 400);
    const batch = set.take(false);
    set.record(0, 'f', 'addDir');
    set.fail(batch);
    assert.equal(entriesOf(set, 'f'), 400);
  });
});

describe('ChangeSet watermark', () => {
  test('with nothing recorded it is 0; with nothing outstanding it is lastSeq', () => {
    const { set } = clocked();
    assert.equal(set.watermark, 0);
    set.record(0, 'a', 'add');
    const b = set.take(false);
    set.complete(b);
    assert.equal(set.watermark, 1);
    assert.equal(set.outstandingCount, 0);
  });

  test('pending changes hold it just below the oldest pending seq', () => {
    const { set } = clocked();
    set.record(0, 'a', 'add');
    set.record(0, 'b', 'add');
    assert.equal(set.watermark, 0);
  });

  test('in-flight changes hold it until the pass completes', () => {
    const { set } = clocked();
    set.record(0, 'a', 'add'); // 1
    set.record(0, 'b', 'add'); // 2
    const batch = set.take(false);
    assert.equal(batch.minSeq, 1);
    assert.equal(batch.maxSeq, 2);
    assert.equal(set.watermark, 0);
    set.record(0, 'c', 'add'); // 3, pending while 1-2 are in flight
    assert.equal(set.watermark, 0);
    set.complete(batch);
    assert.equal(set.watermark, 2, 'done: 1 and 2; pending: 3');
    const next = set.take(false);
    set.complete(next);
    assert.equal(set.watermark, 3);
  });

  test('a change recorded while its path is in flight keeps the watermark below it after completion', () => {
    const { set } = clocked();
    set.record(0, 'a', 'add'); // 1
    const batch = set.take(false);
    set.record(0, 'a', 'change'); // 2: the pass may have read the old content
    set.complete(batch);
    assert.equal(set.watermark, 1);
    assert.equal(set.pendingCount, 1);
  });

  test('a failed pass leaves the watermark where it was', () => {
    const { set } = clocked();
    set.record(0, 'a', 'add'); // 1
    set.record(0, 'b', 'add'); // 2
    const batch = set.take(false);
    set.fail(batch);
    assert.equal(set.watermark, 0);
    assert.equal(set.pendingCount, 2);
  });

  test('held deletions hold the watermark below them, even when later passes complete', () => {
    const { set } = clocked();
    set.record(0, 'keep', 'add'); // 1
    set.record(0, 'gone', 'unlink'); // 2
    set.record(0, 'also', 'add'); // 3
    const batch = set.take(false);
    const held = batch.changes.filter((c) => isDeletion(c.kind));
    set.complete(batch, held);
    assert.equal(set.heldCount, 1);
    assert.equal(set.watermark, 1);
    set.record(0, 'later', 'add'); // 4
    const next = set.take(false);
    set.complete(next);
    assert.equal(set.watermark, 1, 'still held: 2');
    assert.equal(set.outstandingCount, 1);
  });

  test('a full pass with nothing pending covers every seq so far (empty batch)', () => {
    const { set } = clocked();
    set.record(0, 'a', 'add');
    set.complete(set.take(false));
    const full = set.take(true);
    assert.equal(full.full, true);
    assert.deepEqual(full.changes, []);
    assert.equal(full.minSeq, Infinity);
    assert.equal(full.maxSeq, 0);
    assert.equal(full.minFirstAt, Infinity);
    // an empty batch in flight does not hold the watermark back
    assert.equal(set.watermark, 1);
    assert.equal(set.oldestOutstandingAt, undefined);
    assert.equal(set.outstandingCount, 0);
    set.complete(full);
    assert.equal(set.watermark, 1);
  });

  test('a full pass takes the pending changes too', () => {
    const { set } = clocked();
    set.record(0, 'a', 'add');
    const full = set.take(true);
    assert.equal(full.changes.length, 1);
    assert.equal(set.pendingCount, 0);
    set.complete(full);
    assert.equal(set.watermark, 1);
  });
});

describe('ChangeSet take/complete/fail contract', () => {
  test('take() while a pass is in flight throws', () => {
    const { set } = clocked();
    set.take(false);
    assert.throws(() => set.take(false), /already in flight/);
  });

  test('complete() and fail() of a batch that is not in flight throw', () => {
    const { set } = clocked();
    const b = set.take(false);
    set.complete(b);
    assert.throws(() => set.complete(b), /not in flight/);
    assert.throws(() => set.fail(b), /not in flight/);
  });

  test('inFlight is the taken batch until it completes', () => {
    const { set } = clocked();
    assert.equal(set.inFlight, undefined);
    const b = set.take(false);
    assert.equal(set.inFlight, b);
    set.fail(b);
    assert.equal(set.inFlight, undefined);
  });
});

describe('ChangeSet fail() merge', () => {
  test('regression: keeps the newer kind but the older seq and firstAt, so the watermark stays below the change that failed', () => {
    const { set, advance } = clocked(0);
    set.record(0, 'a', 'add'); // 1 at t=0
    const batch = set.take(false);
    advance(300);
    set.record(0, 'a', 'unlink'); // 2 at t=300, while 1 is in flight
    set.fail(batch);
    const again = set.take(false);
    assert.deepEqual(again.changes, [{ root: 0, path: 'a', kind: 'unlink', seq: 1, firstAt: 0 }]);
  });

  test('puts failed changes before the newer pending ones, so the Map stays in seq order', () => {
    const { set } = clocked();
    set.record(0, 'a', 'add'); // 1
    set.record(0, 'b', 'add'); // 2
    const batch = set.take(false);
    set.record(0, 'c', 'add'); // 3
    set.record(0, 'b', 'change'); // 4 supersedes 2
    set.fail(batch);
    assert.deepEqual(pendingOrder(set), [
      { path: 'a', seq: 1 },
      { path: 'b', seq: 2 },
      { path: 'c', seq: 3 },
    ]);
    assert.equal(set.watermark, 0);
  });

  test('restores oldestOutstandingAt to the failed batch\'s oldest change', () => {
    const { set, advance } = clocked(10);
    set.record(0, 'a', 'add'); // t=10
    const batch = set.take(false);
    advance(90);
    set.record(0, 'b', 'add'); // t=100
    assert.equal(set.oldestOutstandingAt, 10, 'in flight counts as outstanding');
    set.fail(batch);
    assert.equal(set.oldestOutstandingAt, 10);
    advance(1);
    const again = set.take(false);
    assert.equal(again.minFirstAt, 10);
  });
});

describe('ChangeSet held deletions', () => {
  function heldSetup() {
    const c = clocked(0);
    c.set.record(0, 'x', 'unlink'); // 1 at t=0
    c.set.record(0, 'y', 'unlinkDir'); // 2 at t=0
    c.advance(10);
    const batch = c.set.take(false);
    c.set.complete(batch, batch.changes);
    return c;
  }

  test('complete() with hold keeps the deletions outstanding, not pending', () => {
    const { set } = heldSetup();
    assert.equal(set.heldCount, 2);
    assert.equal(set.pendingCount, 0);
    assert.equal(set.outstandingCount, 2);
    assert.equal(set.watermark, 0);
    assert.equal(set.oldestOutstandingAt, 0);
  });

  test('release() makes them pending again and returns how many', () => {
    const { set } = heldSetup();
    set.record(0, 'z', 'add'); // 3
    assert.equal(set.release(), 2);
    assert.equal(set.heldCount, 0);
    assert.equal(set.pendingCount, 3);
    assert.deepEqual(pendingOrder(set).map((c) => c.seq), [1, 2, 3]);
    const b = set.take(false);
    set.complete(b);
    assert.equal(set.watermark, 3);
    assert.equal(set.release(), 0, 'nothing held any more');
  });

  test('release() restores oldestOutstandingAt from the held changes', () => {
    const { set, advance } = heldSetup();
    advance(100);
    set.record(0, 'z', 'add'); // t=110
    set.release();
    assert.equal(set.oldestOutstandingAt, 0);
  });

  test('a newer change to a held path supersedes the held deletion and keeps its firstAt', () => {
    const { set, advance } = heldSetup();
    advance(500);
    const seq = set.record(0, 'x', 'add'); // the file is back
    assert.equal(seq, 3);
    assert.equal(set.heldCount, 1);
    assert.equal(set.pendingCount, 1);
    const b = set.take(false);
    assert.deepEqual(b.changes, [{ root: 0, path: 'x', kind: 'add', seq: 3, firstAt: 0 }]);
  });

  test('complete() does not hold a deletion a newer pending change already supersedes', () => {
    const { set } = clocked(0);
    set.record(0, 'x', 'unlink'); // 1
    const batch = set.take(false);
    set.record(0, 'x', 'add'); // 2, while 1 is in flight
    set.complete(batch, batch.changes);
    assert.equal(set.heldCount, 0);
    assert.equal(set.pendingCount, 1);
    assert.equal(set.watermark, 1);
  });

  test('regression: a held deletion superseded by a pending change at complete() keeps the older firstAt (as record() and fail() do)', () => {
    const { set, advance } = clocked(0);
    set.record(0, 'x', 'unlink'); // 1 at t=0, never applied
    const batch = set.take(false);
    advance(400);
    set.record(0, 'x', 'add'); // 2 at t=400
    set.complete(batch, batch.changes);
    // the standby has been out of date for x since t=0: the deletion was not applied
    assert.equal(set.oldestOutstandingAt, 0);
  });
});

describe('ChangeSet oldestOutstandingAt', () => {
  test('is undefined when nothing is outstanding', () => {
    const { set } = clocked();
    assert.equal(set.oldestOutstandingAt, undefined);
  });

  test('is the firstAt of the oldest change across pending, in flight and held', () => {
    const { set, advance } = clocked(0);
    set.record(0, 'held', 'unlink'); // t=0
    const b1 = set.take(false);
    set.complete(b1, b1.changes);
    advance(100);
    set.record(0, 'flying', 'add'); // t=100
    const b2 = set.take(false);
    advance(100);
    set.record(0, 'waiting', 'add'); // t=200
    assert.equal(set.oldestOutstandingAt, 0);
    set.release();
    // released: pending {held@0, waiting@200}, in flight {flying@100}
    assert.equal(set.oldestOutstandingAt, 0);
    set.complete(b2);
    const b3 = set.take(false);
    set.complete(b3);
    assert.equal(set.oldestOutstandingAt, undefined);
  });

  test('coalescing keeps the first change\'s time, not the latest', () => {
    const { set, advance } = clocked(5);
    set.record(0, 'a', 'add');
    advance(1000);
    set.record(0, 'a', 'change');
    assert.equal(set.oldestOutstandingAt, 5);
  });

  test('after a pass completes, only changes that arrived during it count', () => {
    const { set, advance } = clocked(0);
    set.record(0, 'a', 'add'); // t=0
    const b = set.take(false);
    advance(50);
    set.record(0, 'b', 'add'); // t=50
    set.complete(b);
    assert.equal(set.oldestOutstandingAt, 50);
  });
});

describe('ChangeSet complete() with requeued changes', () => {
  test('regression: a file that vanished mid-pass (rsync exit 24) is not acknowledged, even when a newer change to it is pending', () => {
    const set = new ChangeSet(() => 0);
    set.record(0, 'a', 'change'); // 1
    set.record(0, 'b', 'change'); // 2
    const batch = set.take(false);
    set.record(0, 'a', 'unlink'); // 3: the reason it vanished
    set.complete(batch, [], batch.changes.filter((c) => c.path === 'a'));
    assert.equal(set.watermark, 0, 'change 1 is not on the standby');
    const next = set.take(false);
    assert.deepEqual(next.changes.map((c) => [c.path, c.kind, c.seq]), [['a', 'unlink', 1]]);
    set.complete(next);
    assert.equal(set.watermark, 3);
  });
});
