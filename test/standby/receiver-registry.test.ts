// The live receivers on the standby (standby/receiver-registry.ts): a record
// per receiver, read back while its process (or the rsync it runs) lives,
// removed once both are gone or its pid was recycled, and signalled, group
// and all, only while the recorded processes are the ones running.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { liveReceivers, processStart, recordReceiver, signalReceiver, type ReceiverRecord } from '../../standby/receiver-registry.ts';
import { waitFor } from '../fixtures/wait-for.ts';

describe('the live receivers', () => {
  let state = '';
  let children: ChildProcess[] = [];
  const sleeper = (detached = false): ChildProcess & { pid: number } => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore', detached });
    children.push(child);
    assert.ok(child.pid !== undefined);
    return child as ChildProcess & { pid: number };
  };
  const ended = (child: ChildProcess): Promise<NodeJS.Signals | null> =>
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve(child.signalCode) : new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  const record = (pid: number, start: string, more: Partial<ReceiverRecord> = {}): ReceiverRecord => ({ pid, start, epoch: 1, kind: 'rsync', target: '/ws/', ...more });
  beforeEach(() => {
    state = mkdtempSync(join(tmpdir(), 'standby-receivers-'));
  });
  afterEach(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    children = [];
    rmSync(state, { recursive: true, force: true });
  });

  test('a process start time tells a live process from a gone or recycled one', async () => {
    assert.match(processStart(process.pid) ?? '', /^\d+$/);
    const child = sleeper();
    const start = processStart(child.pid);
    assert.match(start ?? '', /^\d+$/);
    child.kill('SIGKILL');
    await ended(child);
    await waitFor('the gone process without a start time', () => processStart(child.pid) === undefined, { timeoutMs: 5_000 });
  });

  test('a record reads back while its process lives and goes when forgotten', () => {
    const mine = record(process.pid, processStart(process.pid)!, { host: 'gpu-1' });
    const forget = recordReceiver(state, mine);
    assert.deepEqual(liveReceivers(state), [mine]);
    forget();
    assert.deepEqual(liveReceivers(state), []);
    assert.deepEqual(readdirSync(join(state, 'receivers')), []);
  });

  test("a killed receiver's record is removed by the next reader, unless the rsync it ran still runs; a recycled pid does not count", async () => {
    const receiver = sleeper();
    const rsync = sleeper(true);
    const r = record(receiver.pid, processStart(receiver.pid)!, { child: { pid: rsync.pid, start: processStart(rsync.pid)! } });
    recordReceiver(state, r);
    receiver.kill('SIGKILL');
    await ended(receiver);
    assert.deepEqual(liveReceivers(state), [r], 'its rsync still runs: still a live receiver');
    rsync.kill('SIGKILL');
    await ended(rsync);
    await waitFor('the record removed', () => liveReceivers(state).length === 0 && !existsSync(join(state, 'receivers', `${r.pid}.json`)), { timeoutMs: 5_000 });
    recordReceiver(state, record(process.pid, 'not-its-start'));
    assert.deepEqual(liveReceivers(state), [], 'the pid runs, but another process than the one recorded');
    assert.equal(liveReceivers(join(state, 'none')).length, 0, 'no folder: no receivers');
  });

  test("a signal reaches the receiver and its rsync's whole group; once they are gone, or recycled, nothing is signalled", async () => {
    const receiver = sleeper();
    const rsync = sleeper(true);
    const r = record(receiver.pid, processStart(receiver.pid)!, { child: { pid: rsync.pid, start: processStart(rsync.pid)! } });
    assert.equal(signalReceiver(r, 'SIGTERM'), true);
    assert.deepEqual(await Promise.all([ended(receiver), ended(rsync)]), ['SIGTERM', 'SIGTERM']);
    await waitFor('both gone', () => processStart(receiver.pid) === undefined && processStart(rsync.pid) === undefined, { timeoutMs: 5_000 });
    assert.equal(signalReceiver(r, 'SIGKILL'), false);
    const other = sleeper();
    assert.equal(signalReceiver(record(other.pid, 'not-its-start'), 'SIGKILL'), false, 'a recycled pid is left alone');
    assert.equal(other.exitCode ?? other.signalCode, null, 'still running');
  });
});
