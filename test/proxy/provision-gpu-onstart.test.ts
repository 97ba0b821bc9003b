// The new GPU's start script (proxy/provision/gpu-onstart.ts), run by the real
// sh against a stand-in proxy on loopback (http, and https with a private CA
// made here): it downloads install.sh from the proxy and runs it with the
// invitation in its environment and the flags an invited agent takes, then
// starts the agent and restarts it when it fails; a second run only starts it.
// Hostile values reach the installer as plain text, and what would break a
// line is refused. Nothing leaves loopback: the stand-in installer lays down
// a stand-in agent under --root.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { StandbyError } from '../../core/errors.ts';
import { killTree } from '../../core/process-tree.ts';
import { gpuOnstart, shQuote, type GpuOnstartInput } from '../../proxy/provision/gpu-onstart.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const BOUND = { timeout: 60_000 };
const INVITATION = 'sbi_Inv1tation-secret_0123456789abcdef';

/** The stand-in installer: records its arguments (NUL-separated) and environment, lays down agent.json and a stand-in agent. */
function fakeInstaller(agentScript: string): string {
  return [
    '#!/bin/sh',
    'set -eu',
    'root=/; prev=""',
    'for a in "$@"; do [ "$prev" = --root ] && root="$a"; prev="$a"; done',
    'printf "%s\\0" "$@" > "$root/install-args"',
    'printf "%s" "${STANDBY_TOKEN:-}" > "$root/install-token"',
    'printf "%s" "${CURL_CA_BUNDLE:-}|${NODE_EXTRA_CA_CERTS:-}" > "$root/install-ca"',
    'mkdir -p "$root/etc/standby" "$root/opt/standby/bin"',
    'echo "{}" > "$root/etc/standby/agent.json"',
    `cp ${shQuote(agentScript)} "$root/opt/standby/bin/standby"`,
    'chmod 755 "$root/opt/standby/bin/standby"',
    'echo "fake install: done"',
    '',
  ].join('\n');
}

/** The stand-in program: `install ...` (the receiver's install) records its arguments; as the agent, appends its arguments and CA variable per run and exits 1 while `fail-runs` says to. */
const FAKE_AGENT = [
  '#!/bin/sh',
  'root=$(cd "$(dirname "$0")/../../.." && pwd)',
  'if [ "$1" = install ]; then printf "%s\\0" "$@" > "$root/receiver-install-args"; exit 0; fi',
  'printf "%s\\0" "$@" >> "$root/agent-args"',
  'printf "%s\\n" "${NODE_EXTRA_CA_CERTS:-}" >> "$root/agent-ca"',
  'echo run >> "$root/agent-runs"',
  'left=$(cat "$root/fail-runs" 2>/dev/null || echo 0)',
  'if [ "$left" -gt 0 ]; then echo $((left - 1)) > "$root/fail-runs"; exit 1; fi',
  'exit 0',
  '',
].join('\n');

interface Proxy {
  url: string;
  downloads: () => number;
}

async function standInProxy(t: TestContext, installer: string, tls?: { key: string; cert: string }): Promise<Proxy> {
  let downloads = 0;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/_standby/install.sh') {
      downloads++;
      res.writeHead(200, { 'content-type': 'text/x-shellscript' });
      return void res.end(installer);
    }
    res.writeHead(404).end();
  };
  const server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return { url: `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`, downloads: () => downloads };
}

/** The stand-in agent written into `dir`, and a stand-in proxy serving the stand-in installer that lays it down. */
function proxyServingFakes(t: TestContext, dir: string, tls?: { key: string; cert: string }): Promise<Proxy> {
  const agentFile = join(dir, 'fake-agent.sh');
  writeFileSync(agentFile, FAKE_AGENT, { mode: 0o700 });
  return standInProxy(t, fakeInstaller(agentFile), tls);
}

/** A folder in `dir` for the script's --root. */
function madeRoot(dir: string, name: string): string {
  const root = join(dir, name);
  mkdirSync(root);
  return root;
}

