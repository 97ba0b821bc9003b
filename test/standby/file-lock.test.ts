// The receivers' lock (standby/file-lock.ts), a flock(2) lock taken through
// util-linux flock on a descriptor this process opened: shared with shared,
// exclusive against both, a bounded wait, and held for as long as any process
// holds the descriptor (the receiver passes it to rsync), released when the
// last one dies.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { FileLock } from '../../standby/file-lock.ts';
import { waitFor } from '../fixtures/wait-for.ts';

describe("the receivers' lock", () => {
  let dir = '';
  let locks: FileLock[] = [];
  let children: ChildProcess[] = [];
  const open = (): FileLock => {
    const lock = new FileLock(join(dir, 'lock'));
    locks.push(lock);
    return lock;
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'standby-lock-'));
  });
  afterEach(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const l of locks) l.close();
    locks = [];
    children = [];
    rmSync(dir, { recursive: true, force: true });
  });

  test('shared with shared; exclusive against either; free again once closed', async () => {
    const [a, b, c] = [open(), open(), open()];
    assert.equal(await a.acquire('shared', 0), true);
    assert.equal(await b.acquire('shared', 0), true, 'two writers at once');
    assert.equal(await c.acquire('exclusive', 0), false, 'no fence while writers hold it');
    a.close();
    b.close();
    assert.equal(await c.acquire('exclusive', 0), true);
    const d = open();
    assert.equal(await d.acquire('shared', 0), false, 'no writer while a fence holds it');
    c.close();
    c.close(); // twice is harmless
    assert.equal(await d.acquire('shared', 0), true);
  });

  test('a wait ends true when the holder lets go in time, false (not an error) when it does not', async () => {
    const [holder, waiter] = [open(), open()];
    assert.equal(await holder.acquire('exclusive', 0), true);
    let started = performance.now();
    assert.equal(await waiter.acquire('exclusive', 300), false);
    const waited = performance.now() - started;
    assert.ok(waited >= 250 && waited < 5_000, `waited ${Math.round(waited)} ms for a 300 ms wait`);
    started = performance.now();
    const waiting = waiter.acquire('exclusive', 10_000);
    holder.close();
    assert.equal(await waiting, true);
    assert.ok(performance.now() - started < 5_000, 'had as soon as it was free, not at the end of the wait');
  });

  test('a child given the descriptor keeps the lock after this process closes it, until the child dies', async () => {
    const [lock, other] = [open(), open()];
    assert.equal(await lock.acquire('shared', 0), true);
    const child = spawn('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', lock.fd] });
    children.push(child);
    lock.close();
    assert.equal(await other.acquire('exclusive', 0), false, 'the child holds it');
    child.kill('SIGKILL');
    await waitFor('the lock free once the child died', () => other.acquire('exclusive', 0), { timeoutMs: 5_000 });
  });
});
