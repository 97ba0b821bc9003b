// `standby settings`, run as a child process against a real proxy: shows the
// live settings with where each value comes from and when a change takes
// effect; --set changes them through the API (the proxy validates: a bad
// value exits non-zero naming the field, the value and what was expected).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { LiveSettingsAnswer } from '../../protocol/admin-api.ts';
import { patchOf } from '../../cli/settings.ts';
import { standby } from '../fixtures/cli-run.ts';
import { ADMIN_TOKEN, startTestProxy, type TestProxy } from '../fixtures/proxy.ts';

let proxy: TestProxy;
before(async () => {
  proxy = await startTestProxy({ primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2', settings: { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 } } });
});
after(async () => {
  await proxy?.close();
});

test('--set path=value reads JSON where it can, a plain string otherwise', () => {
  assert.deepEqual(patchOf(['agentSync.delayMs=1000', 'autoFailover=false', 'agentSync.exclude=["logs/"]', 'recovery.standby.gcp.zone=europe-west4-a', 'agentSync.maxDelayMs=null']), {
    agentSync: { delayMs: 1000, exclude: ['logs/'], maxDelayMs: null },
    autoFailover: false,
    recovery: { standby: { gcp: { zone: 'europe-west4-a' } } },
  });
  assert.throws(() => patchOf(['autoFailover']), /expected path=value/);
});

test('standby settings: shows, changes, and refuses a bad value naming it', async () => {
  const flags = ['--proxy', proxy.url, '--token', ADMIN_TOKEN];
  const set = await standby(['settings', '--set', 'agentSync.delayMs=1000', '--set', 'autoFailover=false', ...flags]);
  assert.equal(set.code, 0, set.stderr);
  assert.match(set.stdout, /^agentSync\.delayMs +1000 +live +agent$/m);
  assert.match(set.stdout, /^autoFailover +false +live +now$/m);
  assert.match(set.stdout, /^detector\.probeTimeoutMs +400 +proxy\.json +now$/m);
  assert.match(set.stdout, /^agentSync\.exclude +\(the agent's own\) +proxy\.json +agent$/m);
  assert.equal(proxy.settings.config.autoFailover, false);

  const bad = await standby(['settings', '--set', 'detector.probeTimeoutMs=5', ...flags]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /detector\.probeTimeoutMs: got 5, expected detector\.probeTimeoutMs: at least 20 ms/);

  const shown = await standby(['settings', '--json', ...flags]);
  assert.equal(shown.code, 0, shown.stderr);
  const a = JSON.parse(shown.stdout) as LiveSettingsAnswer;
  assert.deepEqual(a.overridden, ['autoFailover', 'agentSync.delayMs']);
  assert.equal(a.settings.detector.probeTimeoutMs, 400, 'the refused change changed nothing');
});
