// A failover whose fence cannot complete (the standby's sshd refuses the
// proxy's key) leaves the GPU its credentials, and the admin can abort it
// while the GPU answers: the GPU serves again, its agent syncs again under the
// new epoch, and the log replays to the same state. An abort is refused when
// the GPU does not answer, and after a fence completed.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { standby } from '../fixtures/cli-run.ts';
import { heartbeatsFlowing, startWorld, type World } from '../fixtures/failover-world.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { StateStore } from '../../proxy/state-store.ts';
import { descendants } from '../../core/process-tree.ts';

/**
 * The proxy's fencing key file, swapped for the GPU's writer key (sshd lets it in, its forced command
 * refuses a fence) and back. The swap also ends the sessions sshd serves: a connection the proxy opened
 * ahead of a fence (fence-warmup.ts, after any heartbeat that came late under load) was logged in with
 * the good key, and would fence with it whatever the file says now.
 */
function fencingKey(world: World): { refuse(): void; restore(): void } {
  const file = world.sshd.keys.admin!;
  const good = readFileSync(file);
  return {
    refuse: () => {
      copyFileSync(world.sshd.identityFile, file);
      const listener = world.sshd.pid();
      for (const pid of listener === undefined ? [] : descendants(listener)) {
        if (pid === listener) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // ended on its own
        }
      }
    },
    restore: () => writeFileSync(file, good, { mode: 0o600 }),
  };
}

/**
 * POSTs to the admin API on a connection of its own: fetch's pooled sockets may have carried GPU traffic
 * (world.get), and a freeze closes those, with the request on them.
 */
function post(world: World, path: string): Promise<{ status: number; message: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${world.proxy.url}/_standby/api/v1/${path}`, { method: 'POST', agent: false, timeout: 30_000, headers: { authorization: `Bearer ${world.proxy.config.adminToken}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { message?: string; error?: { message: string } };
        resolve({ status: res.statusCode ?? 0, message: body.error?.message ?? body.message ?? '' });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`POST ${path}: no answer within 30 s`)));
    req.on('error', reject);
    req.end();
  });
}

async function hostState(world: World, id: string): Promise<string | undefined> {
  const body = (await (await world.proxy.api('hosts')).json()) as { hosts: { id: string; state: string }[] };
  return body.hosts.find((h) => h.id === id)?.state;
}

test('a failover that cannot fence keeps the GPU its token, can be aborted while the GPU answers, and the GPU syncs again', async () => {
  const world = await startWorld();
  const key = fencingKey(world);
  try {
    await heartbeatsFlowing(world, { normal: true });
    writeFileSync(join(world.gpuDir, 'before.txt'), 'before the failover');
    await world.agent!.settled(10_000);

    key.refuse();
    assert.equal((await post(world, 'failover')).status, 202);
    await waitFor('a fence attempt refused', () => world.proxy.store.state.phase === 'failing_over' && world.proxy.failover.lastFenceError !== null, { timeoutMs: 40_000 });
    assert.equal(world.proxy.store.state.epoch, 2);
    // granting fenced is not revoking: the token stands until a fence succeeds
    assert.notEqual(await hostState(world, 'gpu-1'), 'revoked', "gpu-1's credentials are not revoked while the fence has not succeeded");
    await waitFor('the old primary hears fenced', () => /fenced: pushing nothing more/.test(world.agent!.logTail()), { timeoutMs: 5_000 });
    assert.equal(world.proxy.hub.agents.get('gpu-1')!.connected, true);
    assert.notEqual((await world.get('/whoami', 1_000)).body, 'gpu', 'nothing reaches the GPU while failing over');

    const aborted = await post(world, 'failover/abort');
    assert.equal(aborted.status, 200, aborted.message);
    assert.match(aborted.message, /the GPU serves again at epoch 2/);
    const s = world.proxy.store.state;
    assert.deepEqual([s.active, s.phase, s.epoch, s.fencedEpoch], ['primary', 'normal', 2, 0]);
    assert.equal((await world.get('/whoami')).body, 'gpu', 'the GPU serves again');
    assert.ok(world.proxy.store.events().some((e) => e.type === 'aborted' && e.epoch === 2));

    // a fence that half ran (the standby wrote the new epoch, its answer lost) must not lock the GPU out:
    // the GPU is granted primary at the new epoch, which the standby accepts
    writeFileSync(join(world.receiveState, 'epoch'), '2\n');
    writeFileSync(join(world.gpuDir, 'after.txt'), 'after the abort');
    await waitFor('the GPU syncs again', () => existsSync(join(world.cpuDir, 'after.txt')), { timeoutMs: 15_000 });
    assert.match(world.agent!.logTail(), /granted primary/);

    // the log replays to the same state
    const reopened = StateStore.open(world.proxy.store.dir);
    try {
      assert.deepEqual({ ...reopened.state }, { ...world.proxy.store.state });
    } finally {
      reopened.close();
    }
    const again = await post(world, 'failover/abort');
    assert.equal(again.status, 409, 'nothing to abort');

    // the fence works again: a failover completes, and only now is the GPU revoked
    key.restore();
    assert.equal((await post(world, 'failover')).status, 202);
    await waitFor('failed over', () => world.proxy.store.state.phase === 'failed_over', { timeoutMs: 20_000 });
    assert.equal(world.proxy.store.state.epoch, 3);
    await waitFor('gpu-1 revoked after the fence', async () => (await hostState(world, 'gpu-1')) === 'revoked', { timeoutMs: 5_000 });
    const late = await post(world, 'failover/abort');
    assert.equal(late.status, 409);
    assert.match(late.message, /failover completed/);
  } finally {
    key.restore();
    await world.close();
  }
});

test('an abort is refused when the GPU does not answer (no backend would be left), and after the fence completed', async () => {
  const world = await startWorld();
  const key = fencingKey(world);
  try {
    await heartbeatsFlowing(world, { normal: true });
    key.refuse();
    world.killGpu();
    await waitFor('a fence attempt refused', () => world.proxy.store.state.phase === 'failing_over' && world.proxy.failover.lastFenceError !== null, { timeoutMs: 40_000 });
    const refused = await post(world, 'failover/abort');
    assert.equal(refused.status, 409);
    assert.match(refused.message, /the GPU does not answer: aborting would leave no backend/);
    const cli = await standby(['failover', '--abort', '--proxy', world.proxy.url, '--token', world.proxy.config.adminToken]);
    assert.notEqual(cli.code, 0, 'standby failover --abort fails when the proxy refuses');
    assert.match(cli.stderr, /the GPU does not answer: aborting would leave no backend/);
    assert.equal(world.proxy.store.state.phase, 'failing_over');
    // the standby becomes reachable: the fence completes, then an abort names why it cannot be
    key.restore();
    await waitFor('fenced', () => world.proxy.store.state.fencedEpoch === 2, { timeoutMs: 20_000 });
    await waitFor('failed over', () => world.proxy.store.state.phase === 'failed_over', { timeoutMs: 5_000 });
    const late = await post(world, 'failover/abort');
    assert.equal(late.status, 409);
    assert.match(late.message, /switch-back/);
  } finally {
    key.restore();
    await world.close();
  }
});
