// Batcher: a pass is due once the tree is quiet for delayMs, and at most
// maxDelayMs after the batch's first change. node:test's mock timers drive
// setTimeout and a fake monotonic clock moves with them, 1 ms at a time.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { Batcher } from '../../agent/batcher.ts';

interface Rig {
  batcher: Batcher;
  /** fake-clock ms at which onDue fired */
  fired: number[];
  now(): number;
  /** moves the clock and the mocked timers forward together */
  advance(ms: number): void;
}

function rig(delayMs: number, maxDelayMs: number, onDue?: (r: Rig) => void): Rig {
  let t = 0;
  const r: Rig = {
    fired: [],
    now: () => t,
    advance(ms: number) {
      for (let i = 0; i < ms; i++) {
        t++;
        mock.timers.tick(1);
      }
    },
    batcher: undefined as unknown as Batcher,
  };
  r.batcher = new Batcher(delayMs, maxDelayMs, () => {
    r.fired.push(t);
    onDue?.(r);
  }, () => t);
  return r;
}

beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
afterEach(() => mock.timers.reset());

describe('Batcher quiet delay', () => {
  const cases: { name: string; delayMs: number; maxDelayMs: number; touchesAt: number[]; runMs: number; want: number[] }[] = [
    { name: 'one change fires once, delayMs after it', delayMs: 250, maxDelayMs: 1000, touchesAt: [0], runMs: 2000, want: [250] },
    { name: 'a change during the quiet period pushes the pass back', delayMs: 250, maxDelayMs: 1000, touchesAt: [0, 100, 200], runMs: 2000, want: [450] },
    { name: 'changes further apart than delayMs make separate passes', delayMs: 100, maxDelayMs: 1000, touchesAt: [0, 300], runMs: 1000, want: [100, 400] },
    { name: 'delayMs 0 fires on the next timer turn (setTimeout clamps 0 to 1 ms)', delayMs: 0, maxDelayMs: 0, touchesAt: [0], runMs: 10, want: [1] },
    { name: 'delayMs equal to maxDelayMs', delayMs: 300, maxDelayMs: 300, touchesAt: [0, 200], runMs: 2000, want: [300] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      // a pass that takes everything at once: the owner calls taken() in onDue
      const r = rig(c.delayMs, c.maxDelayMs, (x) => x.batcher.taken());
      const touches = [...c.touchesAt];
      for (let ms = 0; ms <= c.runMs; ms++) {
        while (touches.length > 0 && touches[0] === ms) {
          touches.shift();
          r.batcher.touch();
        }
        r.advance(1);
      }
      assert.deepEqual(r.fired, c.want);
    });
  }

  test('nothing fires without a change', () => {
    const r = rig(250, 1000);
    r.advance(5000);
    assert.deepEqual(r.fired, []);
    assert.equal(r.batcher.dueAt, undefined);
  });
});

describe('Batcher max delay under a continuous stream', () => {
  const cases: { name: string; delayMs: number; maxDelayMs: number; everyMs: number; runMs: number; want: number[] }[] = [
    { name: 'a change every 50 ms with delay 250: a pass every 2 x delayMs', delayMs: 250, maxDelayMs: 1000, everyMs: 50, runMs: 1600, want: [500, 1000, 1500] },
    { name: 'a change every 50 ms with delay 1000, max 1000: maxDelayMs caps it', delayMs: 1000, maxDelayMs: 1000, everyMs: 50, runMs: 3500, want: [1000, 2000, 3000] },
    { name: 'a change every 10 ms with delay 100, max 300', delayMs: 100, maxDelayMs: 300, everyMs: 10, runMs: 1000, want: [200, 400, 600, 800, 1000] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = rig(c.delayMs, c.maxDelayMs, (x) => x.batcher.taken());
      for (let ms = 0; ms < c.runMs; ms++) {
        if (ms % c.everyMs === 0) r.batcher.touch();
        r.advance(1);
      }
      assert.deepEqual(r.fired, c.want);
    });
  }

  test('dueAt is the earliest of quiet, 2 x delay and the cap', () => {
    const r = rig(250, 1000);
    r.batcher.touch(); // t=0
    assert.equal(r.batcher.dueAt, 250);
    r.advance(400);
    // the timer fired at 250 with nothing more; the batch stays until taken
    r.batcher.touch(); // t=400: quiet says 650, 2 x delay says 500
    assert.equal(r.batcher.dueAt, 500);
    r.batcher.taken();
    assert.equal(r.batcher.dueAt, undefined);
  });

  test('the cap leaves room for the pass itself: maxDelayMs bounds lag, pass included', () => {
    const r = rig(1000, 1000);
    r.batcher.passEstimateMs = 200;
    r.batcher.touch(); // t=0
    assert.equal(r.batcher.dueAt, 800);
    r.batcher.passEstimateMs = 5000; // a slow link: never more than half the cap
    assert.equal(r.batcher.dueAt, 500);
  });
});

