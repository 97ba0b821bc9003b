// The proxy's state survives SIGKILL: a proxy killed after logging a new epoch
// but before it could fence resumes the fence when it comes back, then routes;
// and a proxy restarted after a failover routes the same way at once.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startAgent, type Agent } from '../fixtures/agent-process.ts';
import { freePort } from '../../core/free-port.ts';
import { killMarked } from '../fixtures/process-tree.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import { ADMIN_TOKEN, AGENT_TOKEN, proxySettings } from '../fixtures/proxy.ts';
import { startProxyProcess, type ProxyProcess } from '../fixtures/proxy-process.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../fixtures/workspace-server.ts';

interface ApiStatus {
  phase: string;
  active: string;
  epoch: number;
  lastFenceError: string | null;
  agents: { connected: boolean; heartbeats: number }[];
}

async function apiStatus(p: ProxyProcess): Promise<ApiStatus> {
  const r = await fetch(`${p.url}/_standby/api/v1/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(2_000) });
  return (await r.json()) as ApiStatus;
}

async function whoami(p: ProxyProcess): Promise<string> {
  return fetch(`${p.url}/whoami`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.text(), (e: Error) => e.message);
}

test('a proxy SIGKILLed between logging the epoch and fencing fences and routes when it comes back; restarted again, it routes the same way', async () => {
  const top = mkdtempSync(join(tmpdir(), 'standby-restart-'));
  const gpuDir = join(top, 'gpu');
  const cpuDir = join(top, 'cpu');
  const stateDir = join(top, 'proxy-state');
  const receiveState = join(top, 'receive-state');
  const runDir = join(top, 'run');
  for (const d of [gpuDir, cpuDir, receiveState, runDir]) mkdirSync(d);
  let sshd: Sshd | undefined;
  let gpu: WorkspaceServer | undefined;
  let cpu: WorkspaceServer | undefined;
  let proxy: ProxyProcess | undefined;
  let agent: Agent | undefined;
  try {
    sshd = await startSshd({ keyOptions: `command="${STANDBY_CLI} receive --root ${cpuDir} --state-dir ${receiveState}",restrict`, moreKeys: { admin: '' } });
    [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
    const port = await freePort();
    const configFile = join(top, 'proxy.json');
    const settings = proxySettings({
      primaryUrl: gpu.url,
      standbyUrl: cpu.url,
      settings: {
        listen: { host: '127.0.0.1', port },
        logLevel: 'info',
        standby: { ssh: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.keys.admin!, knownHostsFile: sshd.knownHostsFile, command: `${STANDBY_CLI} receive`, stateDir: receiveState, timeoutMs: 3_000 } },
      },
    }, stateDir);
    writeFileSync(configFile, JSON.stringify(settings, null, 2), { mode: 0o600 });
    proxy = await startProxyProcess(configFile, port);
    agent = await startAgent({
      src: gpuDir,
      dst: cpuDir,
      target: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, sshOptions: sshd.sshOptions },
      dir: top,
      settings: { hostId: 'gpu-1', runDir, proxy: { url: `ws://127.0.0.1:${port}/_standby/agent`, token: AGENT_TOKEN }, codeServer: { url: `${gpu.url}/healthz` } },
    });
    await agent.ready(30_000);
    await waitFor('heartbeats', async () => (await apiStatus(proxy!)).agents[0]!.heartbeats > 2, { timeoutMs: 10_000 });

    // The standby's sshd is down, then the GPU dies: the proxy logs epoch 2 and cannot fence.
    sshd.kill();
    gpu.kill('SIGKILL');
    agent.kill('SIGKILL');
    killMarked(runDir);
    await waitFor('stuck fencing', async () => {
      const s = await apiStatus(proxy!);
      return s.phase === 'failing_over' && s.lastFenceError !== null ? s : undefined;
    }, { timeoutMs: 15_000 });
    assert.notEqual(await whoami(proxy), 'cpu', 'no route to an unfenced standby');
    const page = await fetch(`${proxy.url}/`, { headers: { accept: 'text/html' } });
    assert.equal(page.status, 503);
    assert.match(await page.text(), /Switching machine/);
    const api = await fetch(`${proxy.url}/some/api/call`, { headers: { accept: 'application/json' } });
    assert.equal(api.status, 503, 'not a page: a plain 503');
    assert.equal(api.headers.get('retry-after'), '1');

    proxy.kill('SIGKILL');
    await proxy.exited;
    await sshd.start();
    proxy = await startProxyProcess(configFile, port);
    await waitFor('the standby served', async () => (await whoami(proxy!)) === 'cpu', { timeoutMs: 15_000 });
    assert.match(proxy.log(), /resuming a failover the previous run left unfinished/);
    assert.equal(readFileSync(join(receiveState, 'epoch'), 'utf8').trim(), '2');
    const types = readFileSync(join(stateDir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { type: string; epoch?: number }));
    assert.deepEqual(types.filter((e) => e.type === 'epoch').map((e) => e.epoch), [2], 'one new epoch, not two');
    assert.deepEqual(types.filter((e) => ['fenced', 'routed'].includes(e.type)).map((e) => e.type), ['fenced', 'routed']);

    // Killed again after the failover: it comes back routing to the standby at once.
    proxy.kill('SIGKILL');
    await proxy.exited;
    proxy = await startProxyProcess(configFile, port);
    assert.equal(await whoami(proxy), 'cpu');
    assert.deepEqual([(await apiStatus(proxy)).phase, (await apiStatus(proxy)).epoch], ['failed_over', 2]);
  } finally {
    await proxy?.stop();
    await agent?.stop();
    killMarked(runDir);
    await Promise.all([gpu?.close(), cpu?.close()]);
    await sshd?.close();
    rmSync(top, { recursive: true, force: true });
  }
});
