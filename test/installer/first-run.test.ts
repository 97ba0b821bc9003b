// An operator's first run on one machine, as docs/operations.md walks it:
// proxy, standby and GPU installed under one --root in that order (the
// standby and the GPU by the lines `standby hosts add` prints), the daemons
// started by hand with the commands the installer prints (no systemd here),
// the agent syncs, `standby failover`, and the standby serves with the data.
// The roles agree on every path under the prefix: the proxy fences the
// receiver state the standby role set up, with the key the standby trusts.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort } from '../../core/free-port.ts';
import { killTree } from '../../core/process-tree.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { run, standby } from '../fixtures/cli-run.ts';
import { exitOf, waitFor } from '../fixtures/wait-for.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../fixtures/workspace-server.ts';

/** The line after `prefix` in `text` (the printed hints), e.g. the command after "run it by hand: ". */
function after(text: string, prefix: string): string {
  const line = text.split('\n').find((l) => l.includes(prefix));
  assert.ok(line, `no "${prefix}" in:\n${text}`);
  return line.slice(line.indexOf(prefix) + prefix.length).trim();
}

/** A daemon started by hand from its printed command, its output kept for failures. */
function daemon(commandLine: string, extra: string[] = []): { child: ChildProcess; logs: () => string } {
  const [cmd, ...args] = commandLine.split(' ');
  let logs = '';
  const child = spawn(cmd!, [...args, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (logs = (logs + d.toString()).slice(-30_000)));
  child.stderr!.on('data', (d: Buffer) => (logs = (logs + d.toString()).slice(-30_000)));
  return { child, logs: () => logs };
}

test('first run on one machine: proxy, standby, GPU under one --root, started by hand, synced, failed over; the standby serves the data', { timeout: 600_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'standby-first-run-'));
  const root = join(dir, 'root');
  const standbyWs = join(root, 'standby-workspace');
  const gpuWs = join(root, 'workspace'); // the agent's default under --root
  let gpuServer: WorkspaceServer | undefined;
  let standbyServer: WorkspaceServer | undefined;
  let sshd: Sshd | undefined;
  const daemons: ChildProcess[] = [];
  try {
    // what the machines bring: the GPU's and the standby's code-server, the standby's sshd (reading the authorized_keys under the prefix)
    gpuServer = await startWorkspaceServer({ name: 'gpu' });
    standbyServer = await startWorkspaceServer({ name: 'standby' });
    sshd = await startSshd({ authorizedKeysFile: join(root, 'root/.ssh/authorized_keys') });
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;

    // 1. the proxy (from the checkout)
    const p = await standby(['install', 'proxy', '--root', root, '--listen', `127.0.0.1:${port}`, '--gpu-url', gpuServer.url, '--standby-url', standbyServer.url, '--standby-host', sshd.host, '--standby-port', String(sshd.port), '--standby-user', sshd.user]);
    assert.equal(p.code, 0, `${p.stdout}\n${p.stderr}`);
    const config = join(root, 'etc/standby/proxy.json');
    const cmd = join(root, 'opt/standby/bin/standby');
    assert.equal(after(p.stdout, 'run it by hand: '), `${cmd} proxy --config ${config}`);
    assert.ok(p.stdout.includes(`\`${cmd} hosts add cpu-1 --config ${config}\` prints the standby's install line, then \`${cmd} hosts add gpu-1 --config ${config}\` the GPU's (one use each); both fetch from ${url}\n`), p.stdout);
    assert.doesNotMatch(p.stdout, /PROXY/);
    assert.equal(statSync(join(root, 'var/lib/standby')).mode & 0o777, 0o700);
    const proxy = daemon(after(p.stdout, 'run it by hand: '));
    daemons.push(proxy.child);
    await waitFor('the proxy answers', async () => (await fetch(`${url}/_standby/healthz`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined))?.ok === true, { timeoutMs: 60_000, failIf: () => exitOf('the proxy', proxy.child, proxy.logs) });

    // 2. the standby: the line `standby hosts add cpu-1` prints (a download-only token)
    const s = await run(cmd, ['hosts', 'add', 'cpu-1', '--config', config]);
    assert.equal(s.code, 0, `${s.stdout}\n${s.stderr}`);
    const standbyLine = after(s.stdout, '  curl');
    assert.match(standbyLine, new RegExp(`^-fsSL ${url.replace(/\./g, '\\.')}/_standby/install\\.sh \\| sudo bash -s -- standby --token sbd_\\S+$`));
    const si = await run('bash', ['-o', 'pipefail', '-c', `curl ${standbyLine.replace('sudo ', '')} --root ${root} --workspace ${standbyWs}`], {}, 240_000);
    assert.equal(si.code, 0, `${si.stdout}\n${si.stderr}`);

    // 3. the GPU: the line `standby hosts add gpu-1` prints (an invitation); it enrolls
    const g = await run(cmd, ['hosts', 'add', 'gpu-1', '--config', config]);
    assert.equal(g.code, 0, `${g.stdout}\n${g.stderr}`);
    const gpuLine = after(g.stdout, '  curl');
    const gi = await run('bash', ['-o', 'pipefail', '-c', `curl ${gpuLine.replace('sudo ', '')} --root ${root}`], {}, 240_000);
    assert.equal(gi.code, 0, `${gi.stdout}\n${gi.stderr}`);
    assert.match(gi.stdout, /enrolled at .* as gpu-1/);
    assert.match(gi.stdout, /this host's key is on the standby already: the proxy authorized it at enrollment/);
    const agentConfig = JSON.parse(readFileSync(join(root, 'etc/standby/agent.json'), 'utf8')) as { workspace: string; standby: { path: string; identityFile: string } };
    assert.equal(agentConfig.workspace, gpuWs, "the agent's workspace defaults under the prefix");
    assert.equal(agentConfig.standby.path, standbyWs, 'it syncs to where the standby role put the copy');
    assert.notEqual(agentConfig.standby.identityFile, JSON.parse(readFileSync(config, 'utf8')).standby.ssh.identityFile, 'the agent and the proxy have keys of their own');
    // the GPU's work (a GPU brings its workspace; the installer never makes one there)
    mkdirSync(gpuWs);
    writeFileSync(join(gpuWs, 'notes.txt'), 'written on the GPU\n');
    const agent = daemon(after(gi.stdout, 'run it by hand: '), ['--status.port', '0']);
    daemons.push(agent.child);
    await waitFor("the GPU's file on the standby", () => existsSync(join(standbyWs, 'notes.txt')), { timeoutMs: 90_000, failIf: () => exitOf('the agent', agent.child, agent.logs) ?? exitOf('the proxy', proxy.child, proxy.logs) });
    const status = async () => (await run(cmd, ['status', '--config', config, '--json'])).stdout;
    await waitFor('the agent reports to the proxy', async () => /"hostId": "gpu-1"[\s\S]*"connected": true/.test(await status()), { timeoutMs: 30_000 });
    assert.equal(await (await fetch(`${url}/whoami`, { signal: AbortSignal.timeout(5_000) })).text(), 'gpu', 'the GPU serves');

    // 4. a failover by hand: the proxy fences the standby's receiver state the standby role set up, with the key it trusts
    mkdirSync(join(gpuWs, 'src'));
    writeFileSync(join(gpuWs, 'src/late.py'), 'print("just before the failover")\n');
    const f = await run(cmd, ['failover', '--config', config], {}, 120_000);
    assert.equal(f.code, 0, `${f.stdout}\n${f.stderr}\n${proxy.logs()}`);
    assert.match(f.stdout, /the standby serves/);
    assert.equal(await (await fetch(`${url}/whoami`, { signal: AbortSignal.timeout(5_000) })).text(), 'standby', 'the standby serves');
    assert.equal(readFileSync(join(standbyWs, 'notes.txt'), 'utf8'), 'written on the GPU\n');
    assert.equal(readFileSync(join(standbyWs, 'src/late.py'), 'utf8'), 'print("just before the failover")\n', 'the final pass of a planned failover');
    assert.match(readFileSync(join(root, 'var/lib/standby/receive/epoch'), 'utf8'), /2/, 'the fence landed in the receiver state under the prefix');
  } finally {
    for (const d of daemons) if (d.pid !== undefined && d.exitCode === null) killTree(d.pid, 'SIGKILL');
    await sshd?.close();
    await gpuServer?.close();
    await standbyServer?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
