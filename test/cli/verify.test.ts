// `standby verify` as an operator meets it: without
// --config it reads the installed agent.json and, when that is missing, says
// so instead of "hostId: got nothing"; on a host a failover fenced it says
// "this host was fenced (epoch N)" instead of "standby unreachable or login
// refused", over a real sshd with the real receiver.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { authorizeOnStandby, fenceStandby, revokeOnStandby } from '../../proxy/fence.ts';
import { verifyConfigFile } from '../../cli/verify.ts';
import { StandbyError } from '../../core/errors.ts';
import { startAgent, type Agent } from '../fixtures/agent-process.ts';
import { NODE, run } from '../fixtures/cli-run.ts';
import { startManagedStandby, type HostKey, type ManagedStandby } from '../fixtures/managed-standby.ts';
import { killMarked } from '../fixtures/process-tree.ts';
import { ADMIN_TOKEN, AGENT_TOKEN, startTestProxy, type TestProxy } from '../fixtures/proxy.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../fixtures/workspace-server.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';

describe('standby verify without --config', () => {
  test('reads the installed agent.json when it is there, and names it and --config when it is not', () => {
    assert.equal(verifyConfigFile('/x/agent.json', {}, '/nonexistent/agent.json'), '/x/agent.json');
    assert.equal(verifyConfigFile(undefined, {}, '/etc/hostname'), '/etc/hostname', 'the installed file, when it exists');
    assert.equal(verifyConfigFile(undefined, { hostId: 'g' }, '/nonexistent/agent.json'), undefined, 'flags alone, when some are given');
    assert.throws(() => verifyConfigFile(undefined, {}, '/nonexistent/agent.json'), (err: StandbyError) => {
      assert.equal(err.code, 'STANDBY_ERR_CONFIG_UNREADABLE');
      assert.equal(err.message, 'no agent settings: /nonexistent/agent.json does not exist (standby install agent writes it). Pass the agent\'s settings file with --config FILE');
      return true;
    });
  });

  test('the real command on a machine with no agent installed', { skip: existsSync('/etc/standby/agent.json') ? '/etc/standby/agent.json exists here' : false }, async () => {
    const r = await run(NODE, ['cli.ts', 'verify'], {}, 20_000);
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, /\/etc\/standby\/agent\.json does not exist .*--config FILE/);
    assert.doesNotMatch(r.stderr, /got nothing/);
  });
});

describe('standby verify on a host a failover fenced', () => {
  let m: ManagedStandby;
  let key: HostKey;
  let config = '';
  const verify = () => run(NODE, ['cli.ts', 'verify', '--config', config], {}, 30_000);

  before(async () => {
    m = await startManagedStandby('verify-fenced');
    key = m.newKey('gpu-1');
    await authorizeOnStandby(m.target, 'gpu-1', key.pub);
    config = join(m.top, 'agent.json');
    writeFileSync(config, JSON.stringify({
      hostId: 'gpu-1',
      workspace: m.src,
      standby: { host: m.sshd.host, port: m.sshd.port, user: m.sshd.user, identityFile: key.file, sshOptions: m.sshd.sshOptions, path: m.root },
      sync: { exclude: [] },
    }), { mode: 0o600 });
    assert.equal((await m.rsyncAs(key.file, 0)).code, 0);
  });
  after(async () => {
    await m?.close();
  });

  test('before the failover it compares', async () => {
    const r = await verify();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /standby matches/);
  });

  test('fenced at epoch 2 (its key still there): "this host was fenced (epoch 2)"', async () => {
    await fenceStandby(m.target, 2, { waitMs: 2_000 });
    const r = await verify();
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^standby: this host was fenced \(epoch 2\): the standby accepts epoch 2 or newer only\. The standby took over in a failover/m);
    assert.doesNotMatch(r.stderr, /unreachable or login refused/);
  });

  test('revoked, and its key removed by the fence: the refused key is named as what a fence does', async () => {
    const lines = readFileSync(m.sshd.authorizedKeysFile, 'utf8');
    await revokeOnStandby(m.target, ['gpu-1'], { waitMs: 2_000 });
    const r = await verify();
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /refused this host's ssh key .*A failover removes the key of the host it fences, so this host was most likely fenced/);
    assert.doesNotMatch(r.stderr, /unreachable or login refused/);
    // its line put back (a restored backup): the receiver's own refusal names the epoch
    writeFileSync(m.sshd.authorizedKeysFile, lines);
    const again = await verify();
    assert.match(again.stderr, /^standby: this host was fenced \(epoch 2\) and its key revoked on the standby/m);
  });
});

