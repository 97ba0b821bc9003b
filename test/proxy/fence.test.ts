// The proxy's fence client (proxy/fence.ts) against a real sshd whose
// receiver is `standby receive`: the proxy's key (forced command with
// --allow-fence) or an admin key fences; the writer's key cannot; the fence
// kills an in-flight writer of the old epoch; an unreachable standby, a silent
// one and a wrong host key fail within the timeout with a typed error, and no
// connection is left open.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { StandbyError } from '../../core/errors.ts';
import { fenceStandby, fenceCommand, type FenceTarget } from '../../proxy/fence.ts';
import { freePort } from '../../core/free-port.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { FenceWarmup } from '../../proxy/fence-warmup.ts';
import { pino } from 'pino';
import { waitFor } from '../fixtures/wait-for.ts';


/** TCP connections to or from a local port that are established right now (from /proc/net/tcp). */
function established(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1).filter((line) => {
    const f = line.trim().split(/\s+/);
    return f[3] === '01' && (f[1]?.endsWith(`:${hex}`) || f[2]?.endsWith(`:${hex}`));
  }).length;
}

function rejectsWith(code: string, pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof StandbyError, `not a StandbyError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('fenceStandby over SSH', () => {
  let top = '';
  let root = '';
  let state = '';
  let sshd: Sshd;
  let proxyKey: FenceTarget;

  before(async () => {
    top = mkdtempSync(join(tmpdir(), 'standby-fence-'));
    root = join(top, 'standby');
    state = join(top, 'state');
    mkdirSync(root);
    sshd = await startSshd({
      keyOptions: `command="${STANDBY_CLI} receive --root ${root} --state-dir ${state}",restrict`,
      moreKeys: {
        proxy: `command="${STANDBY_CLI} receive --allow-fence --state-dir ${state}",restrict`,
        admin: '',
      },
    });
    proxyKey = { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.keys['proxy']!, knownHostsFile: sshd.knownHostsFile };
  });
  after(async () => {
    await sshd?.close();
    rmSync(top, { recursive: true, force: true });
  });

  const storedEpoch = (): number => (existsSync(join(state, 'epoch')) ? Number(readFileSync(join(state, 'epoch'), 'utf8')) : 0);

  test('the command it runs', () => {
    assert.equal(fenceCommand(3), 'standby receive --fence 3');
    assert.equal(fenceCommand(3, { command: '/opt/standby/bin/standby receive', waitMs: 500, stateDir: "/var/lib/x y'z" }), "/opt/standby/bin/standby receive --fence 3 --wait-ms 500 --state-dir '/var/lib/x y'\\''z'");
  });

  test("with the proxy's key (forced command with --allow-fence) and the host key checked: fenced, connection closed", async () => {
    const r = await fenceStandby(proxyKey, 3, { timeoutMs: 10_000 });
    assert.deepEqual({ ...r, waitedMs: 0, durationMs: 0 }, { host: sshd.host, epoch: 3, previousEpoch: 0, waitedMs: 0, killed: 0, signalled: [], locked: true, revoked: [], durationMs: 0 });
    assert.equal(storedEpoch(), 3);
    await waitFor('no connection left open', () => established(sshd.port) === 0, { timeoutMs: 3_000 });
  });

  test('a connection warmed up ahead is used by the fence (no second handshake) and closed after', async () => {
    const warm = new FenceWarmup(proxyKey, pino({ level: 'silent' }));
    try {
      warm.warm();
      const client = await waitFor('the warm connection ready', () => warm.take(), { timeoutMs: 10_000 });
      const before = sshd.connections();
      const r = await fenceStandby(proxyKey, 3, { timeoutMs: 10_000, client });
      assert.equal(r.epoch, 3);
      assert.equal(sshd.connections(), before, 'no new connection for the fence');
      await waitFor('no connection left open', () => established(sshd.port) === 0, { timeoutMs: 3_000 });
      assert.equal(warm.take(), undefined, 'handed over once');
    } finally {
      warm.close();
    }
  });

  test('idempotent; a lower epoch is refused with the reason', async () => {
    const again = await fenceStandby(proxyKey, 3);
    assert.equal(again.previousEpoch, 3);
    await assert.rejects(fenceStandby(proxyKey, 2), (err: unknown) => {
      rejectsWith('STANDBY_ERR_FENCE_FAILED', /fencing at epoch 2 on the standby .*:\d+ failed: .*exited 79: .*already fenced at epoch 3/)(err);
      assert.equal((err as StandbyError).context['exitCode'], 79);
      return true;
    });
    assert.equal(storedEpoch(), 3);
  });

  test('with an admin key (no forced command), naming the command and the state folder', async () => {
    const r = await fenceStandby({ ...proxyKey, identityFile: sshd.keys['admin']! }, 4, { command: `${STANDBY_CLI} receive`, stateDir: state, waitMs: 1000 });
    assert.equal(r.epoch, 4);
    assert.equal(storedEpoch(), 4);
  });

  test("the writer's key cannot fence", async () => {
    await assert.rejects(fenceStandby({ ...proxyKey, identityFile: sshd.identityFile }, 99), rejectsWith('STANDBY_ERR_FENCE_FAILED', /exited 77: .*fencing is not allowed with this key/));
    assert.equal(storedEpoch(), 4);
  });

  test('kills an in-flight writer of the old epoch past its wait; nothing partial is left in place', async () => {
    const src = join(top, 'src');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'big.bin'), randomBytes(2 << 20));
    const writer = spawn('rsync', ['-a', '--delay-updates', '--bwlimit=200', '-e', sshd.rsyncShell(), '--rsync-path=STANDBY_EPOCH=4 rsync', `${src}/`, `${sshd.user}@${sshd.host}:${root}/in-flight/`], { stdio: 'ignore' });
    const writerDone = new Promise<number | null>((resolve) => writer.once('exit', (code) => resolve(code)));
    try {
      await waitFor('the old writer in flight', () => existsSync(join(root, 'in-flight')) && readdirSync(join(root, 'in-flight')).some((f) => f.startsWith('.big.bin.')), { timeoutMs: 10_000, everyMs: 5 });
      const r = await fenceStandby(proxyKey, 5, { waitMs: 200, timeoutMs: 10_000 });
      assert.equal(r.killed, 1, JSON.stringify(r));
      assert.notEqual(await writerDone, 0);
      assert.equal(existsSync(join(root, 'in-flight/big.bin')), false, 'no partial file in place');
    } finally {
      writer.kill('SIGKILL');
      await writerDone;
    }
  });

  test('a host key that known_hosts does not list, or lists differently, is refused', async () => {
    const other = join(top, 'other_known_hosts');
    const wrong = readFileSync(sshd.knownHostsFile, 'utf8').replace(/ssh-ed25519 \S+/, `ssh-ed25519 ${Buffer.concat([Buffer.from('\0\0\0\x0bssh-ed25519\0\0\0\x20'), randomBytes(32)]).toString('base64')}`);
    writeFileSync(other, wrong);
    await assert.rejects(fenceStandby({ ...proxyKey, knownHostsFile: other }, 6, { timeoutMs: 5_000 }), rejectsWith('STANDBY_ERR_FENCE_FAILED', /host key refused: the host key of \[127\.0\.0\.1\]:\d+ does not match known_hosts/));
    writeFileSync(other, '# nothing\n');
    await assert.rejects(fenceStandby({ ...proxyKey, knownHostsFile: other }, 6, { timeoutMs: 5_000 }), rejectsWith('STANDBY_ERR_FENCE_FAILED', /known_hosts has no key for/));
    assert.equal(storedEpoch(), 5, 'not fenced');
    await waitFor('no connection left open', () => established(sshd.port) === 0, { timeoutMs: 3_000 });
  });

  test('a receiver command the standby does not have', async () => {
    await assert.rejects(fenceStandby({ ...proxyKey, identityFile: sshd.keys['admin']! }, 6, { command: '/nonexistent/standby receive', timeoutMs: 5_000 }), rejectsWith('STANDBY_ERR_FENCE_FAILED', /was not found on the standby/));
  });
});

describe('fenceStandby when the standby cannot be reached', () => {
  let key = '';
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'standby-fence-key-'));
    key = join(dir, 'id');
    // any private key will do: the connection never gets that far
    const gen = spawn('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key], { stdio: 'ignore' });
    return new Promise<void>((resolve) => gen.once('exit', () => resolve()));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a closed port: STANDBY_ERR_STANDBY_UNREACHABLE at once, naming the host', async () => {
    const port = await freePort();
    const started = performance.now();
    await assert.rejects(fenceStandby({ host: '127.0.0.1', port, user: 'root', identityFile: key }, 1, { timeoutMs: 3_000 }), rejectsWith('STANDBY_ERR_STANDBY_UNREACHABLE', new RegExp(`the standby root@127\\.0\\.0\\.1:${port} could not be reached for fencing at epoch 1 \\(.*ECONNREFUSED.*\\): check that it is up.*the route does not move to it`)));
    assert.ok(performance.now() - started < 3_000);
  });

  test('a port that accepts and never speaks SSH: unreachable within the timeout, and the socket is closed', async () => {
    const sockets: Socket[] = [];
    const closed: Promise<void>[] = [];
    const server = createServer((s) => {
      s.resume(); // read (and drop) what the client says, so its end of the connection is seen
      sockets.push(s);
      closed.push(new Promise((resolve) => s.once('close', () => resolve())));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const started = performance.now();
      await assert.rejects(fenceStandby({ host: '127.0.0.1', port, user: 'root', identityFile: key }, 1, { timeoutMs: 800 }), rejectsWith('STANDBY_ERR_STANDBY_UNREACHABLE', /could not be reached/));
      const took = performance.now() - started;
      assert.ok(took >= 700 && took < 2_000, `gave up after ${Math.round(took)} ms, for a timeout of 800 ms`);
      assert.equal(sockets.length, 1);
      await waitFor('the client closed its socket', () => Promise.race([Promise.all(closed).then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 50))]), { timeoutMs: 2_000 });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
