// `standby agent` as a real child process: status endpoint, the CLI commands
// that talk to it, verify's exit codes, and a clean exit on SIGTERM.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { freePort } from '../../core/free-port.ts';
import { startSshd } from '../../proxy/provision/loopback-sshd.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const run = promisify(execFile);
const NODE = process.execPath;
const CLI = join(import.meta.dirname, '../../cli.ts');

async function cli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(NODE, [CLI, ...args], { timeout: 60_000, env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test('standby agent: serves its status, answers status/verify/sync, exits 0 on SIGTERM', async (t) => {
  const top = mkdtempSync(join(tmpdir(), 'standby-daemon-'));
  const sshd = await startSshd();
  const gpu = join(top, 'gpu');
  const cpu = join(top, 'cpu');
  mkdirSync(gpu);
  writeFileSync(join(gpu, 'hello.txt'), 'hello');
  const port = await freePort();
  const configFile = join(top, 'agent.json');
  writeFileSync(configFile, JSON.stringify({
    hostId: 'gpu-1',
    workspace: gpu,
    standby: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, path: cpu, sshOptions: sshd.sshOptions },
    sync: { delayMs: 250, maxDelayMs: 1000, exclude: [] },
    status: { port },
  }), { mode: 0o600 });
  const child = spawn(NODE, [CLI, 'agent', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    await sshd.close();
    rmSync(top, { recursive: true, force: true });
  });

  const base = `http://127.0.0.1:${port}`;
  await waitFor('agent ready', async () => {
    const res = await fetch(`${base}/status`);
    return ((await res.json()) as { ready: boolean }).ready;
  }, { timeoutMs: 20_000 });
  assert.ok(existsSync(join(cpu, 'hello.txt')));

  const status = await cli(['status', '--agent', '--config', configFile]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /host\s+gpu-1/);
  assert.match(status.stdout, /watermark\s+\d+ of \d+/);
  const json = await cli(['status', '--agent', '--json', '--agent-url', base]);
  const parsed = JSON.parse(json.stdout) as Record<string, unknown>;
  for (const field of ['watermark', 'lastSeq', 'pending', 'oldestPendingAgeMs', 'outstandingPaths', 'oldestOutstandingAgeMs', 'lastPassAgeMs', 'lastError', 'bytesSent', 'filesSent', 'passDurationMs']) {
    assert.ok(field in parsed, `status has ${field}`);
  }
  // the first names stay for scripts: the same values as the new ones
  assert.equal(parsed['pending'], parsed['outstandingPaths']);
  assert.equal(parsed['oldestPendingAgeMs'], parsed['oldestOutstandingAgeMs']);

  const clean = await cli(['verify', '--config', configFile]);
  assert.equal(clean.code, 0, clean.stdout + clean.stderr);
  assert.match(clean.stdout, /no differences/);
  // a difference the agent has not synced yet (written on the standby behind its back)
  writeFileSync(join(cpu, 'extra-on-standby.txt'), 'x');
  const dirty = await cli(['verify', '--config', configFile]);
  assert.equal(dirty.code, 1);
  assert.match(dirty.stdout, /extra on standby\s+.*extra-on-standby\.txt/);

  const resync = await cli(['sync', '--full', '--config', configFile]);
  assert.equal(resync.code, 0, resync.stderr);
  await waitFor('drift repaired', () => !existsSync(join(cpu, 'extra-on-standby.txt')), { timeoutMs: 10_000 });
  const confirm = await cli(['sync', '--confirm-deletes', '--config', configFile]);
  assert.equal(confirm.code, 0, confirm.stderr);
  assert.match(confirm.stdout, /confirmed/);

  child.kill('SIGTERM');
  const { code, signal } = await exited;
  assert.equal(signal, null);
  assert.equal(code, 0, output.slice(-2000));
  assert.match(output, /stopped/);
});

test('standby status --agent with no agent running says so', async () => {
  const port = await freePort();
  const r = await cli(['status', '--agent', '--agent-url', `http://127.0.0.1:${port}`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /no agent answers at http:\/\/127\.0\.0\.1:\d+/);
});

test('standby agent with a missing workspace stops with a message naming it', async () => {
  const top = mkdtempSync(join(tmpdir(), 'standby-daemon-'));
  try {
    const configFile = join(top, 'agent.json');
    writeFileSync(configFile, JSON.stringify({ hostId: 'g', workspace: join(top, 'nope'), standby: { host: '127.0.0.1', path: '/x' }, status: { port: 0 } }), { mode: 0o600 });
    const r = await cli(['agent', '--config', configFile]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /sync root .*nope is not a folder/);
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});

test('standby agent on a host without rsync (or ssh) stops at once, naming the package to install', async () => {
  const top = mkdtempSync(join(tmpdir(), 'standby-daemon-'));
  try {
    // a PATH with a shell and ssh but no rsync; then one with rsync but no ssh
    const bin = join(top, 'bin');
    mkdirSync(bin);
    symlinkSync('/bin/sh', join(bin, 'sh'));
    const configFile = join(top, 'agent.json');
    mkdirSync(join(top, 'ws'));
    writeFileSync(configFile, JSON.stringify({ hostId: 'g', workspace: join(top, 'ws'), standby: { host: '127.0.0.1', path: '/x' }, status: { port: 0 } }), { mode: 0o600 });
    symlinkSync('/usr/bin/ssh', join(bin, 'ssh'));
    const noRsync = await cli(['agent', '--config', configFile], { ...process.env, PATH: bin });
    assert.equal(noRsync.code, 69, noRsync.stderr);
    assert.match(noRsync.stderr, /rsync is not installed on this host: install it \(Debian\/Ubuntu: apt-get install rsync\)/);
    rmSync(join(bin, 'ssh'));
    symlinkSync('/usr/bin/rsync', join(bin, 'rsync'));
    const noSsh = await cli(['agent', '--config', configFile], { ...process.env, PATH: bin });
    assert.equal(noSsh.code, 69, noSsh.stderr);
    assert.match(noSsh.stderr, /ssh is not installed on this host: install it \(Debian\/Ubuntu: apt-get install openssh-client\)/);
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});
