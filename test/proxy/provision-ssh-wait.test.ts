// waitForSsh (proxy/provision/ssh-wait.ts): the vast provider against the
// loopback Vast fake, its instances' SSH address pointed at a real OpenSSH
// sshd on loopback (a handshake, the host key recorded), at a port that
// accepts and never answers, at a closed port; an instance that never gets
// SSH ends in a clear timeout; one that dies or is destroyed ends the wait at
// once; an abort ends it at once.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { StandbyError } from '../../core/errors.ts';
import { freePort } from '../../core/free-port.ts';
import { checkHostKey } from '../../proxy/known-hosts.ts';
import { startSshd } from '../../proxy/provision/loopback-sshd.ts';
import { sshHandshake, waitForSsh } from '../../proxy/provision/ssh-wait.ts';
import { VastProvider, vastProviderSchema } from '../../proxy/provision/vast.ts';
import type { GpuLaunch } from '../../proxy/provision/provider.ts';
import { fakeOffer, startFakeVastApi, type FakeBoot, type FakeVastApi } from '../fakes/vast-api.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const BOUND = { timeout: 30_000 };
const launch = (epoch: number): GpuLaunch => ({ name: { workspace: 'ws', epoch }, image: 'pytorch/pytorch:latest', onstart: 'true', diskGb: 40 });

async function vast(t: TestContext): Promise<{ fake: FakeVastApi; provider: VastProvider }> {
  const fake = await startFakeVastApi({ apiKey: 'vast-key-ssh-wait', bootMs: 300 });
  t.after(() => fake.close());
  const provider = new VastProvider(vastProviderSchema.parse({ apiUrl: fake.apiUrl, apiKey: fake.apiKey, retryMinMs: 5, retryMaxMs: 20, requestTimeoutMs: 2_000, requestRetries: 2 }));
  return { fake, provider };
}

/** A GPU rented from the fake, booting as `boot`, its SSH port (once running) `port`. */
async function rent(fake: FakeVastApi, provider: VastProvider, offerId: number, boot: FakeBoot, port?: number): Promise<string> {
  fake.offers.push(fakeOffer(offerId));
  fake.boot = boot;
  const host = await provider.create({ id: String(offerId), pricePerHour: 0.4, gpuName: 'RTX 4090', gpuCount: 1, gpuRamGb: 24, location: 'Bangkok, TH', region: 'TH', reliability: 0.99 }, launch(offerId));
  if (port !== undefined) fake.setSshPort(Number(host.id), port);
  return host.id;
}

