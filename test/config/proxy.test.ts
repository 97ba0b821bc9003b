// proxy.json: the first version's minimal file is accepted with every other
// setting defaulted, and the agent's proxy section of that version too.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentConfigSchema } from '../../config/agent.ts';
import { validateSettings } from '../../config/file.ts';
import { proxyConfigSchema } from '../../config/proxy.ts';

const MINIMAL = {
  listen: { host: '127.0.0.1', port: 8888 },
  stateDir: '/var/lib/standby',
  adminToken: 'change-me',
  primary: { id: 'gpu-1', url: 'http://127.0.0.1:9001', agentToken: 'secret-1' },
  standby: { id: 'cpu-1', url: 'http://127.0.0.1:9002', ssh: { host: '127.0.0.1', port: 2222, user: 'root', identityFile: '/etc/standby/admin_ed25519' } },
  detector: { heartbeatIntervalMs: 500, missedHeartbeats: 3 },
};

test('the minimal proxy.json of the first version is accepted, the rest defaulted', () => {
  const c = validateSettings(proxyConfigSchema, MINIMAL, 'proxy.json');
  assert.equal(c.listen.port, 8888);
  assert.equal(c.primary.agentToken, 'secret-1');
  assert.deepEqual(c.detector, { heartbeatIntervalMs: 500, missedHeartbeats: 3, probeIntervalMs: 250, passiveProbeIntervalMs: 2_000, probeTimeoutMs: 400, preemptionConfirmMs: 60_000, probePath: '/healthz' });
  assert.deepEqual({ command: c.standby.ssh.command, waitMs: c.standby.ssh.waitMs, timeoutMs: c.standby.ssh.timeoutMs }, { command: 'standby receive', waitMs: 5_000, timeoutMs: 15_000 });
  assert.equal(c.tls, undefined);
  assert.deepEqual(c.primary.notices, {});
  assert.equal(c.logLevel, 'info');
});

test('the agent gains "proxy": { url, token }, with a 500 ms heartbeat by default', () => {
  const c = validateSettings(agentConfigSchema, {
    hostId: 'gpu-1',
    standby: { host: '127.0.0.1', path: '/standby/workspace' },
    proxy: { url: 'ws://127.0.0.1:8888/_standby/agent', token: 'secret-1' },
  }, 'agent.json');
  assert.deepEqual(c.proxy, { url: 'ws://127.0.0.1:8888/_standby/agent', token: 'secret-1', heartbeatIntervalMs: 500 });
  assert.throws(() => validateSettings(agentConfigSchema, { hostId: 'g', standby: { host: 'h', path: '/p' }, proxy: { url: 'http://x', token: 'secret-1' } }, 'agent.json'), /proxy\.url: got "http:\/\/x", expected a ws:\/\/ or wss:\/\/ URL/);
});