describe('Batcher taken() and poke()', () => {
  test('taken() cancels the timer: nothing fires for a batch already taken', () => {
    const r = rig(250, 1000);
    r.batcher.touch();
    r.advance(100);
    r.batcher.taken(); // e.g. a full reconcile took everything
    r.advance(2000);
    assert.deepEqual(r.fired, []);
  });

  test('after taken(), the next change starts a new batch with its own cap', () => {
    const r = rig(100, 300, (x) => x.batcher.taken());
    r.batcher.touch(); // t=0
    r.advance(150); // fired at 100
    r.batcher.touch(); // t=150: new batch, due by 150 + 2 x 100
    for (let i = 0; i < 40; i++) {
      r.advance(10);
      r.batcher.touch();
    }
    assert.deepEqual(r.fired, [100, 350, 550]);
  });

  test('a due batch that is not taken (a pass in flight) waits; poke() afterwards fires at once', () => {
    const r = rig(100, 1000); // onDue does not take: the pass is busy
    r.batcher.touch(); // t=0
    r.advance(150);
    assert.deepEqual(r.fired, [100]);
    r.advance(1000);
    assert.deepEqual(r.fired, [100], 'no timer spins while the batch waits');
    r.batcher.poke(); // the pass ended: the batch is overdue
    assert.deepEqual(r.fired, [100, 1150]);
  });

  test('poke() before the batch is due re-arms for the remaining time', () => {
    const r = rig(200, 1000, (x) => x.batcher.taken());
    r.batcher.touch(); // t=0
    r.advance(50);
    r.batcher.poke(); // e.g. a backoff ended early: due at 200, not yet
    assert.deepEqual(r.fired, []);
    r.advance(149);
    assert.deepEqual(r.fired, []);
    r.advance(1);
    assert.deepEqual(r.fired, [200]);
    r.advance(1000);
    assert.deepEqual(r.fired, [200], 'one timer only: poke replaced it, it did not add one');
  });

  test('poke() with no batch does nothing', () => {
    const r = rig(100, 1000);
    r.batcher.poke();
    r.advance(500);
    assert.deepEqual(r.fired, []);
  });

  test('clear() stops the timer but keeps the batch for a later poke()', () => {
    const r = rig(100, 1000);
    r.batcher.touch();
    r.batcher.clear();
    r.advance(500);
    assert.deepEqual(r.fired, []);
    r.batcher.poke();
    assert.deepEqual(r.fired, [500]);
  });

  test('regression: a touch while a timer is armed does not add a second timer (O(1) per event)', () => {
    const r = rig(100, 10_000, (x) => x.batcher.taken());
    for (let i = 0; i < 1000; i++) r.batcher.touch(); // all at t=0
    r.advance(1000);
    assert.deepEqual(r.fired, [100]);
  });
});

describe('Batcher with real timers', () => {
  test('fires after the quiet delay with the default clock', async () => {
    mock.timers.reset();
    const started = performance.now();
    const firedAt = await new Promise<number>((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error('Batcher did not fire within 2 s')), 2000);
      const b = new Batcher(30, 200, () => {
        clearTimeout(guard);
        b.taken();
        resolve(performance.now());
      });
      b.touch();
    });
    const waited = firedAt - started;
    assert.ok(waited >= 29, `fired after ${waited} ms, before the 30 ms quiet delay`);
    assert.ok(waited < 1000, `fired after ${waited} ms`);
  });
});

describe('Batcher passDue(): the one question the engine asks', () => {
  test('not yet: no, and onDue fires when the batch is due', () => {
    const r = rig(200, 1000, (x) => x.batcher.taken());
    r.batcher.touch(); // t=0
    r.advance(50);
    assert.equal(r.batcher.passDue(), false);
    r.advance(149);
    assert.deepEqual(r.fired, []);
    r.advance(1);
    assert.deepEqual(r.fired, [200]);
  });

  test('once due: yes', () => {
    const r = rig(100, 1000);
    r.batcher.touch();
    r.batcher.clear(); // the timer is the engine's business here: ask at t=100 by hand
    r.advance(100);
    assert.equal(r.batcher.passDue(), true);
  });

  test('changes in no batch (put back by a failed pass) are due at once', () => {
    const r = rig(100, 1000);
    assert.equal(r.batcher.dueAt, undefined);
    assert.equal(r.batcher.passDue(), true);
  });

  test('hurry() (a sync-now) makes a batch due before its delay, until a pass takes it', () => {
    const r = rig(500, 1000);
    r.batcher.touch(); // t=0, due at 500
    r.advance(10);
    r.batcher.hurry();
    assert.equal(r.batcher.passDue(), true);
    r.batcher.taken();
    r.batcher.touch(); // t=10: a new batch waits its delay again
    assert.equal(r.batcher.passDue(), false);
  });

  test('passTook() smooths the pass estimate the cap leaves room for', () => {
    const r = rig(1000, 1000);
    r.batcher.passTook(200);
    assert.equal(r.batcher.passEstimateMs, 200, 'the first pass is the estimate');
    r.batcher.passTook(400);
    assert.equal(r.batcher.passEstimateMs, 0.7 * 200 + 0.3 * 400);
    r.batcher.touch(); // t=0
    assert.equal(r.batcher.dueAt, 1000 - (0.7 * 200 + 0.3 * 400));
  });

  test('passEnded(true) with no batch open starts one for the changes put back; passEnded(false) starts none', () => {
    const r = rig(100, 1000, (x) => x.batcher.taken());
    r.batcher.passEnded(false);
    r.advance(500);
    assert.deepEqual(r.fired, []);
    r.batcher.passEnded(true); // t=500
    r.advance(200);
    assert.deepEqual(r.fired, [600]);
  });

  test('passEnded(true) with a batch open keeps that batch\'s timing', () => {
    const r = rig(100, 1000, (x) => x.batcher.taken());
    r.batcher.touch(); // t=0: due at 100
    r.advance(50);
    r.batcher.passEnded(true); // t=50: not a new batch, still due at 100
    r.advance(100);
    assert.deepEqual(r.fired, [100]);
  });
});
