// The one line, end to end: a real proxy serves install.sh (its own URL baked
// in) and the bundle; `curl ... | bash -s -- agent --root ...` downloads,
// verifies and installs it under a prefix.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfigSchema } from '../../agent/config.ts';
import { validateSettings } from '../../config-file.ts';
import { startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { run } from './run.ts';

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
    const r = await run('bash', ['-o', 'pipefail', '-c', `curl -fsSL ${proxy.url}/_standby/install.sh | bash -s -- agent --root ${root} --no-start --standby-host cpu-1 --workspace /srv/ws --proxy ${proxy.url}`], { STANDBY_TOKEN: 'token-for-the-agent' }, 180_000);
    const ms = Math.round(performance.now() - started);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /standby install agent: done/);

    const bundles = readdirSync(join(stateDir, 'bundle'));
    const tgz = bundles.find((b) => b.endsWith('.tar.gz'))!;
    const bytes = readFileSync(join(stateDir, 'bundle', tgz)).length;
    process.stdout.write(`# bundle ${(bytes / 1e6).toFixed(1)} MB; curl | bash install took ${ms} ms (bundle build included)\n`);

    const config = join(root, 'etc/standby/agent.json');
    const settings = validateSettings(agentConfigSchema, JSON.parse(readFileSync(config, 'utf8')), config);
    assert.equal(settings.proxy?.token, 'token-for-the-agent');
    assert.equal(settings.proxy?.url, `${proxy.url.replace('http:', 'ws:')}/_standby/agent`);
    assert.ok(existsSync(join(root, 'opt/standby/bin/standby')));
    assert.ok(existsSync(join(root, 'opt/standby/current/node_modules/.bin/node')));

    // cached: the checksum and the bundle are served again without a rebuild
    const sum = await (await fetch(`${proxy.url}/_standby/bundle.sha256`, { signal: AbortSignal.timeout(5_000) })).text();
    assert.match(sum, /^[0-9a-f]{64} {2}bundle\.tar\.gz\n$/);
    assert.deepEqual(readdirSync(join(stateDir, 'bundle')).sort(), bundles.sort());

    // a bundle that does not match its checksum is refused
    const bad = await run('bash', ['-c', `curl -fsSL ${proxy.url}/_standby/install.sh | sed 's|"$tmp/bundle.sha256" "$proxy_url/_standby/bundle.sha256"|"$tmp/bundle.sha256" "$proxy_url/_standby/status"|' | bash -s -- agent --root ${join(dir, 'root2')} --no-start --standby-host h`], {}, 120_000);
    assert.notEqual(bad.code, 0);
    assert.ok(!existsSync(join(dir, 'root2/opt/standby')), 'nothing installed');
  } finally {
    await proxy?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
