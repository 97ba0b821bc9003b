// The front door's settings in proxy.json: limits and trustedProxies, with
// their documented defaults, and what is refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { proxyConfigSchema } from '../../config/proxy.ts';

const base = {
  adminToken: 'admin-token-1234',
  primary: { id: 'gpu-1', url: 'http://127.0.0.1:9001', agentToken: 'agent-token-1' },
  standby: { id: 'cpu-1', url: 'http://127.0.0.1:9002', ssh: { host: '127.0.0.1', identityFile: '/etc/standby/admin_ed25519' } },
};

test('limits and trustedProxies default to the documented values', () => {
  const c = proxyConfigSchema.parse(base);
  assert.deepEqual(c.trustedProxies, []);
  assert.deepEqual(c.limits, {
    headersTimeoutMs: 20_000,
    requestTimeoutMs: 0,
    idleTimeoutMs: 30_000,
    bodyMinBytesPerSecond: 1024,
    bodyRateWindowMs: 30_000,
    maxHeaderBytes: 16_384,
    maxHeaders: 100,
    maxConnectionsPerClient: 256,
    maxConnections: 8_192,
    maxEventStreams: 1024,
  });
});

test('trustedProxies takes addresses and CIDR blocks, IPv4 and IPv6, and refuses anything else', () => {
  assert.deepEqual(proxyConfigSchema.parse({ ...base, trustedProxies: ['10.0.0.5', '10.0.0.0/8', '::1', 'fd00::/8'] }).trustedProxies, ['10.0.0.5', '10.0.0.0/8', '::1', 'fd00::/8']);
  for (const bad of ['10.0.0.0/33', 'fd00::/129', 'proxy.example', '10.0.0.0/8/1', '10.0.0.0/x', '']) {
    assert.equal(proxyConfigSchema.safeParse({ ...base, trustedProxies: [bad] }).success, false, bad);
  }
});

test('limits out of range are refused', () => {
  for (const limits of [{ headersTimeoutMs: 10 }, { maxConnectionsPerClient: 0 }, { bodyMinBytesPerSecond: -1 }, { requestTimeoutMs: 5 }, { unknown: 1 }]) {
    assert.equal(proxyConfigSchema.safeParse({ ...base, limits }).success, false, JSON.stringify(limits));
  }
});