describe('standby verify under the granted epoch, and --from-proxy: the proxy has the GPU\'s agent compare and report', () => {
  let top = '';
  let sshd: Sshd | undefined;
  let proxy: TestProxy | undefined;
  let agent: Agent | undefined;
  let servers: WorkspaceServer[] = [];
  let dst = '';
  const verify = (...more: string[]) => run(NODE, ['cli.ts', 'verify', '--from-proxy', proxy!.url, ...more], {}, 60_000);

  before(async () => {
    top = mkdtempSync(join(tmpdir(), 'standby-verify-proxy-'));
    const src = join(top, 'src');
    dst = join(top, 'dst');
    for (const d of [src, dst, join(top, 'run')]) mkdirSync(d);
    writeFileSync(join(src, 'a.txt'), 'on the GPU\n');
    // the standby's receiver, already fenced once (epoch 1, the proxy's first): only writers of epoch 1 or newer get in
    const state = join(top, 'receive-state');
    sshd = await startSshd({ keyOptions: `command="${STANDBY_CLI} receive --root ${dst} --state-dir ${state}",restrict` });
    const fenced = await run(STANDBY_CLI, ['receive', '--fence', '1', '--state-dir', state], {}, 20_000);
    assert.equal(fenced.code, 0, fenced.stderr);
    // both code-servers answer: the proxy does not fail over while the agent starts
    servers = await Promise.all([startWorkspaceServer({ name: 'gpu' }), startWorkspaceServer({ name: 'cpu' })]);
    proxy = await startTestProxy({ primaryUrl: servers[0]!.url, standbyUrl: servers[1]!.url, settings: { detector: { heartbeatIntervalMs: 200, missedHeartbeats: 25 } } });
    agent = await startAgent({
      src,
      dst,
      target: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, sshOptions: sshd.sshOptions },
      dir: top,
      settings: { hostId: 'gpu-1', runDir: join(top, 'run'), proxy: { url: `${proxy.url.replace(/^http/, 'ws')}/_standby/agent`, token: AGENT_TOKEN, heartbeatIntervalMs: 200 } },
    });
    await agent.ready(30_000);
    await agent.settled(20_000);
  });
  after(async () => {
    await agent?.stop();
    killMarked(join(top, 'run'));
    await proxy?.close();
    for (const w of servers) await w.close();
    await sshd?.close();
    rmSync(top, { recursive: true, force: true });
  });

  test('from-proxy in sync: exit 0; a file only on the standby: exit 1, listed, also by verify on the GPU; a wrong admin token: refused', async () => {
    const same = await verify('--admin-token', ADMIN_TOKEN);
    assert.equal(same.code, 0, same.stderr);
    assert.equal(same.stdout, 'standby matches: no differences\n');
    writeFileSync(join(dst, 'extra.txt'), 'only on the standby\n');
    const differs = await verify('--admin-token', ADMIN_TOKEN, '--json');
    assert.equal(differs.code, 1, differs.stderr);
    const report = JSON.parse(differs.stdout) as { match: boolean; differences: { path: string; kind: string }[] };
    assert.equal(report.match, false);
    assert.deepEqual(report.differences.map((d) => [d.path, d.kind]), [['extra.txt', 'extra on standby']]);
    // on the GPU itself, the same comparison under the epoch its agent was granted (not 0, which the receiver would refuse as fenced)
    const local = await run(NODE, ['cli.ts', 'verify', '--config', join(top, 'agent.json')], {}, 60_000);
    assert.equal(local.code, 1, local.stderr);
    assert.match(local.stdout, /extra on standby +.*\/extra\.txt\n1 difference\(s\)\n$/);
    const wrong = await verify('--admin-token', 'not-the-admin-token');
    assert.equal(wrong.code, 77, wrong.stderr);
    assert.match(wrong.stderr, /refused the admin token/);
  });
});
