// The new GPU's start script (proxy/provision/gpu-onstart.ts) end to end,
// with nothing standing in: a real proxy serves install.sh and the bundle, the
// standby is installed by its own line behind a real sshd, the proxy invites
// the GPU, and the script (under a --root prefix, no systemd) runs the real
// install.sh with the invitation: the GPU enrolls (its own token and key, its
// key on the standby), the agent is installed, and the script starts it, which
// connects to the proxy with its own token.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfigSchema } from '../../config/agent.ts';
import { validateSettings } from '../../config/file.ts';
import { killTree } from '../../core/process-tree.ts';
import { gpuOnstart } from '../../proxy/provision/gpu-onstart.ts';
import { startInstalledStandby } from '../fixtures/installed-standby.ts';
import { waitFor } from '../fixtures/wait-for.ts';

test('the start script enrolls a GPU through the proxy\'s real install.sh with its invitation, and the agent it starts connects with its own token', { timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'standby-onstart-e2e-'));
  // undone last first: the agent, the proxy and sshd, then the folder
  const cleanups: (() => unknown)[] = [() => rmSync(dir, { recursive: true, force: true })];
  t.after(async () => {
    for (const undo of cleanups.reverse()) await undo();
  });
  const gpuRoot = join(dir, 'gpu-root');
  const gpuWs = join(dir, 'gpu workspace'); // a space: quoted all the way
  mkdirSync(gpuRoot);
  // the proxy and the standby, by its own line (the proxy authorizes the GPU's key there at enrollment)
  const { sshd, proxy, close } = await startInstalledStandby(dir);
  cleanups.push(close);

  // the GPU: invited, and its start script as the recovery would give it to Vast
  const invited = await proxy.api('hosts', { method: 'POST', body: JSON.stringify({ id: 'gpu-1' }) });
  assert.equal(invited.status, 201);
  const { token } = (await invited.json()) as { token: string };
  const script = gpuOnstart({ proxyUrl: proxy.url, invitation: token, hostId: 'gpu-1', workspace: gpuWs, root: gpuRoot });
  const file = join(dir, 'onstart.sh');
  writeFileSync(file, script, { mode: 0o700 });
  const log = () => {
    try {
      return readFileSync(join(gpuRoot, 'var/log/standby-onstart.log'), 'utf8');
    } catch {
      return '(no log)';
    }
  };
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('sh', [file], { stdio: 'ignore', env: { PATH: process.env.PATH, HOME: dir, TMPDIR: dir } });
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.once('error', reject);
    child.once('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  // the agent runs in the background, started again when it fails: its whole tree goes when the test ends
  const pid = Number(/agent started \(pid (\d+)/.exec(log())?.[1]);
  cleanups.push(() => {
    if (pid > 0) killTree(pid, 'SIGKILL');
  });
  assert.equal(code, 0, log());
  assert.ok(pid > 0, log());
  assert.match(log(), /enrolled at .* as gpu-1: this host's own agent token issued/);
  assert.ok(!log().includes(token), 'the invitation is not in the log');

  const configFile = join(gpuRoot, 'etc/standby/agent.json');
  const config = validateSettings(agentConfigSchema, JSON.parse(readFileSync(configFile, 'utf8')), configFile);
  assert.equal(config.hostId, 'gpu-1');
  assert.equal(config.workspace, gpuWs);
  assert.match(config.proxy!.token ?? '', /^sba_/, "the host's own token, not the invitation");
  assert.ok(readFileSync(sshd.authorizedKeysFile, 'utf8').split('\n').some((l) => l.endsWith('standby-host:gpu-1')), "the GPU's key is on the standby");
  // the GPU's own receiver: the proxy's fencing key, forced to `standby receive --allow-fence` into its workspace (a restore writes through it)
  const gpuKeys = readFileSync(join(gpuRoot, 'root/.ssh/authorized_keys'), 'utf8').split('\n').filter((l) => l.includes(' receive '));
  assert.equal(gpuKeys.length, 1, `one receiver entry on the GPU: ${gpuKeys.join('\n')}`);
  assert.match(gpuKeys[0]!, /--allow-fence/);
  assert.ok(gpuKeys[0]!.includes(gpuWs), 'into its workspace');

  const hosts = async () => ((await (await proxy.api('hosts')).json()) as { hosts: { id: string; state: string; connected: boolean }[] }).hosts;
  await waitFor('the started agent connected to the proxy', async () => (await hosts()).some((h) => h.id === 'gpu-1' && h.state === 'active' && h.connected), {
    timeoutMs: 60_000,
    failIf: () => (/not restarting/.test(safeRead(join(gpuRoot, 'var/log/standby-agent.log'))) ? safeRead(join(gpuRoot, 'var/log/standby-agent.log')).slice(-2000) : undefined),
  });
});

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
