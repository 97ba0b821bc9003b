// The program bundle the proxy serves: only what the installed roles run (no
// tests, fixtures, docs or keys of ours or of the packages), built and hashed
// once per process; served only with a credential, and install.sh and the
// invitation's line name the URL from the config, never the request's Host.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PROGRAM_SOURCE, programFiles } from '../../core/program-files.ts';
import { programBundle } from '../../proxy/bundle.ts';
import { downloadToken } from '../../proxy/download-token.ts';
import { ADMIN_TOKEN, AGENT_TOKEN, startTestProxy, type TestProxy } from '../fixtures/proxy.ts';

/** A file that holds a private key (PEM or OpenSSH, or PuTTY's), not code that merely names the header. */
const PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n(?:[A-Za-z-]+: [^\n]*\r?\n)*\r?\n?[A-Za-z0-9+/=]{16,}|^PuTTY-User-Key-File-\d/m;

function filesUnder(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...filesUnder(dir, r));
    else if (e.isFile()) out.push(r);
  }
  return out;
}

/** Paths holding a private key, among files under 4 MB (the Node binary is not read). */
function privateKeysUnder(dir: string): string[] {
  return filesUnder(dir).filter((f) => statSync(join(dir, f)).size < 4 << 20 && PRIVATE_KEY.test(readFileSync(join(dir, f), 'latin1')));
}

/** GET with a Host header of our choosing (fetch does not let a test set it). */
/** `from`: the local address to send from (the whole of 127/8 is this host), so the failed-auth throttle counts these apart */
function get(url: string, headers: Record<string, string> = {}, method = 'GET', body?: string, from?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, timeout: 60_000, ...(from ? { localAddress: from } : {}) }, (res) => {
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('no answer in 60 s')));
    req.end(body);
  });
}

describe('the bundle holds what the roles run, and nothing else', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'standby-bundle-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('no test file, fixture, package test, doc or private key; the unpacked program runs', { timeout: 180_000 }, async () => {
    // the packages do ship test keys (ssh2's fixtures): the check below has something to find
    assert.ok(privateKeysUnder(join(PROGRAM_SOURCE, 'node_modules/ssh2/test')).length > 10, "ssh2's test keys are in node_modules");
    const bundle = await programBundle(join(dir, 'state'));
    const entries = execFileSync('tar', ['-tzf', bundle.file], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60_000 }).split('\n').filter(Boolean);
    const bad = entries.filter((e) => /(^|\/)(test|tests|__tests__|fixtures?|examples?|docs?|benchmarks?)\//.test(e) || /\.test\.[cm]?[jt]s$|\.spec\.[cm]?js$|\.d\.[cm]?ts$|\.(pem|key|ppk)$|(^|\/)(README|CHANGELOG|HISTORY)(\.md)?$/i.test(e.replace(/^README\.md$/, '')));
    assert.deepEqual(bad, [], 'tests, fixtures, docs and keys are not shipped');
    assert.ok(entries.includes('node_modules/ssh2/lib/client.js') && entries.includes('proxy/daemon.ts') && entries.includes('node_modules/.bin/node'), 'the run-time code is');
    assert.ok(entries.length < 1_200, `${entries.length} entries`);

    const unpacked = join(dir, 'unpacked');
    mkdirSync(unpacked);
    execFileSync('tar', ['-xzf', bundle.file, '-C', unpacked], { timeout: 60_000 });
    assert.deepEqual(privateKeysUnder(unpacked), [], 'no private key in the program');
    const help = execFileSync(join(unpacked, 'bin/standby'), ['--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.match(help, /standby install <role>/);
    assert.match(execFileSync(join(unpacked, 'bin/standby'), ['proxy', '--help'], { encoding: 'utf8', timeout: 30_000 }), /--config/);
    // the demo's parts are part of the program (it runs whole in test/cli/demo.test.ts): the local provider, its hosts' sshd and workspace server, the world, the writer and its ledger
    for (const f of ['proxy/provision/local.ts', 'proxy/provision/loopback-sshd.ts', 'proxy/provision/workspace-server.ts', 'cli/support/local-world.ts', 'cli/support/demo-writer.ts', 'cli/support/demo-ledger.ts']) assert.ok(entries.includes(f), f);
    assert.match(execFileSync(join(unpacked, 'bin/standby'), ['demo', '--help'], { encoding: 'utf8', timeout: 30_000 }), /--json/);
  });

  test('built and hashed once per process: a changed source file does not rebuild it, nor is the tree walked again', { timeout: 60_000 }, async () => {
    // a small program tree of our own, so the test can change it
    const source = join(dir, 'program');
    const write = (rel: string, text: string) => {
      mkdirSync(join(source, rel, '..'), { recursive: true });
      writeFileSync(join(source, rel), text);
    };
    write('package.json', JSON.stringify({ version: '9.9.9' }));
    write('package-lock.json', JSON.stringify({ packages: { '': {}, 'node_modules/dep': {}, 'node_modules/devdep': { dev: true } } }));
    write('cli.ts', 'export {};\n');
    write('agent/run.ts', 'export const a = 1;\n');
    write('agent/run.test.ts', 'test\n');
    write('test/fixtures/sshd.ts', 'fixture\n');
    write('node_modules/dep/index.js', 'module.exports = 1;\n');
    write('node_modules/dep/LICENSE', 'MIT\n');
    write('node_modules/dep/README.md', 'readme\n');
    write('node_modules/dep/index.d.ts', 'types\n');
    write('node_modules/dep/test/fixtures/id_rsa', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n');
    write('node_modules/dep/lib/index.test.js', 'test\n');
    write('node_modules/devdep/index.js', 'dev\n');
    const state = join(dir, 'state-once');
    const first = await programBundle(state, source);
    assert.deepEqual(execFileSync('tar', ['-tzf', first.file], { encoding: 'utf8' }).split('\n').filter(Boolean).sort(), ['agent/run.ts', 'cli.ts', 'node_modules/dep/LICENSE', 'node_modules/dep/index.js', 'package-lock.json', 'package.json']);
    write('agent/run.ts', 'export const a = 2; // changed\n');
    write('agent/new.ts', 'export {};\n');
    const again = await programBundle(state, source);
    assert.deepEqual([again.file, again.sha256], [first.file, first.sha256], 'the same bundle, not rebuilt');
    assert.deepEqual(readdirSync(join(state, 'bundle')), [first.file.split('/').pop(), `${first.file.split('/').pop()}.sha256`]);
  });
});

