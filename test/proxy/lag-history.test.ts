// The dashboard's lag history (proxy/lag-history.ts): one sample per step with
// the highest lag and pending count heard in it, a ring that never holds more
// than its capacity (the oldest go), written to <stateDir> at most once per
// persist interval (not at every heartbeat) and at close, read back by the
// next proxy so a restart does not empty the chart; a damaged file starts it
// empty without stopping the proxy.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { pino } from 'pino';
import { LagHistory } from '../../proxy/lag-history.ts';

const log = pino({ level: 'silent' });
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'standby-lag-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sync = (lagMs: number | null, pending: number) => ({ oldestPendingAgeMs: lagMs, pending });

test('one sample per step, holding the highest lag and pending count heard in it', () => {
  const h = new LagHistory({ stateDir: dir, sampleMs: 1_000, log, persistEveryMs: 60_000 });
  h.record(sync(200, 3), 10_000);
  h.record(sync(900, 1), 10_400);
  h.record(sync(null, 0), 10_999);
  h.record(sync(50, 7), 11_200);
  assert.deepEqual(h.samples(), [[10_000, 900, 3], [11_000, 50, 7]]);
  h.close();
});

test('bounded: the ring keeps the newest `capacity` samples, oldest first', () => {
  const h = new LagHistory({ stateDir: dir, sampleMs: 1_000, capacity: 5, log, persistEveryMs: 60_000 });
  for (let i = 0; i < 23; i++) h.record(sync(i, i), i * 1_000);
  const s = h.samples();
  assert.equal(s.length, 5);
  assert.deepEqual(s.map((x) => x[1]), [18, 19, 20, 21, 22]);
  h.close();
});

test('the file is written at most once per persist interval, and at close; a restart reads the chart back', () => {
  const h = new LagHistory({ stateDir: dir, sampleMs: 100, log, persistEveryMs: 60_000 });
  // a heartbeat twice a second for a minute's worth of samples
  for (let i = 0; i < 120; i++) h.record(sync(i * 10, 1), 1_000 + i * 500);
  assert.equal(h.writes, 1, 'the first sample writes, the rest wait for the interval');
  h.close();
  assert.equal(h.writes, 2, 'close writes what the interval held back');
  const file = join(dir, 'lag-history.json');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const again = new LagHistory({ stateDir: dir, sampleMs: 100, log });
  assert.equal(again.samples().length, 120);
  assert.deepEqual(again.samples().at(-1), [1_000 + 119 * 500, 1_190, 1]);
  // it goes on from there
  again.record(sync(5, 2), 1_000 + 120 * 500);
  assert.equal(again.samples().length, 121);
  again.close();
  assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { samples: unknown[] }).samples.length, 121);
});

test('a restart with a smaller capacity keeps the newest samples', () => {
  const a = new LagHistory({ stateDir: dir, sampleMs: 1_000, log });
  for (let i = 0; i < 10; i++) a.record(sync(i, 0), i * 1_000);
  a.close();
  const b = new LagHistory({ stateDir: dir, sampleMs: 1_000, capacity: 4, log });
  assert.deepEqual(b.samples().map((x) => x[1]), [6, 7, 8, 9]);
  b.record(sync(10, 0), 10_000);
  assert.deepEqual(b.samples().map((x) => x[1]), [7, 8, 9, 10]);
  b.close();
});

test('a damaged file (not JSON, or holding junk) starts the chart empty, never stops the proxy', () => {
  const file = join(dir, 'lag-history.json');
  writeFileSync(file, '{"samples": [[1, 2, 3], [4, "x", 6], [-1, 0, 0], [7, 8, 9]]}', { mode: 0o600 });
  assert.deepEqual(new LagHistory({ stateDir: dir, log }).samples(), [[1, 2, 3], [7, 8, 9]], 'only well-formed samples are kept');
  writeFileSync(file, '{"samp', { mode: 0o600 });
  assert.deepEqual(new LagHistory({ stateDir: dir, log }).samples(), []);
});
