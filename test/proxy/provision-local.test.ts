// The `local` provider (proxy/provision/local.ts) with real processes: a GPU
// host and a standby host on this machine, each a folder with a real sshd on
// loopback whose only key is the proxy's fencing key (the receiver's forced
// command, as the installer lays it down) and the built-in workspace server.
// A writer authorized through the fencing key rsyncs into the standby; the
// proxy's key fences it; create and ensure are idempotent; a new provider
// object finds the hosts; stop keeps the data, destroy removes everything;
// kill leaves no process; a killed owner takes its hosts' processes along;
// close() leaves nothing running; the workspace server's pid file is there
// while it runs, for an agent on the host to freeze it.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { descendants } from '../../core/process-tree.ts';
import { StandbyError } from '../../core/errors.ts';
import { authorizeOnStandby, fenceStandby, type FenceTarget } from '../../proxy/fence.ts';
import { LocalProvider, localBaseDir, localProviderSchema } from '../../proxy/provision/local.ts';
import { Freezer } from '../../agent/freeze.ts';
import { pino } from 'pino';
import type { GpuLaunch, GpuOffer, ProvisionedHost, StandbySpec } from '../../proxy/provision/provider.ts';
import { runClient as run } from '../fixtures/managed-standby.ts';
import { pidsWithMarker } from '../fixtures/process-tree.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const WS = 'proj-1';
/** the local provider's one offer, as search() gives it */
const LOCAL_OFFER: GpuOffer = { id: 'local', pricePerHour: 0, gpuName: 'this machine (no GPU)', gpuCount: 1, gpuRamGb: 1, location: 'this machine', region: undefined, reliability: 1 };

function alive(pid: number): boolean {
  return existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
}