describe("the proxy's own packages (package.json optionalDependencies) stay out of the hosts' bundle", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'standby-proxy-only-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('what only the optional packages need is left out; what a run-time package needs, optional or not, stays', () => {
    const write = (rel: string, text: string) => {
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel), text);
    };
    // cloud (like @google-cloud/compute) needs shared and cloud-only; dep (like ssh2) needs shared and, optionally, native (like cpu-features)
    write('package.json', JSON.stringify({ version: '1.0.0', dependencies: { dep: '1' }, optionalDependencies: { cloud: '1' } }));
    write('package-lock.json', JSON.stringify({ packages: {
      '': { dependencies: { dep: '1', cloud: '1' }, optionalDependencies: { cloud: '1' } },
      'node_modules/dep': { dependencies: { shared: '1' }, optionalDependencies: { native: '1' } },
      'node_modules/native': { optional: true },
      'node_modules/shared': {},
      'node_modules/cloud': { optional: true, dependencies: { shared: '1', 'cloud-only': '1' } },
      'node_modules/cloud/node_modules/nested': { optional: true },
      'node_modules/cloud-only': { optional: true },
    } }));
    write('cli.ts', 'export {};\n');
    for (const p of ['dep', 'native', 'shared', 'cloud', 'cloud/node_modules/nested', 'cloud-only']) write(`node_modules/${p}/index.js`, 'module.exports = 1;\n');
    const packages = (files: string[]) => [...new Set(files.filter((f) => f.startsWith('node_modules/')).map((f) => f.replace(/\/index\.js$/, '').replace(/^node_modules\//, '')))].sort();
    assert.deepEqual(packages(programFiles(dir)), ['dep', 'native', 'shared'], "the hosts' bundle");
    assert.deepEqual(packages(programFiles(dir, { proxyOnly: true })), ['cloud', 'cloud-only', 'cloud/node_modules/nested', 'dep', 'native', 'shared'], "the proxy's install");
  });

  test('the real tree: @google-cloud/compute is in the proxy\'s file set only', () => {
    const hosts = programFiles();
    const proxy = programFiles(undefined, { proxyOnly: true });
    assert.ok(!hosts.some((f) => f.startsWith('node_modules/@google-cloud/compute/')), 'not in the bundle');
    assert.ok(proxy.includes('node_modules/@google-cloud/compute/build/src/v1/instances_client.js'), "in the proxy's install");
    assert.ok(hosts.includes('node_modules/ssh2/lib/client.js'));
  });
});

