// The one line, end to end: a real proxy serves install.sh (its own URL baked
// in), the bundle and its fencing public key; `curl ... | bash -s -- ROLE --root ...`
// downloads, verifies and installs it under a prefix. The checks install.sh
// makes before it downloads anything (root, packages) run as an unprivileged user.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { agentConfigSchema } from '../../config/agent.ts';
import { validateSettings } from '../../config/file.ts';
import { proxyConfigSchema } from '../../config/proxy.ts';
import { downloadToken } from '../../proxy/download-token.ts';
import { run, standby } from '../fixtures/cli-run.ts';
import { ADMIN_TOKEN, AGENT_TOKEN, startTestProxy, type TestProxy } from '../fixtures/proxy.ts';

const mode = (p: string) => statSync(p).mode & 0o777;
const get = (url: string, method = 'GET') => fetch(url, { method, signal: AbortSignal.timeout(10_000) });
const which = (cmd: string) => execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8', timeout: 5_000 }).trim();

/** `sh -c script` as nobody (the tests run as root; setpriv drops to uid and gid 65534), or as this user when it is not root. */
function runUnprivileged(sh: string, script: string, env: Record<string, string>, timeout: number) {
  if (process.getuid?.() !== 0) return run(sh, ['-c', script], env, timeout);
  return run(which('setpriv'), ['--reuid=65534', '--regid=65534', '--clear-groups', '--', sh, '-c', `[ "$(id -u)" = 65534 ] || exit 99; ${script}`], env, timeout);
}

