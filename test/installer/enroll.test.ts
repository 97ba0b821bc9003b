// The one line on every machine, end to end, with what the installers laid
// down doing the work: the standby installed by `curl | sh -s -- standby`
// (its authorized_keys read by a real sshd, its forced command the installed
// program), a GPU invited with the admin API and installed by
// `curl | sh -s -- agent --token sbi_...` (enrolled: its own token and key),
// then the installed agent run: its writes land on the standby through its
// own key. Revoking it stops it for good.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfigSchema } from '../../config/agent.ts';
import { validateSettings } from '../../config/file.ts';
import { killTree } from '../../core/process-tree.ts';
import { run } from '../fixtures/cli-run.ts';
import { startInstalledStandby, type InstalledStandby } from '../fixtures/installed-standby.ts';
import { exitOf, waitFor } from '../fixtures/wait-for.ts';

test('standby and GPU installed by their one lines: the GPU enrolls, its installed agent syncs with its own key, and stops when revoked', { timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'standby-enroll-e2e-'));
  const gpuRoot = join(dir, 'gpu-root');
  const gpuWs = join(dir, 'gpu-workspace');
  mkdirSync(gpuWs);
  writeFileSync(join(gpuWs, 'notes.txt'), 'written on the GPU\n');
  let world: InstalledStandby | undefined;
  let agent: ChildProcess | undefined;
  try {
    // the standby's line run with a prefix; its sshd reads the authorized_keys the standby's installer writes
    world = await startInstalledStandby(dir);
    const { sshd, proxy, standbyRoot, standbyWs } = world;

    const invited = await proxy.api('hosts', { method: 'POST', body: JSON.stringify({ id: 'gpu-1' }) });
    assert.equal(invited.status, 201);
    const { token, command } = (await invited.json()) as { token: string; command: string };
    // the printed line, as run on the GPU (with a prefix and its own workspace, no systemctl, sh for sudo bash)
    const gpuLine = command.replace('sudo bash -s -- agent', `sh -s -- agent --root ${gpuRoot} --no-start --workspace ${gpuWs}`);
    const g = await run('bash', ['-o', 'pipefail', '-c', gpuLine], {}, 180_000);
    assert.equal(g.code, 0, `${g.stdout}\n${g.stderr}`);
    assert.match(g.stdout, /enrolled at .* as gpu-1: this host's own agent token issued/);
    assert.ok(!g.stdout.includes(token.slice(4)), 'the invitation is not echoed');
    assert.match(g.stdout, /this host's key is on the standby already: the proxy authorized it at enrollment \(nothing to copy\)/);
    assert.doesNotMatch(g.stdout, /--agent-key/, 'no hint to copy the key by hand');

    const configFile = join(gpuRoot, 'etc/standby/agent.json');
    const config = validateSettings(agentConfigSchema, JSON.parse(readFileSync(configFile, 'utf8')), configFile);
    assert.equal(config.hostId, 'gpu-1');
    assert.match(config.proxy!.token ?? '', /^sba_/, "the host's own token, not the invitation");
    assert.deepEqual({ host: config.standby!.host, port: config.standby!.port, user: config.standby!.user, path: config.standby!.path }, { host: sshd.host, port: sshd.port, user: sshd.user, path: standbyWs });
    assert.ok(readFileSync(join(gpuRoot, 'etc/standby/known_hosts'), 'utf8').includes(readFileSync(sshd.knownHostsFile, 'utf8').trim()), "the standby's host key came from the proxy");
    const writerLine = readFileSync(sshd.authorizedKeysFile, 'utf8').split('\n').find((l) => l.endsWith('standby-host:gpu-1'));
    assert.ok(writerLine?.startsWith(`command="${join(standbyRoot, 'opt/standby/bin/standby')} receive --root ${standbyWs} --state-dir ${join(standbyRoot, 'var/lib/standby/receive')} --host gpu-1",restrict ssh-ed25519 `), writerLine);

    // the installed agent, as its unit would start it
    let logs = '';
    agent = spawn(join(gpuRoot, 'opt/standby/bin/standby'), ['agent', '--config', configFile, '--status.port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    agent.stdout!.on('data', (d: Buffer) => (logs = (logs + d.toString()).slice(-20_000)));
    agent.stderr!.on('data', (d: Buffer) => (logs = (logs + d.toString()).slice(-20_000)));
    await waitFor('the GPU\'s file on the standby', () => existsSync(join(standbyWs, 'notes.txt')), { timeoutMs: 60_000, failIf: () => exitOf('the installed agent', agent!, () => logs) });
    assert.equal(readFileSync(join(standbyWs, 'notes.txt'), 'utf8'), 'written on the GPU\n');
    const hosts = async () => ((await (await proxy.api('hosts')).json()) as { hosts: { id: string; state: string; connected: boolean }[] }).hosts;
    assert.deepEqual((await hosts()).map((h) => [h.id, h.state, h.connected]), [['gpu-1', 'active', true]]);

    // revoked by the admin: the agent hears it, stops pushing and does not reconnect
    const r = await proxy.api('hosts/gpu-1/revoke', { method: 'POST' });
    assert.equal(r.status, 200, await r.clone().text());
    await waitFor('the agent reports the revocation', () => logs.includes("revoked this host's credentials"), { timeoutMs: 10_000 });
    writeFileSync(join(gpuWs, 'after.txt'), 'must not reach the standby\n');
    const refusedBefore = proxy.hub.refused;
    const until = performance.now() + 3_000;
    await waitFor('3 s to pass', () => performance.now() >= until, { timeoutMs: 5_000 });
    assert.ok(!existsSync(join(standbyWs, 'after.txt')), 'nothing is pushed after the revocation');
    assert.equal(proxy.hub.refused, refusedBefore, 'the agent does not knock again');
    assert.equal(agent.exitCode, null, 'the agent stays up (systemd would restart it only to be refused again)');
  } finally {
    if (agent?.pid !== undefined && agent.exitCode === null) killTree(agent.pid, 'SIGKILL');
    await world?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
