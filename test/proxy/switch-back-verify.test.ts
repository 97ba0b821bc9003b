// Switching back with real parts: a real GPU agent syncs to a real standby
// (sshd, the receiver, the proxy's fencing key); a failover fences it; the
// developer works on the standby; the GPU is invited back, enrolls a new key
// and its new agent is granted fenced. `standby switch-back` has that agent
// compare its workspace with the standby's (a dry run through the receiver,
// under the epoch it was told) and refuses while they differ; restored by
// hand, the switch goes through, the GPU serves and syncs again, and the
// developer's work on the standby is on both sides.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startAgent, type Agent } from '../fixtures/agent-process.ts';
import { proxySettingsFor, startManagedStandby, type ManagedStandby } from '../fixtures/managed-standby.ts';
import { startProxyWithBackends, whoami as whoamiVia, type ProxyWithBackends, type TestProxy } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

describe('switch-back: the GPU agent compares its workspace with the standby\'s', () => {
  let m: ManagedStandby;
  let proxy: TestProxy;
  let world: ProxyWithBackends;
  let top: string;
  const agents: Agent[] = [];

  const whoami = (): Promise<string> => whoamiVia(proxy.url);
  const api = async (path: string, body?: unknown): Promise<{ status: number; message: string }> => {
    const res = await proxy.api(path, { method: 'POST', ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const b = (await res.json()) as { message?: string; error?: { message: string }; token?: string; agentToken?: string };
    return { status: res.status, message: b.error?.message ?? b.message ?? '' };
  };
  /** invites gpu-1 and enrolls a new key for it: its agent token */
  const enroll = async (keyFile: string, pub: string): Promise<{ keyFile: string; token: string }> => {
    const invited = await proxy.api('hosts', { method: 'POST', body: JSON.stringify({ id: 'gpu-1', ttlSeconds: 600 }) });
    assert.equal(invited.status, 201, await invited.clone().text());
    const invitation = ((await invited.json()) as { token: string }).token;
    const res = await fetch(`${proxy.url}/_standby/enroll`, { method: 'POST', headers: { authorization: `Bearer ${invitation}`, 'content-type': 'application/json' }, body: JSON.stringify({ publicKey: pub }), signal: AbortSignal.timeout(30_000) });
    assert.equal(res.status, 200, await res.clone().text());
    return { keyFile, token: ((await res.json()) as { agentToken: string }).agentToken };
  };
  const startGpuAgent = async (name: string, creds: { keyFile: string; token: string }, workspace: string): Promise<Agent> => {
    const dir = join(top, name);
    mkdirSync(dir);
    const agent = await startAgent({
      src: workspace,
      dst: m.root,
      dir,
      target: { host: m.sshd.host, port: m.sshd.port, user: m.sshd.user, identityFile: creds.keyFile, sshOptions: m.sshd.sshOptions },
      settings: { hostId: 'gpu-1', proxy: { url: `${proxy.url.replace('http', 'ws')}/_standby/agent`, token: creds.token, heartbeatIntervalMs: 200 } },
    });
    agents.push(agent);
    return agent;
  };

  before(async () => {
    top = mkdtempSync(join(tmpdir(), 'standby-switch-verify-'));
    m = await startManagedStandby('switch-verify');
    world = await startProxyWithBackends({ settings: proxySettingsFor(m) });
    proxy = world.proxy;
  });
  after(async () => {
    for (const a of agents) await a.stop().catch(() => undefined);
    await world?.close();
    await m?.close();
    if (top) rmSync(top, { recursive: true, force: true });
  });

  test('refused while the standby holds work the GPU lacks; restored by hand, the GPU serves and syncs again', { timeout: 240_000 }, async () => {
    const workspace = join(top, 'gpu-workspace');
    mkdirSync(workspace);
    writeFileSync(join(workspace, 'model.py'), 'print("v1")\n');
    const k1 = m.newKey('gpu-1');
    const first = await startGpuAgent('agent-1', await enroll(k1.file, k1.pub), workspace);
    await first.ready(60_000);
    await first.settled(60_000, { quietMs: 300 });
    assert.equal(readFileSync(join(m.root, 'model.py'), 'utf8'), 'print("v1")\n');

    // a failover by hand: the standby serves, gpu-1's first key is revoked with the fence
    assert.equal((await api('failover')).status, 202);
    await waitFor('failed over', () => proxy.store.state.phase === 'failed_over', { timeoutMs: 30_000 });
    await first.stop();
    assert.equal(await whoami(), 'cpu');

    // the developer works on the standby
    writeFileSync(join(m.root, 'model.py'), 'print("v2, written on the standby")\n');
    writeFileSync(join(m.root, 'notes.md'), 'only on the standby\n');

    // the GPU comes back: a new key, a new agent, granted fenced (it pushes nothing)
    const k2 = m.newKey('gpu-1');
    const second = await startGpuAgent('agent-2', await enroll(k2.file, k2.pub), workspace);
    await waitFor('its agent heartbeating', () => {
      const a = proxy.hub.agents.get('gpu-1');
      return a?.connected === true && a.last !== undefined && performance.now() - a.lastHeartbeatAt < 500;
    }, { timeoutMs: 30_000 });

    // its workspace is not the standby's: refused, even with the admin's word, and nothing moved
    const differs = await api('switch-back', { confirmRestored: true });
    assert.equal(differs.status, 409, differs.message);
    assert.match(differs.message, /gpu-1's workspace differs from the standby's in [1-9]\d* paths/);
    assert.equal(proxy.store.state.phase, 'failed_over');
    assert.equal(await whoami(), 'cpu', 'the standby serves again after the check');
    assert.equal(readFileSync(join(m.root, 'notes.md'), 'utf8'), 'only on the standby\n', 'the fenced GPU overwrote nothing');

    // the admin restores the GPU from the standby by hand (docs/operations.md: rsync -a --delete); now they compare equal
    execFileSync('rsync', ['-a', '--delete', `${m.root}/`, `${workspace}/`]);
    const ok = await api('switch-back');
    assert.equal(ok.status, 202, ok.message);
    await waitFor('the GPU serves', () => proxy.store.state.active === 'primary' && proxy.store.state.phase === 'normal', { timeoutMs: 60_000 });
    assert.equal(proxy.store.state.epoch, 3);
    assert.match(proxy.store.events().find((e) => e.type === 'switch-back')?.reason ?? '', /its workspace equal to the standby's \(compared by its agent\)/);
    assert.equal(await whoami(), 'gpu');

    // granted primary at the new epoch, the GPU syncs again; the developer's work survived on both sides
    writeFileSync(join(workspace, 'after.txt'), 'back on the GPU\n');
    await waitFor('the GPU syncs again', () => existsSync(join(m.root, 'after.txt')), { timeoutMs: 60_000 });
    assert.equal(readFileSync(join(m.root, 'model.py'), 'utf8'), 'print("v2, written on the standby")\n');
    assert.equal(readFileSync(join(m.root, 'notes.md'), 'utf8'), 'only on the standby\n');
    await second.ready(60_000); // its first full reconcile under the new grant landed too
  });
});