async function rejection(p: Promise<unknown>): Promise<StandbyError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof StandbyError, `a StandbyError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

/** A TCP server on loopback that accepts connections and never says a word. */
async function silentPort(t: TestContext): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  return (server.address() as AddressInfo).port;
}

test('a GPU that boots, then runs with sshd: the wait ends at the handshake with the host key sshd presented', BOUND, async (t) => {
  const sshd = await startSshd();
  t.after(() => sshd.close());
  const { fake, provider } = await vast(t);
  const id = await rent(fake, provider, 101, 'running', sshd.port);
  const ready = await waitForSsh(provider, id, 10_000, undefined, { pollMs: 50 });
  assert.deepEqual(ready.ssh, { host: '127.0.0.1', port: sshd.port, user: 'root' });
  assert.equal(ready.host.state, 'running');
  assert.ok(ready.polls >= 2, `it looked while the instance loaded (${ready.polls} looks)`);
  // the key sshd has: its host_ed25519.pub, its fingerprint as ssh-keygen prints it, and a known_hosts line the proxy's checker accepts
  const pub = readFileSync(join(sshd.dir, 'host_ed25519.pub'), 'utf8').trim().split(' ');
  assert.equal(ready.hostKey.type, 'ssh-ed25519');
  assert.equal(ready.hostKey.base64, pub[1]);
  assert.equal(ready.hostKey.fingerprint, execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(sshd.dir, 'host_ed25519.pub')], { encoding: 'utf8' }).split(' ')[1]);
  assert.equal(ready.hostKey.knownHostsLine, `[127.0.0.1]:${sshd.port} ssh-ed25519 ${pub[1]}`);
  assert.deepEqual(checkHostKey(ready.hostKey.knownHostsLine, '127.0.0.1', sshd.port, Buffer.from(pub[1]!, 'base64')), { ok: true });
  await waitFor('sshd to have seen the connection', () => sshd.connections() >= 1);
});

test('an instance that runs but never gets SSH: a clear timeout, with what was last seen', BOUND, async (t) => {
  const { fake, provider } = await vast(t);
  const id = await rent(fake, provider, 102, 'no-ssh');
  const started = performance.now();
  const err = await rejection(waitForSsh(provider, id, 1_500, undefined, { pollMs: 50 }));
  const took = performance.now() - started;
  assert.equal(err.code, 'STANDBY_ERR_PROVIDER_FAILED');
  assert.match(err.message, new RegExp(`vast host ${id} did not answer SSH within 1500 ms \\(recovery\\.sshWaitS\\); last seen: running, but vast gives no SSH address yet .*Destroy it and provision another`));
  assert.equal(err.context['timedOut'], true);
  assert.equal(err.context['phase'], 'ssh-ready');
  assert.ok(took >= 1_500 && took < 5_000, `${Math.round(took)} ms`);
});

test('an instance stuck loading times out naming its state', BOUND, async (t) => {
  const { fake, provider } = await vast(t);
  const id = await rent(fake, provider, 103, 'stuck-loading');
  const err = await rejection(waitForSsh(provider, id, 1_000, undefined, { pollMs: 50 }));
  assert.match(err.message, /did not answer SSH within 1 s .*last seen: creating \(loading/);
});

test('SSH at a port that accepts and never answers, or that is closed: the handshake times out or is refused, and the wait says so', BOUND, async (t) => {
  const { fake, provider } = await vast(t);
  const silent = await silentPort(t);
  const mute = await rent(fake, provider, 104, 'running', silent);
  // running with its address before the wait starts: on a loaded machine the fake's boot could otherwise take the whole wait
  await waitFor('the instance running', async () => (await provider.get(mute))?.ssh !== undefined);
  const err = await rejection(waitForSsh(provider, mute, 1_500, undefined, { pollMs: 50, handshakeTimeoutMs: 300 }));
  assert.match(err.message, new RegExp(`last seen: running at 127\\.0\\.0\\.1:${silent}, where SSH does not answer yet \\(no SSH handshake within \\d+ ms\\)`));

  const closed = await freePort('127.0.0.1');
  const refused = await rent(fake, provider, 105, 'running', closed);
  await waitFor('the instance running', async () => (await provider.get(refused))?.ssh !== undefined);
  const err2 = await rejection(waitForSsh(provider, refused, 1_000, undefined, { pollMs: 50 }));
  assert.match(err2.message, new RegExp(`last seen: running at 127\\.0\\.0\\.1:${closed}, where SSH does not answer yet \\(.*ECONNREFUSED`));
});

test('sshd that starts late: the wait goes on until it answers', BOUND, async (t) => {
  const sshd = await startSshd();
  t.after(() => sshd.close());
  await sshd.stop();
  const { fake, provider } = await vast(t);
  const id = await rent(fake, provider, 106, 'running', sshd.port);
  const waiting = waitForSsh(provider, id, 15_000, undefined, { pollMs: 50 });
  // the instance runs (its address is given), and nothing listens there yet
  await waitFor('the instance running', async () => (await provider.get(id))?.ssh !== undefined);
  await sshd.start();
  const ready = await waiting;
  assert.equal(ready.ssh.port, sshd.port);
  assert.equal(ready.hostKey.type, 'ssh-ed25519');
});

test('an instance that dies, or is destroyed, ends the wait at once rather than at the timeout', BOUND, async (t) => {
  const { fake, provider } = await vast(t);
  const dying = await rent(fake, provider, 107, 'dies');
  const started = performance.now();
  const err = await rejection(waitForSsh(provider, dying, 20_000, undefined, { pollMs: 50 }));
  assert.match(err.message, new RegExp(`vast host ${dying} failed while waiting for it to answer SSH \\(exited: Error: container exited`));
  assert.ok(performance.now() - started < 5_000);

  const destroyed = await rent(fake, provider, 108, 'stuck-loading');
  await provider.destroy(destroyed);
  const err2 = await rejection(waitForSsh(provider, destroyed, 20_000, undefined, { pollMs: 50 }));
  assert.match(err2.message, new RegExp(`vast host ${destroyed} is gone`));
});

test('an abort ends the wait at once, between looks and mid-handshake', BOUND, async (t) => {
  const { fake, provider } = await vast(t);
  const id = await rent(fake, provider, 109, 'stuck-loading');
  const ac = new AbortController();
  const waiting = waitForSsh(provider, id, 20_000, ac.signal, { pollMs: 10_000 });
  await waitFor('a first look', () => fake.log.some((l) => l === `GET /api/v0/instances/${id}/`));
  let started = performance.now();
  ac.abort();
  await assert.rejects(waiting, { name: 'AbortError' });
  assert.ok(performance.now() - started < 1_000);

  const silent = await silentPort(t);
  const ac2 = new AbortController();
  const shaking = sshHandshake({ host: '127.0.0.1', port: silent }, 20_000, ac2.signal);
  started = performance.now();
  setImmediate(() => ac2.abort());
  await assert.rejects(shaking, { name: 'AbortError' });
  assert.ok(performance.now() - started < 1_000);
});
