// One proxy per state folder: a second `standby
// proxy` on a live one's state folder, on the same port or another, stops
// before it writes anything, naming the live one's pid; the lock is a real
// flock held by the process, so a SIGKILLed proxy leaves it free.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ErrorCodes } from '../../core/errors.ts';
import { freePort } from '../../core/free-port.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import { proxySettings } from '../fixtures/proxy.ts';
import { startProxyProcess, type ProxyProcess } from '../fixtures/proxy-process.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../fixtures/workspace-server.ts';

function runProxy(configFile: string, timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(STANDBY_CLI, ['proxy', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

test('a second proxy on a live state folder exits naming the live one, writes nothing; after a SIGKILL the folder is free', async (t) => {
  const top = mkdtempSync(join(tmpdir(), 'standby-lock-'));
  const stateDir = join(top, 'state');
  const procs: ProxyProcess[] = [];
  const servers: WorkspaceServer[] = [];
  t.after(async () => {
    for (const p of procs) await p.stop();
    for (const s of servers) await s.close();
    rmSync(top, { recursive: true, force: true });
  });
  const [port, otherPort] = [await freePort(), await freePort()];
  // both code-servers answer and the heartbeat window is long: the live proxy, with no agent, writes nothing itself during the test
  const [gpu, cpu] = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
  servers.push(gpu, cpu);
  const write = (name: string, listenPort: number): string => {
    const file = join(top, name);
    const settings = proxySettings({ primaryUrl: gpu.url, standbyUrl: cpu.url, settings: { listen: { host: '127.0.0.1', port: listenPort }, logLevel: 'info', detector: { heartbeatIntervalMs: 10_000, missedHeartbeats: 10 } } }, stateDir);
    writeFileSync(file, JSON.stringify(settings), { mode: 0o600 });
    return file;
  };
  const samePort = write('proxy.json', port);
  const anotherPort = write('proxy-2.json', otherPort);

  const first = await startProxyProcess(samePort, port);
  procs.push(first);
  const events = readFileSync(join(stateDir, 'events.jsonl'), 'utf8');
  assert.match(events, /proxy started/);

  for (const file of [samePort, anotherPort]) {
    const second = await runProxy(file, 20_000);
    assert.equal(second.code, ErrorCodes.STANDBY_ERR_ALREADY_RUNNING.exit, second.stderr);
    assert.match(second.stderr, new RegExp(`another proxy \\(pid ${first.pid}\\) runs on the state folder ${stateDir}`));
    assert.equal(readFileSync(join(stateDir, 'events.jsonl'), 'utf8'), events, 'the live proxy\'s event log is unchanged');
  }
  // the other port never served
  assert.equal(await fetch(`http://127.0.0.1:${otherPort}/_standby/healthz`).then(() => 'answered', () => 'refused'), 'refused');

  first.kill('SIGKILL');
  await first.exited;
  const third = await startProxyProcess(anotherPort, otherPort);
  procs.push(third);
  assert.equal(readFileSync(join(stateDir, 'proxy.lock'), 'utf8').trim(), String(third.pid));
});
