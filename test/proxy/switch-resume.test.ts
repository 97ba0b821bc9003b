// The new events replay: a proxy killed mid switch back resumes it (fence at
// the logged epoch, then route to the GPU) without a second new epoch; an
// aborted failover or switch back, and the GPU seen, add up the same on
// every reopen.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startTestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { startWorkspaceServer } from '../fixtures/workspace-server.ts';
import { awaitingGpu, unfinished } from '../../proxy/state.ts';
import { StateStore } from '../../proxy/state-store.ts';

test('replay: gpu-seen ends the wait; aborted gives the route back to the side named; switch-back is unfinished until routed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'standby-switch-state-'));
  try {
    const a = StateStore.open(dir);
    assert.equal(awaitingGpu(a.state), true, 'a fresh proxy waits for its GPU');
    a.append({ type: 'gpu-seen', epoch: 1, reason: 'test' });
    assert.equal(awaitingGpu(a.state), false);
    a.append({ type: 'epoch', epoch: 2, planned: true, watermark: 1, pending: 0, reason: 'test' });
    a.append({ type: 'aborted', epoch: 2, reason: 'test' });
    assert.deepEqual([a.state.active, a.state.phase, a.state.epoch, a.state.gpuSeenEpoch, unfinished(a.state)], ['primary', 'normal', 2, 2, undefined]);
    a.append({ type: 'epoch', epoch: 3, planned: true, watermark: 1, pending: 0, reason: 'test' });
    a.append({ type: 'fenced', epoch: 3, waitedMs: 0, killed: 0, reason: 'test' });
    a.append({ type: 'routed', side: 'standby', epoch: 3, ms: null, reason: 'test' });
    a.append({ type: 'switch-back', epoch: 4, reason: 'test' });
    assert.deepEqual([a.state.phase, a.state.epoch, unfinished(a.state)], ['switching_back', 4, 'fence']);
    a.append({ type: 'aborted', epoch: 4, side: 'standby', reason: 'test' });
    assert.deepEqual([a.state.active, a.state.phase, a.state.epoch, a.state.gpuSeenEpoch], ['standby', 'failed_over', 4, 2]);
    a.append({ type: 'switch-back', epoch: 5, reason: 'test' });
    a.append({ type: 'fenced', epoch: 5, waitedMs: 0, killed: 0, reason: 'test' });
    assert.equal(unfinished(a.state), 'route');
    const before = a.state;
    a.close();
    const b = StateStore.open(dir);
    assert.deepEqual(b.state, before);
    b.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a proxy restarted mid switch back fences at the logged epoch and routes to the GPU, no second epoch', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'standby-switch-resume-'));
  const [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
  const fenced: number[] = [];
  try {
    const s = StateStore.open(dir);
    s.append({ type: 'gpu-seen', epoch: 1, reason: 'test' });
    s.append({ type: 'epoch', epoch: 2, planned: false, watermark: 1, pending: 0, reason: 'test' });
    s.append({ type: 'fenced', epoch: 2, waitedMs: 0, killed: 0, reason: 'test' });
    s.append({ type: 'routed', side: 'standby', epoch: 2, ms: null, reason: 'test' });
    s.append({ type: 'switch-back', epoch: 3, reason: 'test' });
    s.close();
    // the fence is the hook here (the SSH fence has its own tests): it records the epoch it was asked for
    const proxy = await startTestProxy({ primaryUrl: gpu.url, standbyUrl: cpu.url, stateDir: dir, fence: (epoch) => (fenced.push(epoch), Promise.resolve({ waitedMs: 0, killed: 0 })) });
    try {
      await waitFor('switched back', () => proxy.store.state.phase === 'normal' && proxy.store.state.active === 'primary', { timeoutMs: 10_000 });
      assert.deepEqual(fenced, [3]);
      assert.deepEqual([proxy.store.state.epoch, proxy.store.state.fencedEpoch, proxy.store.state.gpuSeenEpoch], [3, 3, 3]);
      assert.equal(proxy.store.events().filter((e) => e.type === 'switch-back' || e.type === 'epoch').length, 2, 'no second new epoch');
      assert.equal((await (await fetch(`${proxy.url}/whoami`, { signal: AbortSignal.timeout(2_000) })).text()), 'gpu');
    } finally {
      await proxy.close();
    }
  } finally {
    await Promise.all([gpu.close(), cpu.close()]);
    rmSync(dir, { recursive: true, force: true });
  }
});
