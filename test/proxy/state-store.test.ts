// The proxy's durable state: events written before they take effect, replayed
// on open, a torn last line ignored, a damaged log refused with a clear error.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { unfinished } from '../../proxy/state.ts';
import { StateStore } from '../../proxy/state-store.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'standby-state-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('a fresh store starts at epoch 1 with the GPU serving', () => {
  const s = StateStore.open(dir);
  assert.deepEqual({ epoch: s.state.epoch, active: s.state.active, phase: s.state.phase }, { epoch: 1, active: 'primary', phase: 'normal' });
  s.close();
});

test('events survive a reopen, in order, and add up to the same state', () => {
  const a = StateStore.open(dir);
  a.append({ type: 'epoch', epoch: 2, planned: false, watermark: 41, pending: 3, reason: 'test' });
  a.append({ type: 'fenced', epoch: 2, waitedMs: 5, killed: 0, reason: 'test' });
  a.append({ type: 'routed', side: 'standby', epoch: 2, ms: null, reason: 'test' });
  const before = a.state;
  a.close();
  const b = StateStore.open(dir);
  assert.deepEqual(b.state, before);
  assert.deepEqual(b.events().map((e) => e.type), ['epoch', 'fenced', 'routed']);
  assert.equal(b.state.failovers, 1);
  assert.equal(b.state.watermarkAtFailover, 41);
  b.close();
});

test('a crash after the log append but before the snapshot: the log wins', () => {
  const a = StateStore.open(dir);
  a.append({ type: 'phase', phase: 'suspect', reason: 'test' });
  a.close();
  // the event the snapshot never saw
  appendFileSync(join(dir, 'events.jsonl'), JSON.stringify({ seq: 2, at: new Date().toISOString(), type: 'epoch', epoch: 2, planned: false, watermark: null, pending: null, reason: 'x' }) + '\n');
  const b = StateStore.open(dir);
  assert.equal(b.state.epoch, 2);
  assert.equal(b.state.phase, 'failing_over');
  assert.equal(unfinished(b.state), 'fence', 'a restarted proxy knows it must fence before it routes');
  b.close();
});

test('a torn last line (crash mid-append) is ignored; the event never took effect', () => {
  const a = StateStore.open(dir);
  a.append({ type: 'phase', phase: 'suspect', reason: 'test' });
  a.close();
  appendFileSync(join(dir, 'events.jsonl'), '{"seq":2,"type":"epo');
  const b = StateStore.open(dir);
  assert.equal(b.state.epoch, 1);
  b.close();
});

test('a damaged line in the middle of the log stops start-up with a message naming the file and line', () => {
  const a = StateStore.open(dir);
  a.append({ type: 'phase', phase: 'suspect', reason: 'test' });
  a.close();
  const log = join(dir, 'events.jsonl');
  writeFileSync(log, 'garbage\n' + readFileSync(log, 'utf8'));
  rmSync(join(dir, 'state.json'));
  assert.throws(() => StateStore.open(dir), /events\.jsonl line 1 is not JSON/);
});

test('fenced but not routed: the restarted proxy routes without fencing again', () => {
  const a = StateStore.open(dir);
  a.append({ type: 'epoch', epoch: 2, planned: true, watermark: 1, pending: 0, reason: 'test' });
  a.append({ type: 'fenced', epoch: 2, waitedMs: 0, killed: 0, reason: 'test' });
  a.close();
  const b = StateStore.open(dir);
  assert.equal(unfinished(b.state), 'route');
  b.close();
});