describe('who may download the program, and which URL the install lines name', () => {
  let proxy: TestProxy;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'standby-bundle-auth-'));
    proxy = await startTestProxy({ primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2', stateDir: join(dir, 'state'), settings: { publicUrl: 'https://proxy.example.com:8443/', auth: { maxFailures: 12 } } });
  });
  after(async () => {
    await proxy?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the bundle and its checksum: 401 without a valid credential, one answer whatever was wrong; 200 with an invitation, an agent token, a download token, the admin token', { timeout: 180_000 }, async () => {
    const sum = `${proxy.url}/_standby/bundle.sha256`;
    const tgz = `${proxy.url}/_standby/bundle.tar.gz`;
    const refused: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong-token-wrong-token' },
      { authorization: `Basic ${Buffer.from(`x:${ADMIN_TOKEN}`).toString('base64')}` },
      { authorization: `Bearer ${downloadToken(ADMIN_TOKEN, Date.now() - 1_000)}` }, // expired
      { authorization: `Bearer ${downloadToken('another-admin-token', Date.now() + 60_000)}` }, // another proxy's
      { authorization: 'Bearer sbi_not-an-invitation-we-issued' },
    ];
    const answers = new Set<string>();
    for (const headers of refused) {
      for (const url of [sum, tgz]) {
        const r = await get(url, headers, 'GET', undefined, '127.0.0.31');
        assert.equal(r.status, 401, `${url} ${JSON.stringify(headers)}`);
        answers.add(r.body);
      }
    }
    assert.equal(answers.size, 1, 'one uniform refusal');
    // the refusals were failed authentications: the address is locked out now (auth.maxFailures 12), other addresses are not
    const locked = await get(tgz, { authorization: `Bearer ${ADMIN_TOKEN}` }, 'GET', undefined, '127.0.0.31');
    assert.equal(locked.status, 429, 'twelve refused downloads lock the address out, even for the right token');
    assert.ok(!readdirSync(join(dir, 'state')).includes('bundle'), 'nothing was built for a refused request');

    const invited = await proxy.api('hosts', { method: 'POST', body: JSON.stringify({ id: 'gpu-2' }) });
    const invitation = ((await invited.json()) as { token: string }).token;
    const standbyLine = (await (await proxy.api('hosts', { method: 'POST', body: JSON.stringify({ id: 'cpu-1' }) })).json()) as { token: string; kind: string; command: string };
    assert.equal(standbyLine.kind, 'download');
    assert.match(standbyLine.token, /^sbd_/);
    assert.equal(standbyLine.command, `curl -fsSL https://proxy.example.com:8443/_standby/install.sh | sudo bash -s -- standby --token ${standbyLine.token}`);
    // a download token enrolls nothing
    const enroll = await fetch(`${proxy.url}/_standby/enroll`, { method: 'POST', headers: { authorization: `Bearer ${standbyLine.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFenceFenceFenceFenceFenceFenceFenceFenceF x' }), signal: AbortSignal.timeout(10_000) });
    assert.equal(enroll.status, 401);

    let sha = '';
    for (const token of [invitation, AGENT_TOKEN, standbyLine.token, ADMIN_TOKEN]) {
      const r = await get(sum, { authorization: `Bearer ${token}` });
      assert.equal(r.status, 200, token.slice(0, 4));
      assert.match(r.body, /^[0-9a-f]{64} {2}bundle\.tar\.gz\n$/);
      sha ||= r.body;
      assert.equal(r.body, sha);
    }
    const head = await get(tgz, { authorization: `Bearer ${invitation}` }, 'HEAD');
    assert.equal(head.status, 200);
  });

  test('install.sh and the invitation name publicUrl, whatever Host the request says', async () => {
    const script = await get(`${proxy.url}/_standby/install.sh`, { host: 'evil.example:443' });
    assert.equal(script.status, 200);
    assert.match(script.body, /proxy_url="\$\{STANDBY_PROXY_URL:-https:\/\/proxy\.example\.com:8443\}"/);
    assert.doesNotMatch(script.body, /evil/);
    const invite = await get(`${proxy.url}/_standby/api/v1/hosts`, { host: 'evil.example', authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, 'POST', JSON.stringify({ id: 'gpu-3' }));
    assert.equal(invite.status, 201, invite.body);
    const { command } = JSON.parse(invite.body) as { command: string };
    assert.match(command, /^curl -fsSL https:\/\/proxy\.example\.com:8443\/_standby\/install\.sh \| sudo bash -s -- agent --token sbi_\S+$/);
  });

  test('no publicUrl and a wildcard listen address: install.sh and invitations are refused naming publicUrl; a listen address naming one host is used', async () => {
    const wild = await startTestProxy({ primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2', settings: { listen: { host: '0.0.0.0', port: 0 } } });
    try {
      const url = wild.url.replace('0.0.0.0', '127.0.0.1');
      const script = await get(`${url}/_standby/install.sh`, { host: 'evil.example' });
      assert.equal(script.status, 503);
      assert.match(script.body, /no publicUrl in proxy\.json .*set publicUrl/);
      const invite = await get(`${url}/_standby/api/v1/hosts`, { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, 'POST', JSON.stringify({ id: 'gpu-2' }));
      assert.equal(invite.status, 503);
      assert.match(invite.body, /set publicUrl/);
      const hosts = ((await (await fetch(`${url}/_standby/api/v1/hosts`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(5_000) })).json()) as { hosts: { id: string }[] }).hosts;
      assert.deepEqual(hosts.filter((h) => h.id === 'gpu-2'), [], 'no invitation was made');
    } finally {
      await wild.close();
    }
    const bound = await startTestProxy({ primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2' });
    try {
      const script = await get(`${bound.url}/_standby/install.sh`, { host: 'evil.example' });
      assert.equal(script.status, 200);
      assert.ok(script.body.includes(`proxy_url="\${STANDBY_PROXY_URL:-${bound.url}}"`), 'the bound address (127.0.0.1 and its port)');
    } finally {
      await bound.close();
    }
  });
});