test('curl PROXY/_standby/install.sh | bash -s -- agent installs the bundle the proxy serves', { timeout: 240_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'standby-install-sh-'));
  let proxy: TestProxy | undefined;
  try {
    const stateDir = join(dir, 'proxy-state');
    proxy = await startTestProxy({ primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2', stateDir });
    const script = await (await fetch(`${proxy.url}/_standby/install.sh`, { signal: AbortSignal.timeout(5_000) })).text();
    assert.match(script, new RegExp(`proxy_url="\\$\\{STANDBY_PROXY_URL:-${proxy.url.replace(/[.]/g, '\\.')}\\}"`), 'the proxy bakes its own URL in');

    const root = join(dir, 'root');
    const started = performance.now();
    // the program is downloaded with the agent's token (an upgrade's case; a first install has an invitation)
    const r = await run('bash', ['-o', 'pipefail', '-c', `curl -fsSL ${proxy.url}/_standby/install.sh | bash -s -- agent --root ${root} --no-start --standby-host cpu-1 --workspace /srv/ws --proxy ${proxy.url}`], { STANDBY_TOKEN: AGENT_TOKEN }, 180_000);
    const ms = Math.round(performance.now() - started);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /standby install agent: done/);

    const bundles = readdirSync(join(stateDir, 'bundle'));
    const tgz = bundles.find((b) => b.endsWith('.tar.gz'))!;
    const bytes = readFileSync(join(stateDir, 'bundle', tgz)).length;
    process.stdout.write(`# bundle ${(bytes / 1e6).toFixed(1)} MB; curl | bash install took ${ms} ms (bundle build included)\n`);

    const config = join(root, 'etc/standby/agent.json');
    const settings = validateSettings(agentConfigSchema, JSON.parse(readFileSync(config, 'utf8')), config);
    assert.equal(settings.proxy?.token, AGENT_TOKEN);
    assert.equal(settings.proxy?.url, `${proxy.url.replace('http:', 'ws:')}/_standby/agent`);
    assert.ok(existsSync(join(root, 'opt/standby/bin/standby')));
    assert.ok(existsSync(join(root, 'opt/standby/current/node_modules/.bin/node')));

    // cached: the checksum and the bundle are served again without a rebuild
    const sum = await (await fetch(`${proxy.url}/_standby/bundle.sha256`, { headers: { authorization: `Bearer ${AGENT_TOKEN}` }, signal: AbortSignal.timeout(5_000) })).text();
    assert.match(sum, /^[0-9a-f]{64} {2}bundle\.tar\.gz\n$/);
    assert.deepEqual(readdirSync(join(stateDir, 'bundle')).sort(), bundles.sort());

    // an upgrade with no token given: install.sh downloads with the installed agent's own
    const up = await run('bash', ['-o', 'pipefail', '-c', `curl -fsSL ${proxy.url}/_standby/install.sh | bash -s -- agent --root ${root} --no-start`], { STANDBY_TOKEN: '' }, 180_000);
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    assert.match(up.stdout, /standby install agent: done/);
    // no token at all: install.sh says where to get one and downloads nothing
    const none = await run('bash', ['-o', 'pipefail', '-c', `curl -fsSL ${proxy.url}/_standby/install.sh | bash -s -- standby --root ${join(dir, 'root3')} --no-start`], { STANDBY_TOKEN: '' }, 60_000);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /install\.sh: no token: the proxy gives the program only with one\. On the proxy, `standby hosts add ID` prints this host's line/);
    assert.ok(!existsSync(join(dir, 'root3')), 'nothing installed');

    // a bundle that does not match its checksum is refused
    const bad = await run('bash', ['-c', `curl -fsSL ${proxy.url}/_standby/install.sh | sed 's|"$tmp/bundle.sha256" "$proxy_url/_standby/bundle.sha256"|"$tmp/bundle.sha256" "$proxy_url/_standby/status"|' | bash -s -- agent --root ${join(dir, 'root2')} --no-start --standby-host h`], { STANDBY_TOKEN: AGENT_TOKEN }, 120_000);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /downloading both again[\s\S]*does not match bundle\.sha256, twice: not installing/);
    assert.ok(!existsSync(join(dir, 'root2/opt/standby')), 'nothing installed');
  } finally {
    await proxy?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('the one line for the standby and the proxy', () => {
  let dir: string;
  let identityFile: string;
  let pub: string;
  let proxy: TestProxy;
  /** a proxy with no fencing key and a state folder of its own, to see that nothing is downloaded from it */
  let bare: TestProxy;
  let bareState: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'standby-install-sh-roles-'));
    chmodSync(dir, 0o755); // the unprivileged runs below reach into it
    identityFile = join(dir, 'proxy-keys', 'id_ed25519');
    mkdirSync(join(dir, 'proxy-keys'), { mode: 0o700 });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'standby-agent@proxy', '-f', identityFile], { stdio: 'ignore', timeout: 20_000 });
    pub = readFileSync(`${identityFile}.pub`, 'utf8').trim();
    proxy = await startTestProxy({ primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2', stateDir: join(dir, 'proxy-state'), settings: { standby: { ssh: { identityFile } } } });
    bareState = join(dir, 'bare-state');
    bare = await startTestProxy({ primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2', stateDir: bareState });
  });
  after(async () => {
    await proxy?.close();
    await bare?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('GET /_standby/fence-key.pub: the .pub beside standby.ssh.identityFile, derived when it is missing, 404 when there is no key', async () => {
    const r = await get(`${proxy.url}/_standby/fence-key.pub`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(await r.text(), pub + '\n');
    assert.equal((await get(`${proxy.url}/_standby/fence-key.pub`, 'HEAD')).status, 200);
    assert.equal((await get(`${proxy.url}/_standby/fence-key.pub`, 'POST')).status, 405);

    // the .pub went missing: ssh-keygen -y derives the same key (without the comment)
    const saved = readFileSync(`${identityFile}.pub`);
    unlinkSync(`${identityFile}.pub`);
    try {
      const d = await get(`${proxy.url}/_standby/fence-key.pub`);
      assert.equal(d.status, 200);
      assert.equal((await d.text()).trim().split(' ').slice(0, 2).join(' '), pub.split(' ').slice(0, 2).join(' '));
    } finally {
      writeFileSync(`${identityFile}.pub`, saved);
    }

    const none = await get(`${bare.url}/_standby/fence-key.pub`);
    assert.equal(none.status, 404);
    const body = await none.text();
    assert.match(body, /^this proxy has no fencing key: .*\/nonexistent\/admin_key.*--fence-key-file.*\n$/);
    assert.equal(body.split('\n').length, 2, 'one line');
  });

  test('curl | sh -s -- standby: authorizes the proxy\'s fencing key with its forced command, creates the workspace; a second run changes nothing', { timeout: 240_000 }, async () => {
    const root = join(dir, 'standby-root');
    const workspace = join(root, 'ws');
    // the line `standby hosts add cpu-1` prints, with a prefix
    const printed = ((await (await proxy.api('hosts', { method: 'POST', body: JSON.stringify({ id: 'cpu-1' }) })).json()) as { command: string }).command;
    assert.match(printed, new RegExp(`^curl -fsSL ${proxy.url.replace(/[.]/g, '\\.')}/_standby/install\\.sh \\| sudo bash -s -- standby --token sbd_\\S+$`));
    const line = printed.replace('sudo bash -s -- standby', `sh -s -- standby --root ${root} --no-start --workspace ${workspace}`);
    const r1 = await run('bash', ['-o', 'pipefail', '-c', line], {}, 180_000);
    assert.equal(r1.code, 0, `${r1.stdout}\n${r1.stderr}`);
    assert.match(r1.stdout, /standby install standby: done/);
    assert.match(r1.stdout, new RegExp(`authorized the proxy's fencing key SHA256:\\S+ \\(from ${proxy.url.replace(/[.]/g, '\\.')}/_standby/fence-key\\.pub\\)`));

    const ak = join(root, 'root/.ssh/authorized_keys');
    const expected = `command="${join(root, 'opt/standby/bin/standby')} receive --allow-fence --state-dir ${join(root, 'var/lib/standby/receive')} --root ${workspace} --authorized-keys ${ak}",restrict ${pub}\n`;
    assert.equal(readFileSync(ak, 'utf8'), expected);
    assert.equal(mode(ak), 0o600);
    assert.ok(statSync(workspace).isDirectory(), 'the workspace is made');
    assert.ok(existsSync(join(root, 'opt/standby/bin/standby')));
    const before1 = statSync(ak);

    const r2 = await run('bash', ['-o', 'pipefail', '-c', line], {}, 180_000);
    assert.equal(r2.code, 0, `${r2.stdout}\n${r2.stderr}`);
    assert.match(r2.stdout, /kept the proxy's fencing key/);
    assert.equal(readFileSync(ak, 'utf8'), expected);
    const before2 = statSync(ak);
    assert.deepEqual([before2.ino, before2.mtimeMs, mode(ak)], [before1.ino, before1.mtimeMs, 0o600], 'not rewritten');
  });

  test('curl | sh -s -- proxy: installs a proxy (valid proxy.json 0600, its unit)', { timeout: 240_000 }, async () => {
    const root = join(dir, 'proxy-root');
    // another proxy installed from this one: its admin token downloads (--token would be the new proxy's primary.agentToken)
    const r = await run('bash', ['-o', 'pipefail', '-c', `curl -fsSL ${proxy.url}/_standby/install.sh | sh -s -- proxy --root ${root} --no-start --gpu-url http://10.0.0.5:8080 --standby-url http://10.0.0.6:8080 --standby-host 10.0.0.6`], { STANDBY_DOWNLOAD_TOKEN: ADMIN_TOKEN }, 180_000);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /standby install proxy: done/);
    const file = join(root, 'etc/standby/proxy.json');
    assert.equal(mode(file), 0o600);
    const c = validateSettings(proxyConfigSchema, JSON.parse(readFileSync(file, 'utf8')), file);
    assert.equal(c.primary.url, 'http://10.0.0.5:8080');
    assert.equal(c.standby.ssh.host, '10.0.0.6');
    assert.equal(c.standby.ssh.identityFile, join(root, 'etc/standby/keys/fence_ed25519'));
    assert.equal(c.primary.agentToken, undefined, 'the download token is not taken for an agent token');
    assert.ok(existsSync(join(root, 'etc/systemd/system/standby-proxy.service')), 'the unit');
  });

  test('--insecure against a self-signed https proxy: the standby\'s fetch of the fencing key trusts it as curl -k does', { timeout: 240_000 }, async () => {
    const tls = join(dir, 'tls');
    mkdirSync(tls);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(tls, 'key.pem'), '-out', join(tls, 'cert.pem')], { stdio: 'ignore', timeout: 20_000 });
    const https = await startTestProxy({ primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2', stateDir: join(dir, 'tls-state'), settings: { standby: { ssh: { identityFile } }, tls: { cert: join(tls, 'cert.pem'), key: join(tls, 'key.pem') } } });
    try {
      assert.match(https.url, /^https:/);
      // without --insecure the certificate is checked, and the error says what to do
      const checked = await standby(['install', 'standby', '--root', join(dir, 'checked-root'), '--no-start', '--workspace', join(dir, 'checked-root', 'ws'), '--proxy', https.url]);
      assert.equal(checked.code, 69, checked.stderr);
      assert.match(checked.stderr, /fence-key\.pub: \S+ \(the proxy's certificate is not trusted here: give the proxy a real certificate, or run install\.sh with --insecure\)/);
      const root = join(dir, 'insecure-root');
      const r = await run('bash', ['-o', 'pipefail', '-c', `curl -fsSLk ${https.url}/_standby/install.sh | sh -s -- --insecure standby --root ${root} --no-start --workspace ${join(root, 'ws')} --token ${downloadToken(ADMIN_TOKEN, Date.now() + 600_000)}`], {}, 180_000);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /--insecure: the proxy's certificate is NOT checked/);
      assert.match(readFileSync(join(root, 'root/.ssh/authorized_keys'), 'utf8'), new RegExp(`--allow-fence .*",restrict ${pub.replace(/[+.]/g, '\\$&')}\n$`));
    } finally {
      await https.close();
    }
  });

  test('not root and no --root: install.sh stops with "run as root" before it downloads anything', { timeout: 60_000 }, async () => {
    const home = join(dir, 'home-c');
    mkdirSync(home, { mode: 0o755 });
    const r = await runUnprivileged('/bin/sh', `curl -fsSL ${bare.url}/_standby/install.sh | sh -s -- standby --workspace /srv/ws`, { HOME: home, PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' }, 30_000);
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`install\\.sh: run as root: curl -fsSL ${bare.url.replace(/[.]/g, '\\.')}/_standby/install\\.sh \\| sudo sh -s -- standby --workspace /srv/ws`));
    assert.ok(!existsSync(join(bareState, 'bundle')), 'no bundle was asked for');
  });

  test('not root with --root and no rsync on PATH: install.sh names rsync and its package, downloads nothing', { timeout: 60_000 }, async () => {
    const bin = join(dir, 'bin-without-rsync');
    const home = join(dir, 'home-d');
    const tmp = join(dir, 'tmp-d');
    mkdirSync(bin, { mode: 0o755 });
    mkdirSync(home, { mode: 0o755 });
    mkdirSync(tmp);
    chmodSync(tmp, 0o777); // writable by nobody: were install.sh to go on, mktemp would succeed here
    for (const cmd of ['sh', 'curl', 'tar', 'gzip', 'sha256sum', 'mktemp', 'id', 'mkdir', 'rm', 'apt-get']) {
      let target: string;
      try {
        target = which(cmd);
      } catch {
        continue; // apt-get off Debian: the message names the package either way
      }
      symlinkSync(target, join(bin, cmd));
    }
    assert.ok(!existsSync(join(bin, 'rsync')));
    const r = await runUnprivileged(join(bin, 'sh'), `curl -fsSL ${bare.url}/_standby/install.sh | sh -s -- standby --root ${join(dir, 'root-d')} --no-start`, { HOME: home, TMPDIR: tmp, PATH: bin }, 30_000);
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /install\.sh: missing: rsync\b.*Install the package\(s\) rsync\b/);
    assert.doesNotMatch(r.stderr, /downloading/);
    assert.deepEqual(readdirSync(tmp), [], 'no download folder was made');
    assert.ok(!existsSync(join(bareState, 'bundle')), 'no bundle was asked for');
    assert.ok(!existsSync(join(dir, 'root-d')), 'nothing installed');
  });
});
