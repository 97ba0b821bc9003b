// The live settings store (proxy/live-settings.ts): a change made live is
// kept in the proxy's state folder and applied over proxy.json at every
// start, saying so; a bad value is refused naming the field, the value and
// what was expected, with proxy.json's own schema (its cross-field rules too);
// an override whose proxy.json value changed since is kept, with a warning.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { mergeSettings, validateSettings } from '../../config/file.ts';
import { proxyConfigSchema, type ProxyConfig } from '../../config/proxy.ts';
import { StandbyError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { LIVE_SETTINGS_FILE, LiveSettingsStore } from '../../proxy/live-settings.ts';
import { liveFieldSchemas } from '../../protocol/admin-api.ts';
import { detectorSchema } from '../../config/proxy.ts';
import { gcpStandbySchema } from '../../config/gcp-standby.ts';
import { vastProviderSchema } from '../../config/vast-provider.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function fileConfig(stateDir: string, more: Record<string, unknown> = {}): ProxyConfig {
  return validateSettings(proxyConfigSchema, mergeSettings({
    stateDir,
    adminToken: 'admin-token-for-tests',
    primary: { id: 'gpu-1', url: 'http://127.0.0.1:1' },
    standby: { id: 'cpu-1', url: 'http://127.0.0.1:2', ssh: { host: '127.0.0.1', identityFile: '/nonexistent/key' } },
  }, more), 'test proxy.json');
}

function logger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'standby-live-'));
  dirs.push(d);
  return d;
}

function refusal(fn: () => unknown): StandbyError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof StandbyError, `a StandbyError, got ${String(err)}`);
    return err;
  }
  assert.fail('the change was accepted');
}

test('an override survives a restart, is in force over proxy.json, and the start says what overrides what', () => {
  const dir = scratch();
  const first = LiveSettingsStore.open(fileConfig(dir), logger().log);
  assert.equal(first.config.detector.probeTimeoutMs, 400);
  const changed = first.patch({ detector: { probeTimeoutMs: 900 }, autoFailover: false, agentSync: { delayMs: 1500 } });
  assert.deepEqual(changed.sort(), ['agentSync.delayMs', 'autoFailover', 'detector.probeTimeoutMs']);
  assert.equal(first.config.detector.probeTimeoutMs, 900);
  assert.equal(statSync(join(dir, LIVE_SETTINGS_FILE)).mode & 0o777, 0o600, 'kept private, like the rest of the state');

  const { log, lines } = logger();
  const again = LiveSettingsStore.open(fileConfig(dir), log);
  assert.equal(again.config.detector.probeTimeoutMs, 900, 'the restart kept the live value');
  assert.equal(again.config.autoFailover, false);
  assert.equal(again.config.agentSync?.delayMs, 1500);
  assert.deepEqual(again.overridden(), ['autoFailover', 'detector.probeTimeoutMs', 'agentSync.delayMs']);
  const line = lines.find((l) => String(l['msg']).startsWith('live settings override proxy.json'));
  assert.ok(line, 'the start names the overrides');
  assert.match(String(line['msg']), /detector\.probeTimeoutMs = 900 \(proxy\.json: 400\)/);
  assert.match(String(line['msg']), /autoFailover = false \(proxy\.json: true\)/);
  assert.ok(!lines.some((l) => String(l['msg']).includes('changed since')), 'proxy.json did not change: no warning');
});

test('null drops an override, and a value equal to proxy.json\'s is none', () => {
  const dir = scratch();
  const s = LiveSettingsStore.open(fileConfig(dir), logger().log);
  s.patch({ detector: { missedHeartbeats: 5, probeIntervalMs: 300 } });
  s.patch({ detector: { missedHeartbeats: null, probeIntervalMs: 250 } });
  assert.deepEqual(s.overridden(), []);
  assert.equal(s.config.detector.missedHeartbeats, 3);
  assert.deepEqual(LiveSettingsStore.open(fileConfig(dir), logger().log).overridden(), [], 'nothing comes back at the next start');
});

test('proxy.json changed under an override: the live value stays, with a warning naming both', () => {
  const dir = scratch();
  LiveSettingsStore.open(fileConfig(dir), logger().log).patch({ detector: { probeTimeoutMs: 900 } });
  const { log, lines } = logger();
  const s = LiveSettingsStore.open(fileConfig(dir, { detector: { probeTimeoutMs: 700 } }), log);
  assert.equal(s.config.detector.probeTimeoutMs, 900);
  const warning = lines.find((l) => String(l['msg']).includes("proxy.json's detector.probeTimeoutMs changed since it was set live"));
  assert.ok(warning, JSON.stringify(lines.map((l) => l['msg'])));
  assert.match(String(warning['msg']), /400 then, 700 now/);
});

