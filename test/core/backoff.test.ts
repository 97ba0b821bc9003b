// Backoff: min * 2^n, capped at max, jittered +-20 %, reset on success.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Backoff } from '../../core/backoff.ts';

function waits(b: Backoff, n: number): number[] {
  return Array.from({ length: n }, () => b.next());
}

describe('Backoff doubling and cap (no jitter: random() = 0.5)', () => {
  const cases: { name: string; minMs: number; maxMs: number; want: number[] }[] = [
    { name: 'doubles from the first wait', minMs: 500, maxMs: 30_000, want: [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000] },
    { name: 'cap reached at once when min equals max', minMs: 1000, maxMs: 1000, want: [1000, 1000, 1000] },
    { name: 'max below min is raised to min', minMs: 800, maxMs: 100, want: [800, 800] },
    { name: 'cap that is not a power-of-two multiple', minMs: 100, maxMs: 350, want: [100, 200, 350, 350] },
    { name: 'min 0 never waits', minMs: 0, maxMs: 1000, want: [0, 0, 0] },
  ];
  for (const c of cases) {
    test(c.name, () => assert.deepEqual(waits(new Backoff(c.minMs, c.maxMs, () => 0.5), c.want.length), c.want));
  }

  test('regression: many failures neither overflow nor exceed the cap', () => {
    const b = new Backoff(500, 30_000, () => 0.5);
    const all = waits(b, 2000);
    assert.ok(all.every((w) => Number.isFinite(w) && w <= 30_000), 'every wait finite and capped');
    assert.equal(all.at(-1), 30_000);
    assert.equal(b.attempts, 2000);
  });
});

describe('Backoff jitter', () => {
  const cases: { name: string; random: number; want: number }[] = [
    { name: 'random 0 gives -20 %', random: 0, want: 800 },
    { name: 'random 0.5 gives the base', random: 0.5, want: 1000 },
    { name: 'random just under 1 gives almost +20 %', random: 0.999_999, want: 1200 },
  ];
  for (const c of cases) {
    test(c.name, () => assert.equal(new Backoff(1000, 10_000, () => c.random).next(), c.want));
  }

  test('with Math.random every wait stays within +-20 % of its base, capped base included', () => {
    const b = new Backoff(100, 1600);
    for (let i = 0; i < 500; i++) {
      const base = Math.min(1600, 100 * 2 ** b.attempts);
      const w = b.next();
      assert.ok(w >= Math.floor(base * 0.8) && w <= Math.ceil(base * 1.2), `attempt ${i}: ${w} outside ${base} +-20 %`);
      assert.ok(Number.isInteger(w), 'whole milliseconds');
    }
  });
});

describe('Backoff reset', () => {
  test('counts attempts and starts over after reset()', () => {
    const b = new Backoff(250, 4000, () => 0.5);
    assert.equal(b.attempts, 0);
    assert.deepEqual(waits(b, 3), [250, 500, 1000]);
    assert.equal(b.attempts, 3);
    b.reset();
    assert.equal(b.attempts, 0);
    assert.equal(b.next(), 250);
  });
});