describe('the local provider', { timeout: 180_000 }, () => {
  let top = '';
  let baseDir = '';
  let fenceKey = '';
  let fencePub = '';
  let writerKey = '';
  let writerPub = '';
  let src = '';
  const providers: LocalProvider[] = [];
  const sockets: Socket[] = [];
  const launch: GpuLaunch = { name: { workspace: WS, epoch: 2 }, image: 'unused', onstart: 'true', diskGb: 10 };
  let spec: StandbySpec;
  const gpuId = `gpu/standby-${WS}-e2`;
  const standbyId = `standby/standby-${WS}-e2`;

  const provider = (): LocalProvider => {
    const p = new LocalProvider({ baseDir, fenceKey: fencePub, startTimeoutMs: 15_000 });
    providers.push(p);
    return p;
  };
  const keygen = (name: string): [string, string] => {
    const file = join(top, name);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
    return [file, readFileSync(`${file}.pub`, 'utf8').trim()];
  };
  const fenceTarget = (p: LocalProvider, host: ProvisionedHost): FenceTarget => ({ host: host.ssh!.host, port: host.ssh!.port, user: host.ssh!.user, identityFile: fenceKey, knownHostsFile: p.details(host.id)!.knownHostsFile });
  const rsyncAs = (p: LocalProvider, host: ProvisionedHost, epoch: number) => {
    const d = p.details(host.id)!;
    const shell = ['ssh', '-o', `UserKnownHostsFile=${d.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'LogLevel=ERROR', '-p', String(host.ssh!.port), '-i', writerKey, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes'].map((a) => `'${a}'`).join(' ');
    return run('rsync', ['-a', '--delay-updates', '-e', shell, `--rsync-path=STANDBY_EPOCH=${epoch} rsync`, `${src}/`, `${host.ssh!.user}@${host.ssh!.host}:${d.workspace}/`]);
  };
  const healthz = async (url: string): Promise<unknown> => (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) })).json();
  /** sshd's and the workspace server's pids with every descendant (connections and what runs under them) */
  const processesOf = (p: LocalProvider, id: string): number[] => {
    const record = JSON.parse(readFileSync(join(p.details(id)!.dir, 'host.json'), 'utf8')) as { sshdPid: number; serverPid: number };
    return [...descendants(record.sshdPid), ...descendants(record.serverPid)];
  };
  /** a TCP connection to sshd that has not logged in: sshd forks a process for it */
  const openConnection = async (port: number): Promise<Socket> => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    sockets.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    return s;
  };

  before(() => {
    top = mkdtempSync(join(tmpdir(), 'standby-local-'));
    baseDir = join(top, 'hosts');
    [fenceKey, fencePub] = keygen('fence');
    [writerKey, writerPub] = keygen('writer');
    src = join(top, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'a.txt'), 'from the GPU\n');
    spec = { name: { workspace: WS, epoch: 2 }, zone: 'here', machineType: 'none', diskGb: 10, spot: false, sshPublicKey: fencePub, sshUser: 'root' };
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    for (const p of providers) await p.close();
    // whatever a failed test left: nothing of ours outlives the suite
    // (sshd's command line names its folder, the workspace server's its host)
    const left = [...new Set([...pidsWithMarker(top), ...pidsWithMarker(`standby-${WS}-e`)])];
    for (const pid of left) process.kill(pid, 'SIGKILL');
    rmSync(top, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no process of the hosts left after close()');
  });

  test('search: one free offer on this machine, whatever is asked', async () => {
    const r = await provider().gpu.search({ minGpuRamGb: 80, maxPricePerHour: 0.01, regions: ['TH'], diskGb: 500 });
    assert.ok(r.ok);
    assert.equal(r.offers.length, 1);
    assert.equal(r.offers[0]!.pricePerHour, 0);
    assert.equal(r.offers[0]!.gpuRamGb, 80);
  });

  test('config: baseDir defaults under the state folder; other keys are refused', () => {
    const s = localProviderSchema.parse({});
    assert.equal(localBaseDir(s, '/var/lib/standby'), '/var/lib/standby/local-hosts');
    assert.equal(s.startTimeoutMs, 10_000);
    assert.equal(localBaseDir(localProviderSchema.parse({ baseDir: '/srv/hosts' }), '/x'), '/srv/hosts');
    assert.equal(localProviderSchema.safeParse({ baseDir: 'relative' }).success, false);
    assert.equal(localProviderSchema.safeParse({ zone: 'x' }).success, false);
    assert.throws(() => new LocalProvider({ baseDir, fenceKey: 'not a key' }), (err: unknown) => err instanceof StandbyError && err.code === 'STANDBY_ERR_CONFIG_INVALID' && /fenceKey/.test(err.message));
    assert.throws(() => new LocalProvider({ baseDir: '/tmp/a b', fenceKey: fencePub }), (err: unknown) => err instanceof StandbyError && err.code === 'STANDBY_ERR_CONFIG_INVALID');
  });

  test('create a GPU and ensure a standby: each runs its sshd with the receiver laid down as the installer does, and a workspace server; both calls are idempotent', async () => {
    const p = provider();
    const found = await p.gpu.search({ minGpuRamGb: 8, maxPricePerHour: 0.5, regions: [], diskGb: 10 });
    assert.ok(found.ok);
    const offer = found.offers[0];
    const gpu = await p.gpu.create(offer!, launch);
    // two at once (a retry racing the first call): one host
    const [standby, twin] = await Promise.all([p.standby.ensure(spec), p.standby.ensure(spec)]);
    assert.deepEqual(twin, standby);
    for (const [host, id] of [[gpu, gpuId], [standby, standbyId]] as const) {
      assert.equal(host.id, id);
      assert.equal(host.state, 'running', host.detail);
      assert.deepEqual(host.name, { workspace: WS, epoch: 2 });
      assert.equal(host.ssh?.host, '127.0.0.1');
      const d = p.details(id)!;
      assert.ok(existsSync(d.workspace));
      const lines = readFileSync(d.authorizedKeys, 'utf8').trim().split('\n');
      assert.equal(lines.length, 1, 'the fencing key and nothing else');
      assert.match(lines[0]!, new RegExp(`^command=".*/bin/standby receive --allow-fence --state-dir ${d.receiveState} --root ${d.workspace} --authorized-keys ${d.authorizedKeys}",restrict ${fencePub.split(' ').slice(0, 2).join(' ').replace(/[+/]/g, '\\$&')}`));
      assert.deepEqual(await healthz(d.url), { status: 'alive', name: id });
      // its workspace server's file API writes into the host's workspace (the demo's writer)
      const put = await fetch(`${d.url}/files/probe/hello.txt`, { method: 'PUT', body: 'hi', headers: { 'x-standby-files-token': d.filesToken }, signal: AbortSignal.timeout(5_000) });
      assert.equal(put.status, 200);
      // without the provider's file token: refused (the proxy forwards anyone's requests here)
      const anon = await fetch(`${d.url}/files/probe/other.txt`, { method: 'PUT', body: 'x', signal: AbortSignal.timeout(5_000) });
      assert.equal(anon.status, 401);
      assert.equal(readFileSync(join(d.workspace, 'probe/hello.txt'), 'utf8'), 'hi');
    }
    const before = processesOf(p, gpuId);
    const again = await p.gpu.create(offer!, launch);
    assert.deepEqual(again, gpu, 'the same host, adopted');
    assert.deepEqual(await p.standby.ensure(spec), standby);
    assert.deepEqual(processesOf(p, gpuId), before, 'no process started or ended');
    assert.deepEqual((await p.gpu.list(WS)).map((h) => h.id), [gpuId]);
    assert.deepEqual((await p.standby.list(WS)).map((h) => h.id), [standbyId]);
    assert.deepEqual(await p.gpu.list('other'), []);
    await assert.rejects(p.gpu.create({ ...offer!, id: '123' }, launch), (err: unknown) => err instanceof StandbyError && err.code === 'STANDBY_ERR_CONFIG_INVALID');
    await assert.rejects(p.gpu.get('../etc'), (err: unknown) => err instanceof StandbyError && err.code === 'STANDBY_ERR_CONFIG_INVALID');
    await p.close();
  });

  test("a writer authorized through the proxy's key rsyncs into the standby; the proxy's key fences it", async () => {
    const p = provider();
    const standby = await p.standby.ensure(spec);
    const target = fenceTarget(p, standby);
    const d = p.details(standby.id)!;
    const auth = await authorizeOnStandby(target, 'gpu-1', writerPub);
    assert.deepEqual(auth.roots, [d.workspace]);
    const ok = await rsyncAs(p, standby, 0);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(readFileSync(join(d.workspace, 'a.txt'), 'utf8'), 'from the GPU\n');
    const fenced = await fenceStandby(target, 1, { timeoutMs: 20_000 });
    assert.equal(fenced.epoch, 1);
    writeFileSync(join(src, 'b.txt'), 'after the fence\n');
    const stale = await rsyncAs(p, standby, 0);
    assert.notEqual(stale.code, 0);
    assert.match(stale.stderr, /STANDBY_ERR_EPOCH_STALE/);
    assert.equal(existsSync(join(d.workspace, 'b.txt')), false, 'nothing written at the fenced epoch');
    assert.equal((await rsyncAs(p, standby, 1)).code, 0, 'a writer at the new epoch writes');
    await p.close();
  });

  test('kill: sshd, every connection and the workspace server are SIGKILLed; get says failed; create starts it again with its data', async () => {
    const p = provider();
    const gpu = await p.gpu.create(LOCAL_OFFER, launch);
    const d = p.details(gpu.id)!;
    writeFileSync(join(d.workspace, 'train.log'), 'epoch 1\n');
    await openConnection(gpu.ssh!.port);
    await openConnection(gpu.ssh!.port);
    const pids = await waitFor('sshd forked for both connections', () => {
      const all = processesOf(p, gpu.id);
      return all.length >= 4 ? all : undefined;
    });
    p.kill(gpu.id);
    await waitFor('every process of the host gone', () => pids.every((pid) => !alive(pid)), { timeoutMs: 10_000 });
    const dead = await p.gpu.get(gpu.id);
    assert.equal(dead?.state, 'failed');
    assert.equal(dead?.ssh, undefined);
    await assert.rejects(fetch(`${d.url}/healthz`, { signal: AbortSignal.timeout(3_000) }));
    const back = await p.gpu.create(LOCAL_OFFER, launch);
    assert.equal(back.state, 'running', back.detail);
    assert.equal(readFileSync(join(p.details(gpu.id)!.workspace, 'train.log'), 'utf8'), 'epoch 1\n');
    assert.ok(await healthz(p.details(gpu.id)!.url));
    await p.close();
    assert.ok(processesOf(p, gpu.id).every((pid) => !alive(pid)), 'close() ended them');
  });

  test('a new provider object over the same folder finds the hosts; ensure starts them again; another object can stop what one started', async () => {
    const first = provider();
    const standby = await first.standby.ensure(spec);
    const firstPids = processesOf(first, standby.id);
    await first.close();
    assert.ok(firstPids.every((pid) => !alive(pid)), 'close() ended them');

    const second = provider();
    assert.deepEqual((await second.gpu.list(WS)).map((h) => [h.id, h.state]), [[gpuId, 'failed']]);
    const listed = await second.standby.list(WS);
    assert.deepEqual(listed.map((h) => [h.id, h.state]), [[standbyId, 'failed']]);
    assert.match(listed[0]!.detail, /create or ensure starts it again/);
    const up = await second.standby.ensure(spec);
    assert.equal(up.state, 'running', up.detail);
    const record = JSON.parse(readFileSync(join(second.details(standbyId)!.dir, 'host.json'), 'utf8')) as { sshPort: number; httpPort: number };
    assert.equal(record.sshPort, up.ssh!.port, 'the port in use is recorded');
    assert.equal(readFileSync(join(second.details(standbyId)!.workspace, 'a.txt'), 'utf8'), 'from the GPU\n');

    // a third object sees them running (by pid and command line) and stops them though it did not start them
    const third = provider();
    const seen = await third.standby.get(standbyId);
    assert.equal(seen?.state, 'running', seen?.detail);
    const pids = processesOf(third, standbyId);
    await third.standby.stop(standbyId);
    await waitFor('the stopped host\'s processes gone', () => pids.every((pid) => !alive(pid)), { timeoutMs: 10_000 });
    assert.equal((await second.standby.get(standbyId))?.state, 'stopped');
    await second.close();
  });

  test('stop keeps the data and ensure brings it back; destroy removes everything, idempotently', async () => {
    const p = provider();
    const up = await p.standby.ensure(spec);
    assert.equal(up.state, 'running');
    const d = p.details(standbyId)!;
    await p.standby.stop(standbyId);
    await p.standby.stop(standbyId);
    assert.equal((await p.standby.get(standbyId))?.state, 'stopped');
    assert.equal(readFileSync(join(d.workspace, 'a.txt'), 'utf8'), 'from the GPU\n', 'the stopped host keeps its workspace');
    assert.equal((await p.standby.ensure(spec)).state, 'running');

    const gpu = await p.gpu.create(LOCAL_OFFER, launch);
    const pids = [...processesOf(p, standbyId), ...processesOf(p, gpu.id)];
    await p.standby.destroy(standbyId);
    await p.gpu.destroy(gpu.id);
    await p.gpu.destroy(gpu.id);
    assert.ok(pids.every((pid) => !alive(pid)), 'destroy ended its processes');
    assert.equal(existsSync(d.dir), false);
    assert.equal(await p.standby.get(standbyId), undefined);
    assert.equal(await p.gpu.get(gpu.id), undefined);
    assert.deepEqual(await p.gpu.list(WS), []);
    await p.close();
  });

  test("the workspace server's pid file: there while it runs (an agent's freeze.pidFiles stops it), gone when it stops", async () => {
    const p = provider();
    const standby = await p.standby.ensure(spec);
    const d = p.details(standby.id)!;
    const record = JSON.parse(readFileSync(join(d.dir, 'host.json'), 'utf8')) as { serverPid: number };
    assert.equal(d.pidFile, join(d.dir, 'workspace-server.pid'));
    assert.equal(readFileSync(d.pidFile, 'utf8'), `${record.serverPid}\n`);
    // an agent on the host freezes it at a switch back: it answers nothing until the thaw
    const freezer = new Freezer({ pidFiles: [d.pidFile], maxMs: 30_000 }, pino({ level: 'silent' }));
    try {
      const frozen = await freezer.freeze();
      assert.equal(frozen.ok, true, frozen.error ?? '');
      await assert.rejects(fetch(`${d.url}/healthz`, { signal: AbortSignal.timeout(500) }), /timeout|aborted/i, 'a frozen workspace server does not answer');
      assert.equal(freezer.thaw('test').ok, true);
    } finally {
      freezer.close();
    }
    assert.deepEqual(await healthz(d.url), { status: 'alive', name: standby.id });
    await p.standby.stop(standby.id);
    assert.equal(existsSync(d.pidFile), false, 'removed when the server stops');
    await p.standby.ensure(spec);
    const again = JSON.parse(readFileSync(join(d.dir, 'host.json'), 'utf8')) as { serverPid: number };
    assert.equal(readFileSync(d.pidFile, 'utf8'), `${again.serverPid}\n`, 'written anew when it starts again');
    await p.close();
    assert.equal(existsSync(d.pidFile), false, 'removed by close()');
  });

  test('a host record that cannot be read is an error naming it, never taken as no host; destroy still removes the host', async () => {
    const p = provider();
    const name = { workspace: 'broken', epoch: 1 };
    const host = await p.standby.ensure({ ...spec, name });
    writeFileSync(join(p.details(host.id)!.dir, 'host.json'), '{"version": 1, "role": "gpu"');
    await assert.rejects(p.standby.get(host.id), (err: unknown) => err instanceof StandbyError && err.code === 'STANDBY_ERR_STATE_CORRUPT' && err.message.includes('host.json'));
    await assert.rejects(p.standby.list('broken'), (err: unknown) => err instanceof StandbyError && err.code === 'STANDBY_ERR_STATE_CORRUPT');
    await p.standby.destroy(host.id);
    assert.deepEqual(await p.standby.list('broken'), []);
    await p.close();
  });

  test('a killed owner takes its hosts\' sshd and workspace server along (parent death)', async () => {
    const owner = spawn(process.execPath, ['--input-type=module', '-e', `
      const { LocalProvider } = await import(${JSON.stringify(join(import.meta.dirname, '..', '..', 'proxy', 'provision', 'local.ts'))});
      const p = new LocalProvider({ baseDir: ${JSON.stringify(baseDir)}, fenceKey: ${JSON.stringify(fencePub)} });
      const h = await p.standby.ensure(${JSON.stringify(spec)});
      process.stdout.write(JSON.stringify(h) + '\\n');
      setInterval(() => {}, 1000);
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((r) => owner.once('exit', () => r()));
    let out = '';
    owner.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor('the owner made its host', () => out.includes('\n'), { timeoutMs: 30_000, failIf: () => (owner.exitCode !== null ? `the owner exited ${owner.exitCode}` : undefined) });
      const host = JSON.parse(out) as ProvisionedHost;
      assert.equal(host.state, 'running');
      const p = provider();
      const pids = processesOf(p, host.id);
      assert.ok(pids.length >= 2);
      owner.kill('SIGKILL');
      await exited;
      await waitFor('the host\'s processes gone with their owner', () => pids.every((pid) => !alive(pid)), { timeoutMs: 10_000 });
      assert.equal((await p.standby.get(host.id))?.state, 'failed');
      await p.standby.destroy(host.id);
    } finally {
      if (owner.exitCode === null && owner.signalCode === null) owner.kill('SIGKILL');
      await exited;
    }
  });
});