function scratch(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'standby-onstart-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the script with sh; resolves with its exit code (bounded). */
function runScript(file: string, env: NodeJS.ProcessEnv): Promise<number | null> {
  return new Promise((resolve, reject) => {
    // in the script's folder: a hostile value's `touch NAME` would land there
    const child = spawn('sh', [file], { env, stdio: 'ignore', cwd: dirname(file) });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

const nulList = (file: string) => readFileSync(file, 'utf8').split('\0').slice(0, -1);

function syntaxOk(script: string, dir: string): void {
  const file = join(dir, `check-${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(file, script, { mode: 0o600 });
  execFileSync('sh', ['-n', file]); // throws on a syntax error
}

test('the script downloads install.sh from the proxy, runs it for an invited agent, and starts the agent (no systemd: here, in the background)', BOUND, async (t) => {
  const dir = scratch(t);
  const proxy = await proxyServingFakes(t, dir);
  const root = madeRoot(dir, 'root');
  const input: GpuOnstartInput = { proxyUrl: `${proxy.url}/`, invitation: INVITATION, hostId: 'gpu-e4', workspace: join(dir, 'workspace'), root };
  const script = gpuOnstart(input);
  syntaxOk(script, dir);
  assert.equal(script.split(INVITATION).length, 2, 'the invitation is in the script once (the installer\'s environment)');
  assert.match(script, new RegExp(`STANDBY_TOKEN='${INVITATION}' sh "\\$tmp/install.sh" "\\$@"`));

  const file = join(dir, 'onstart.sh');
  writeFileSync(file, script, { mode: 0o700 });
  const env = { PATH: process.env.PATH, TMPDIR: dir };
  assert.equal(await runScript(file, env), 0, readLog(root));

  assert.deepEqual(nulList(join(root, 'install-args')), ['agent', '--host-id', 'gpu-e4', '--workspace', join(dir, 'workspace'), '--root', root, '--no-start']);
  assert.equal(readFileSync(join(root, 'install-token'), 'utf8'), INVITATION, 'the invitation reaches the installer as STANDBY_TOKEN');
  assert.deepEqual(nulList(join(root, 'receiver-install-args')), ['install', 'standby', '--proxy', proxy.url, '--workspace', join(dir, 'workspace'), '--no-start', '--root', root], "the receiver (the proxy's fencing key, forced to standby receive) is installed by the program the agent's install laid down");
  assert.equal(readFileSync(join(root, 'install-ca'), 'utf8'), '|', 'no CA asked for, none set');
  assert.ok(statSync(join(dir, 'workspace')).isDirectory(), 'the workspace is made');
  await waitFor('the agent started', () => existsSync(join(root, 'agent-args')), { timeoutMs: 10_000 });
  assert.deepEqual(nulList(join(root, 'agent-args')), ['agent', '--config', join(root, 'etc/standby/agent.json')]);
  assert.equal(proxy.downloads(), 1);
  assert.ok(!readLog(root).includes(INVITATION), 'the log does not hold the invitation');
  assert.deepEqual(readdirTmp(dir), [], 'the downloaded installer is removed');

  // a restarted container runs the script again: no second enrollment (the invitation is used up), the agent starts
  assert.equal(await runScript(file, env), 0, readLog(root));
  await waitFor('the agent started again', () => readFileSync(join(root, 'agent-runs'), 'utf8').split('\n').length === 3, { timeoutMs: 10_000 });
  assert.equal(proxy.downloads(), 1, 'nothing downloaded the second time');
  assert.match(readLog(root), /the agent is installed already/);
});

test('an agent that fails is started again; one that exits 0 is left alone', BOUND, async (t) => {
  const dir = scratch(t);
  const proxy = await proxyServingFakes(t, dir);
  const root = madeRoot(dir, 'root');
  writeFileSync(join(root, 'fail-runs'), '1\n');
  const file = join(dir, 'onstart.sh');
  writeFileSync(file, gpuOnstart({ proxyUrl: proxy.url, invitation: INVITATION, hostId: 'gpu-1', workspace: join(dir, 'ws'), root }), { mode: 0o700 });
  assert.equal(await runScript(file, { PATH: process.env.PATH, TMPDIR: dir }), 0, readLog(root));
  // the restart waits 5 s after a failure
  await waitFor('the second run', () => existsSync(join(root, 'agent-runs')) && readFileSync(join(root, 'agent-runs'), 'utf8').split('\n').length === 3, { timeoutMs: 20_000 });
  await waitFor('the restart logged', () => /the agent exited 1: starting it again/.test(readFileSync(join(root, 'var/log/standby-agent.log'), 'utf8')), { timeoutMs: 5_000 });
});

test('https with a private CA: curl and the agent trust the CA the script lays down', BOUND, async (t) => {
  const dir = scratch(t);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=standby test proxy', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  const proxy = await proxyServingFakes(t, dir, { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert });
  const env = { PATH: process.env.PATH, TMPDIR: dir };

  // without the CA, the download is refused (the certificate is not trusted): the script fails and says so
  const rootNoCa = madeRoot(dir, 'root-no-ca');
  const noCa = join(dir, 'no-ca.sh');
  writeFileSync(noCa, gpuOnstart({ proxyUrl: proxy.url, invitation: INVITATION, hostId: 'gpu-1', workspace: join(dir, 'ws'), root: rootNoCa }).replace('--retry 10', '--retry 0'), { mode: 0o700 });
  assert.equal(await runScript(noCa, env), 1);
  assert.match(readLog(rootNoCa), /could not download https:\/\/127\.0\.0\.1:\d+\/_standby\/install\.sh/);
  assert.equal(existsSync(join(rootNoCa, 'install-args')), false);

  const root = madeRoot(dir, 'root');
  const script = gpuOnstart({ proxyUrl: proxy.url, invitation: INVITATION, hostId: 'gpu-1', workspace: join(dir, 'ws'), root, caPem: cert.replace(/\n/g, '\r\n') });
  syntaxOk(script, dir);
  const file = join(dir, 'onstart.sh');
  writeFileSync(file, script, { mode: 0o700 });
  assert.equal(await runScript(file, env), 0, readLog(root));
  const caFile = join(root, 'etc/standby/proxy-ca.pem');
  assert.equal(readFileSync(caFile, 'utf8'), cert.replace(/\n+$/, '\n'));
  assert.equal(readFileSync(join(root, 'install-ca'), 'utf8'), `${caFile}|${caFile}`, 'curl and Node trust it during the install');
  await waitFor('the agent started', () => existsSync(join(root, 'agent-ca')), { timeoutMs: 10_000 });
  assert.equal(readFileSync(join(root, 'agent-ca'), 'utf8'), `${caFile}\n`, 'the agent trusts it too');
});

test('hostile values reach the installer as plain text; nothing in them runs', BOUND, async (t) => {
  const dir = scratch(t);
  const proxy = await proxyServingFakes(t, dir);
  // no "/" inside a value's commands: a path's folders would be made of them
  const root = madeRoot(dir, `root 'r' "$(touch PWNED-root)"`);
  const workspace = join(dir, `ws 'q' "d" $(touch PWNED) \`touch PWNED2\` ; touch PWNED3 \\ $HOME *`);
  const script = gpuOnstart({ proxyUrl: proxy.url, invitation: INVITATION, hostId: 'gpu-1', workspace, root });
  syntaxOk(script, dir);
  const file = join(dir, 'onstart.sh');
  writeFileSync(file, script, { mode: 0o700 });
  assert.equal(await runScript(file, { PATH: process.env.PATH, TMPDIR: dir, HOME: dir }), 0, readLog(root));
  assert.deepEqual(nulList(join(root, 'install-args')).slice(3, 5), ['--workspace', workspace]);
  assert.ok(statSync(workspace).isDirectory());
  await waitFor('the agent started', () => existsSync(join(root, 'agent-args')), { timeoutMs: 10_000 });
  for (const p of ['PWNED', 'PWNED2', 'PWNED3', 'PWNED-root']) assert.equal(existsSync(join(dir, p)), false, `${p}: nothing in a value ran`);
});

test('values that could break the script are refused, naming the field', BOUND, (t) => {
  const ok: GpuOnstartInput = { proxyUrl: 'https://proxy.example.com', invitation: INVITATION, hostId: 'gpu-1', workspace: '/workspace' };
  const cases: { name: string; patch: Partial<GpuOnstartInput>; field: string; pattern: RegExp }[] = [
    { name: 'a line break in the workspace', patch: { workspace: '/ws\ntouch /tmp/x' }, field: 'workspace', pattern: /line break/ },
    { name: 'a carriage return in the workspace', patch: { workspace: '/ws\r' }, field: 'workspace', pattern: /line break/ },
    { name: 'a NUL in the workspace', patch: { workspace: '/ws\0x' }, field: 'workspace', pattern: /control character/ },
    { name: 'a relative workspace', patch: { workspace: 'ws' }, field: 'workspace', pattern: /not an absolute path/ },
    { name: 'an empty workspace', patch: { workspace: '' }, field: 'workspace', pattern: /empty/ },
    { name: 'a line break in the URL', patch: { proxyUrl: 'https://p.example\n/x' }, field: 'proxyUrl', pattern: /line break/ },
    { name: 'a URL that is not http(s)', patch: { proxyUrl: 'file:///etc/passwd' }, field: 'proxyUrl', pattern: /not http/ },
    { name: 'a URL with credentials', patch: { proxyUrl: 'https://u:p@p.example' }, field: 'proxyUrl', pattern: /user or password/ },
    { name: 'a URL with a query', patch: { proxyUrl: "https://p.example/?a=';reboot;'" }, field: 'proxyUrl', pattern: /query/ },
    { name: 'not a URL', patch: { proxyUrl: 'proxy' }, field: 'proxyUrl', pattern: /not a URL/ },
    { name: 'an invitation with a quote', patch: { invitation: "sbi_abc'def0123" }, field: 'invitation', pattern: /is not one/ },
    { name: 'another kind of token', patch: { invitation: 'sba_0123456789abcdef' }, field: 'invitation', pattern: /is not one/ },
    { name: 'a host id with a space', patch: { hostId: 'gpu 1' }, field: 'hostId', pattern: /1-63 letters/ },
    { name: 'a host id with $()', patch: { hostId: '$(reboot)' }, field: 'hostId', pattern: /1-63 letters/ },
    { name: 'a CA that is not PEM', patch: { caPem: 'hello' }, field: 'caPem', pattern: /PEM certificates only/ },
    { name: 'a CA with a line after it', patch: { caPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\nSTANDBY_PROXY_CA\nreboot\n' }, field: 'caPem', pattern: /PEM certificates only/ },
    { name: 'a CA block that is not a certificate', patch: { caPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }, field: 'caPem', pattern: /not a certificate/ },
  ];
  for (const c of cases) {
    assert.throws(() => gpuOnstart({ ...ok, ...c.patch }), (err: unknown) => {
      assert.ok(err instanceof StandbyError, c.name);
      assert.equal(err.code, 'STANDBY_ERR_CONFIG_INVALID', c.name);
      assert.equal(err.context['field'], c.field, c.name);
      assert.match(err.message, c.pattern, c.name);
      return true;
    }, c.name);
  }
  // the production default: no --root, the installer may start the unit under systemd
  const dir = scratch(t);
  const real = gpuOnstart(ok);
  syntaxOk(real, dir);
  assert.match(real, /^root='\/'$/m);
  assert.match(real, /^config='\/etc\/standby\/agent\.json'$/m);
  assert.match(real, /^program='\/opt\/standby\/bin\/standby'$/m);
  assert.equal(shQuote(`a'b`), `'a'\\''b'`);
});

function readLog(root: string): string {
  try {
    return readFileSync(join(root, 'var/log/standby-onstart.log'), 'utf8');
  } catch {
    return '(no log)';
  }
}

function readdirTmp(dir: string): string[] {
  return execFileSync('find', [dir, '-maxdepth', '1', '-name', 'standby-onstart.*'], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

test("without systemd, the code-server the installer laid down is run through its start script, and again when it ends", BOUND, async (t) => {
  const dir = scratch(t);
  const agentFile = join(dir, 'fake-agent.sh');
  writeFileSync(agentFile, FAKE_AGENT, { mode: 0o700 });
  // the stand-in installer also lays down a start script, as installer/code-server-unit.ts does; the stand-in records each run and ends
  const installer = fakeInstaller(agentFile).replace('echo "fake install: done"', [
    'mkdir -p "$root/opt/standby/code-server"',
    `printf '%s\\n' '#!/bin/sh' 'root=$(cd "$(dirname "$0")/../../.." && pwd)' 'echo run >> "$root/code-server-runs"' 'exit 3' > "$root/opt/standby/code-server/start"`,
    'chmod 755 "$root/opt/standby/code-server/start"',
    'echo "fake install: done"',
  ].join('\n'));
  const proxy = await standInProxy(t, installer);
  const root = madeRoot(dir, 'root');
  const file = join(dir, 'onstart.sh');
  writeFileSync(file, gpuOnstart({ proxyUrl: proxy.url, invitation: INVITATION, hostId: 'gpu-e4', workspace: join(dir, 'workspace'), root }), { mode: 0o700 });
  assert.equal(await runScript(file, { PATH: process.env.PATH, TMPDIR: dir }), 0, readLog(root));
  const loop = Number(/code-server started \(pid (\d+),/.exec(readLog(root))?.[1]);
  // the loop runs in the background, as in a container: end it, by the pid the script logged
  t.after(() => {
    if (loop > 0) killTree(loop, 'SIGKILL');
  });
  assert.ok(loop > 0, readLog(root));
  await waitFor('code-server started, ended, started again', () => existsSync(join(root, 'code-server-runs')) && readFileSync(join(root, 'code-server-runs'), 'utf8').split('\n').length >= 3, { timeoutMs: 15_000 });
  assert.match(readFileSync(join(root, 'var/log/standby-code-server.log'), 'utf8'), /code-server exited 3: starting it again in 5 s/);
});
