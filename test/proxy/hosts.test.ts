// Credentials per host, end to end with a real proxy and the standby's real
// sshd and receiver: the admin invites a host; the host enrolls with the
// one-time invitation and its public key (its key goes onto the standby, then
// it gets a token of its own); that token connects as that host only; the
// admin's revocation, and a failover's fence, take token and key away.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { CLOSE_REVOKED } from '../../protocol/messages.ts';
import { standby } from '../fixtures/cli-run.ts';
import { ADMIN_TOKEN, AGENT_TOKEN, connectAgent, startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { startManagedStandby, type HostKey, type ManagedStandby } from '../fixtures/managed-standby.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import type { Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { waitFor } from '../fixtures/wait-for.ts';

function heartbeat(hostId: string, seq: number): string {
  return JSON.stringify({
    type: 'heartbeat', hostId, epoch: 0, seq,
    sync: { watermark: 0, lastSeq: 0, pending: 0, oldestPendingAgeMs: null, lastPassAgeMs: null, ready: true, held: false, lastError: null },
    codeServer: { healthy: true, checkedAgeMs: 0 }, preemption: null,
  });
}

describe('credentials per host, issued and revoked by the proxy', () => {
  let m: ManagedStandby;
  let root = '';
  let state = '';
  let sshd: Sshd;
  let proxy: TestProxy;
  const sockets: WebSocket[] = [];
  let gpu1: WebSocket | undefined;
  let gpu1Token = '';

  const newKey = (name: string): HostKey => m.newKey(name);
  const enroll = (token: string, body: unknown) =>
    fetch(`${proxy.url}/_standby/enroll`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  const invite = async (id: string): Promise<{ token: string; command: string; expiresAt: string }> => {
    const res = await proxy.api('hosts', { method: 'POST', body: JSON.stringify({ id, ttlSeconds: 600 }) });
    assert.equal(res.status, 201, await res.clone().text());
    return (await res.json()) as { token: string; command: string; expiresAt: string };
  };
  const rsyncAs = (key: HostKey, epoch = 0) => m.rsyncAs(key.file, epoch);
  const hosts = async () => ((await (await proxy.api('hosts')).json()) as { hosts: { id: string; state: string; source: string; key: { fingerprint: string } | null; connected: boolean; keyRevoked: boolean | null }[] }).hosts;

  before(async () => {
    m = await startManagedStandby('hosts-e2e');
    ({ sshd, root, state } = m);
    proxy = await startTestProxy({
      primaryUrl: 'http://127.0.0.1:1',
      standbyUrl: 'http://127.0.0.1:2',
      settings: {
        standby: { ssh: { ...m.target, command: `${STANDBY_CLI} receive`, stateDir: state, waitMs: 2_000, timeoutMs: 15_000 } },
        // no failover from silence in this test: only the one it asks for
        detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 },
      },
    });
  });
  after(async () => {
    for (const ws of sockets) ws.terminate();
    await proxy?.close();
    await m?.close();
  });

  test('inviting takes the admin token; the invitation is one line to run on the host', async () => {
    const anon = await fetch(`${proxy.url}/_standby/api/v1/hosts`, { method: 'POST', body: '{"id":"gpu-1"}', signal: AbortSignal.timeout(5_000) });
    assert.equal(anon.status, 401);
    const withAgentToken = await fetch(`${proxy.url}/_standby/api/v1/hosts`, { headers: { authorization: `Bearer ${AGENT_TOKEN}` }, signal: AbortSignal.timeout(5_000) });
    assert.equal(withAgentToken.status, 401, "an agent's token is not the admin's");
    const bad = await proxy.api('hosts', { method: 'POST', body: JSON.stringify({ id: 'gpu 1' }) });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /expected 1-63 letters/);
    // the standby is not invited as a writer: its line carries a token that downloads the program and does nothing else
    const standby = await proxy.api('hosts', { method: 'POST', body: JSON.stringify({ id: 'cpu-1' }) });
    assert.equal(standby.status, 201);
    const line = (await standby.json()) as { kind: string; token: string; command: string };
    assert.equal(line.kind, 'download');
    assert.equal(line.command, `curl -fsSL ${proxy.url}/_standby/install.sh | sudo bash -s -- standby --token ${line.token}`);
    assert.equal((await hosts()).find((h) => h.id === 'cpu-1')?.state, undefined, 'no invitation for the standby');
    const inv = await invite('gpu-1');
    assert.match(inv.token, /^sbi_/);
    assert.equal(inv.command, `curl -fsSL ${proxy.url}/_standby/install.sh | sudo bash -s -- agent --token ${inv.token}`);
    const listed = (await hosts()).find((h) => h.id === 'gpu-1')!;
    assert.equal(listed.state, 'invited');
    assert.equal(listed.source, 'proxy.json', 'until it enrolls, the token in proxy.json is still the one');
  });

  test('enrollment: a wrong invitation or a bad key changes nothing; a good one puts the key on the standby and issues the host its own token, once', async () => {
    const key = newKey('gpu-1');
    const authorizedBefore = readFileSync(sshd.authorizedKeysFile, 'utf8');
    const wrong = await enroll('sbi_not-an-invitation', { publicKey: key.pub });
    assert.equal(wrong.status, 401);
    assert.deepEqual(await wrong.json(), { error: { code: 'STANDBY_ERR_UNAUTHORIZED', message: 'unauthorized' } });
    const inv = await invite('gpu-1');
    const badKey = await enroll(inv.token, { publicKey: 'ssh-ed25519 not*a*key' });
    assert.equal(badKey.status, 400);
    assert.equal(readFileSync(sshd.authorizedKeysFile, 'utf8'), authorizedBefore, 'the standby is untouched');

    const ok = await enroll(inv.token, { publicKey: key.pub, hostname: 'gpu-box' });
    assert.equal(ok.status, 200, await ok.clone().text());
    const answer = (await ok.json()) as { hostId: string; agentToken: string; standby: { host: string; port: number; user: string; path: string }; knownHosts: string[] };
    assert.equal(answer.hostId, 'gpu-1');
    assert.match(answer.agentToken, /^sba_/);
    assert.deepEqual(answer.standby, { host: sshd.host, port: sshd.port, user: sshd.user, path: root });
    assert.deepEqual(answer.knownHosts, readFileSync(sshd.knownHostsFile, 'utf8').trim().split('\n'));
    assert.ok(!readFileSync(join(proxy.config.stateDir, 'hosts.json'), 'utf8').includes(answer.agentToken), 'the proxy keeps a hash only');
    assert.equal((await rsyncAs(key)).code, 0, 'the enrolled key writes into the workspace');
    assert.equal(readFileSync(join(root, 'a.txt'), 'utf8'), 'from a GPU\n');

    const reused = await enroll(inv.token, { publicKey: newKey('thief').pub });
    assert.equal(reused.status, 401, 'an invitation is used once');
    const listed = (await hosts()).find((h) => h.id === 'gpu-1')!;
    assert.equal(listed.state, 'active');
    assert.equal(listed.source, 'enrolled');
    assert.match(listed.key!.fingerprint, /^SHA256:/);

    // its token connects as gpu-1 and only as gpu-1; the proxy.json token of gpu-1 no longer does
    const conn = await connectAgent(proxy.url, answer.agentToken);
    assert.ok(conn.ws, 'the issued token connects');
    sockets.push(conn.ws);
    const grant = new Promise<Record<string, unknown>>((resolve) => conn.ws!.once('message', (d) => resolve(JSON.parse(d.toString()) as Record<string, unknown>)));
    conn.ws.send(heartbeat('gpu-1', 1));
    assert.equal((await grant)['role'], 'primary');
    assert.equal((await connectAgent(proxy.url, AGENT_TOKEN)).status, 401, "the old proxy.json token of an enrolled host is refused");
    const admin = await fetch(`${proxy.url}/_standby/api/v1/status`, { headers: { authorization: `Bearer ${answer.agentToken}` }, signal: AbortSignal.timeout(5_000) });
    assert.equal(admin.status, 401, "a host's token is not the admin's");
    gpu1 = conn.ws; // kept open: its loss is the failover of the last test
    gpu1Token = answer.agentToken;
  });

  test('an unreachable standby: enrollment fails with the reason and the invitation stays usable', async () => {
    const inv = await invite('gpu-2');
    const key = newKey('gpu-2');
    sshd.kill();
    try {
      const down = await enroll(inv.token, { publicKey: key.pub });
      assert.equal(down.status, 503);
      assert.match(((await down.json()) as { error: { message: string } }).error.message, /could not be reached for authorizing the writer key of gpu-2/);
    } finally {
      await sshd.start();
    }
    const ok = await enroll(inv.token, { publicKey: key.pub });
    assert.equal(ok.status, 200, await ok.clone().text());
    const { agentToken } = (await ok.json()) as { agentToken: string };
    const impostor = await connectAgent(proxy.url, agentToken);
    sockets.push(impostor.ws!);
    const kicked = new Promise<number>((resolve) => impostor.ws!.once('close', (code) => resolve(code)));
    impostor.ws!.send(heartbeat('gpu-1', 1));
    assert.equal(await kicked, 1008, "a heartbeat in another host's name closes the connection");
    const conn = await connectAgent(proxy.url, agentToken);
    assert.ok(conn.ws);
    sockets.push(conn.ws);
    const closed = new Promise<{ code: number; reason: string }>((resolve) => conn.ws!.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));

    // the admin revokes gpu-2: its connection closes for good, its token is refused as revoked, its key is gone
    const res = await proxy.api('hosts/gpu-2/revoke', { method: 'POST' });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await closed, { code: 4003, reason: 'revoked: revoked by the admin' });
    const again = await connectAgent(proxy.url, agentToken);
    assert.equal(again.status, 403);
    assert.match(again.body!, /credentials of gpu-2 were revoked/);
    assert.match((await rsyncAs(key)).stderr, /Permission denied/);
    const listed = (await hosts()).find((h) => h.id === 'gpu-2')!;
    assert.equal(listed.state, 'revoked');
    assert.equal(listed.keyRevoked, true);
    const missing = await proxy.api('hosts/gpu-9/revoke', { method: 'POST' });
    assert.equal(missing.status, 404);
  });

  test("a failover's fence revokes the GPU: token refused, key removed, under the fence's lock", async () => {
    const listedBefore = (await hosts()).find((h) => h.id === 'gpu-1')!;
    assert.equal(listedBefore.state, 'active');
    // the GPU's agent connection drops and its code-server does not answer: failed, so the proxy fails over
    gpu1!.terminate();
    await waitFor('the standby serves', () => proxy.store.state.active === 'standby' && proxy.store.state.fencedEpoch === proxy.store.state.epoch, { timeoutMs: 20_000 });
    await waitFor('the key revocation recorded', async () => (await hosts()).find((h) => h.id === 'gpu-1')!.keyRevoked === true, { timeoutMs: 5_000 });
    const listed = (await hosts()).find((h) => h.id === 'gpu-1')!;
    assert.equal(listed.state, 'revoked');
    const epoch = proxy.store.state.epoch;
    assert.ok(!readFileSync(sshd.authorizedKeysFile, 'utf8').includes('standby-host:gpu-1'), "the GPU's key line is gone");
    const revoked = JSON.parse(readFileSync(join(state, 'revoked-hosts.json'), 'utf8')) as Record<string, { epoch: number }>;
    assert.equal(revoked['gpu-1']!.epoch, epoch, 'revoked at the epoch of the fence');

    // its agent may still connect, fenced for good (a recovery collects its unsent changes before it retires the host); its word moves nothing
    const back = await connectAgent(proxy.url, gpu1Token);
    assert.ok(back.ws, 'the fenced GPU connects with its issued token');
    sockets.push(back.ws);
    const closed = new Promise<number>((resolve) => back.ws!.once('close', (code) => resolve(code)));
    const grant = new Promise<Record<string, unknown>>((resolve) => back.ws!.once('message', (d) => resolve(JSON.parse(d.toString()) as Record<string, unknown>)));
    back.ws.send(heartbeat('gpu-1', 1));
    const g = await grant;
    assert.equal(g['role'], 'fenced');
    assert.match(String(g['reason']), new RegExp(`^fenced at epoch ${epoch} by a failover: this host's credentials are revoked; it may not sync again`));
    assert.equal(proxy.store.state.active, 'standby', 'its heartbeat changes nothing');
    const view = (await (await proxy.api('status')).json()) as { agents: { hostId: string; connected: boolean; fenced: string | null }[] };
    const shown = view.agents.find((a) => a.hostId === 'gpu-1');
    assert.equal(shown?.connected, true);
    assert.match(shown?.fenced ?? '', new RegExp(`^fenced at epoch ${epoch} by a failover`), 'the status says it is fenced for good');
    assert.match((await connectAgent(proxy.url, AGENT_TOKEN)).body ?? '', new RegExp(`credentials of gpu-1 were revoked \\(fenced at epoch ${epoch} by a failover\\)`), "the proxy.json token it had before it enrolled is refused");
    // revoked by the admin (or retired by a recovery): the connection closes, and it may not come back
    assert.equal((await proxy.api('hosts/gpu-1/revoke', { method: 'POST' })).status, 200);
    assert.equal(await closed, CLOSE_REVOKED);
    assert.match((await connectAgent(proxy.url, gpu1Token)).body ?? '', /credentials of gpu-1 were revoked/);
  });

  test('standby hosts: add prints the line to run, the list shows the host, revoke takes it away; bad input says what is wrong', async () => {
    const ep = ['--proxy', proxy.url, '--token', ADMIN_TOKEN];
    const add = await standby(['hosts', 'add', 'gpu-5', '--ttl', '30m', ...ep]);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, new RegExp(`invited gpu-5 \\(one use, until .*\\)[\\s\\S]*curl -fsSL ${proxy.url.replace(/[.]/g, '\\.')}/_standby/install\\.sh \\| sudo bash -s -- agent --token sbi_`));
    const list = await standby(['hosts', ...ep]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^HOST\tROLE\tSTATE/);
    assert.match(list.stdout, /\ngpu-5\tother\tinvited \(until /);
    assert.match(list.stdout, /\ngpu-1\tgpu\trevoked\t/);
    const revoke = await standby(['hosts', 'revoke', 'gpu-5', ...ep]);
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.match(revoke.stdout, /gpu-5 is revoked/);
    const ttl = await standby(['hosts', 'add', 'gpu-6', '--ttl', '10 years', ...ep]);
    assert.equal(ttl.code, 78);
    assert.match(ttl.stderr, /--ttl 10 years: expected a number and a unit/);
    const noId = await standby(['hosts', 'revoke', ...ep]);
    assert.equal(noId.code, 78);
    assert.match(noId.stderr, /needs a host id/);
    const wrong = await standby(['hosts', '--proxy', proxy.url, '--token', 'not-the-admin-token']);
    assert.equal(wrong.code, 77);
    assert.match(wrong.stderr, /refused the admin token/);
  });
});