test('bad values are refused naming the field, the value and what was expected; nothing changes', () => {
  const dir = scratch();
  const s = LiveSettingsStore.open(fileConfig(dir), logger().log);
  const cases: { name: string; body: unknown; says: RegExp[] }[] = [
    { name: 'below the minimum', body: { detector: { probeTimeoutMs: 5 } }, says: [/detector\.probeTimeoutMs: got 5, expected detector\.probeTimeoutMs: at least 20 ms/] },
    { name: 'not a number', body: { agentSync: { delayMs: 'soon' } }, says: [/agentSync\.delayMs: got "soon", expected agentSync\.delayMs: a number of milliseconds 0-60000/] },
    { name: 'not a boolean', body: { autoFailover: 'yes' }, says: [/autoFailover: got "yes", expected true or false/] },
    { name: 'an unknown field', body: { detector: { probeTimeoutMS: 500 } }, says: [/unknown field\(s\) probeTimeoutMS/] },
    { name: 'a field not settable live', body: { adminToken: 'x'.repeat(20) }, says: [/unknown field\(s\) adminToken/] },
    { name: "proxy.json's cross-field rule", body: { agentSync: { delayMs: 3000, maxDelayMs: 1000 } }, says: [/agentSync\.maxDelayMs: got 1000, expected agentSync\.maxDelayMs to be at least agentSync\.delayMs/] },
    { name: 'recovery without a recovery section', body: { recovery: { gpu: { vast: { gpuMaxPrice: 0.3 } } } }, says: [/recovery\.gpu\.vast\.gpuMaxPrice: got 0\.3, expected nothing: proxy\.json has no recovery section/] },
  ];
  for (const c of cases) {
    const err = refusal(() => s.patch(c.body));
    assert.equal(err.code, 'STANDBY_ERR_CONFIG_INVALID', c.name);
    for (const re of c.says) assert.match(err.message, re, c.name);
  }
  assert.deepEqual(s.overridden(), [], 'nothing was kept');
  assert.equal(s.config.autoFailover, true);
});

test('the recovery fields, when proxy.json has a recovery section: validated with its schema, in force at once', () => {
  const dir = scratch();
  const s = LiveSettingsStore.open(fileConfig(dir, { recovery: { gpu: { provider: 'vast' }, standby: { provider: 'gcp' } } }), logger().log);
  const err = refusal(() => s.patch({ recovery: { standby: { gcp: { zone: 'Europe West' } }, gpu: { vast: { regions: ['th'] } } } }));
  assert.match(err.message, /recovery\.standby\.gcp\.zone: got "Europe West", expected a GCP zone/);
  assert.match(err.message, /recovery\.gpu\.vast\.regions\.0: got "th", expected a two-letter upper-case country code/);
  s.patch({ recovery: { autoRecovery: false, standby: { gcp: { machineType: 'e2-small', diskGb: 50, spot: false } }, gpu: { vast: { gpuMaxPrice: 0.3, gpuMinRamGb: 16, regions: ['JP'] } } } });
  const v = s.view();
  assert.deepEqual(v.recovery, { autoRecovery: false, standby: { gcp: { zone: 'europe-west1-b', machineType: 'e2-small', diskGb: 50, spot: false } }, gpu: { vast: { gpuMaxPrice: 0.3, gpuMinRamGb: 16, regions: ['JP'] } } });
  assert.equal(s.config.recovery?.gpu.vast.gpuMaxPrice, 0.3);
});

test('an override that no longer fits proxy.json is dropped at start with an error line, not silently', () => {
  const dir = scratch();
  LiveSettingsStore.open(fileConfig(dir, { recovery: {} }), logger().log).patch({ recovery: { autoRecovery: false }, agentSync: { maxDelayMs: 2000 } });
  const { log, lines } = logger();
  // proxy.json lost its recovery section, and now pushes a delay above the live maxDelayMs
  const s = LiveSettingsStore.open(fileConfig(dir, { agentSync: { delayMs: 5000 } }), log);
  assert.deepEqual(s.overridden(), []);
  const dropped = lines.filter((l) => String(l['msg']).startsWith('live setting ') && l['level'] === 50).map((l) => l['field']);
  assert.deepEqual(dropped.sort(), ['agentSync.maxDelayMs', 'recovery.autoRecovery']);
});

test("the API's field schemas are proxy.json's: the same values accepted and refused, with the same words", () => {
  const pairs: { name: string; live: { safeParse(v: unknown): { success: boolean; error?: { issues: { message: string }[] } } }; file: { safeParse(v: unknown): { success: boolean; error?: { issues: { message: string }[] } } }; values: unknown[] }[] = [
    { name: 'detector.probeTimeoutMs', live: liveFieldSchemas.detector.probeTimeoutMs, file: detectorSchema.shape.probeTimeoutMs, values: [19, 20, 60_000, 60_001, 1.5, '400'] },
    { name: 'detector.missedHeartbeats', live: liveFieldSchemas.detector.missedHeartbeats, file: detectorSchema.shape.missedHeartbeats, values: [0, 1, 100, 101] },
    { name: 'gcp.diskGb', live: liveFieldSchemas.recovery.standbyGcp.diskGb, file: gcpStandbySchema.shape.diskGb, values: [9, 10, 65_536, 65_537] },
    { name: 'vast.gpuMaxPrice', live: liveFieldSchemas.recovery.gpuVast.gpuMaxPrice, file: vastProviderSchema.shape.gpuMaxPrice, values: [0, 0.01, 1000, 1001] },
  ];
  for (const p of pairs) {
    for (const v of p.values) {
      const a = p.live.safeParse(v);
      const b = p.file.safeParse(v);
      assert.equal(a.success, b.success, `${p.name} ${JSON.stringify(v)}`);
      assert.deepEqual(a.error?.issues.map((i) => i.message), b.error?.issues.map((i) => i.message), `${p.name} ${JSON.stringify(v)}`);
    }
  }
});
