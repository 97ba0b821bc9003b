// sd_notify from the real daemons, received on a test NOTIFY_SOCKET: the
// agent says READY only after its first full sync, pings the watchdog while
// its loop works and not while a pass is stuck, and says STOPPING on SIGTERM
// before exiting 0; the proxy says READY once listening with its state, and
// a new STATUS at each transition of its state machine.
import assert from 'node:assert/strict';
import { writeFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startAgent, type Agent } from '../fixtures/agent-process.ts';
import { freePort } from '../../core/free-port.ts';
import { startNotifySocket, type NotifySocket } from '../fixtures/notify-socket.ts';
import { killMarked, pidsWithMarker, commandLine } from '../fixtures/process-tree.ts';
import { ADMIN_TOKEN, proxySettings } from '../fixtures/proxy.ts';
import { startProxyProcess, type ProxyProcess } from '../fixtures/proxy-process.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { waitFor } from '../fixtures/wait-for.ts';

test('the agent: READY after the first full sync, WATCHDOG while working, none while a pass is stuck, STOPPING on SIGTERM, exit 0', { timeout: 120_000 }, async () => {
  const top = mkdtempSync(join(tmpdir(), 'standby-notify-agent-'));
  const gpu = join(top, 'gpu');
  const cpu = join(top, 'cpu');
  const runDir = join(top, 'run');
  for (const d of [gpu, cpu, runDir]) mkdirSync(d);
  for (let i = 0; i < 200; i++) writeFileSync(join(gpu, `f-${i}.txt`), `file ${i}`);
  let sock: NotifySocket | undefined;
  let sshd: Sshd | undefined;
  let agent: Agent | undefined;
  try {
    sock = await startNotifySocket();
    sshd = await startSshd();
    agent = await startAgent({
      src: gpu,
      dst: cpu,
      target: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, sshOptions: sshd.sshOptions },
      dir: top,
      settings: { runDir, sync: { ioTimeoutS: 1 } },
      env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '400000' },
    });
    await waitFor('READY=1', () => sock!.with('READY').length > 0, { timeoutMs: 30_000 });
    // READY only once the standby holds the tree
    assert.ok(existsSync(join(cpu, 'f-199.txt')), 'the first full sync landed before READY');
    const ready = sock.with('READY')[0]!;
    assert.match(ready.fields.STATUS ?? '', /synced|pending/);
    assert.equal(ready.fields.MAINPID, String(agent.pid));
    assert.equal(sock.with('READY').length, 1);
    await waitFor('watchdog pings', () => sock!.with('WATCHDOG').length >= 3, { timeoutMs: 5_000 });

    // A pass stuck: its rsync stopped mid-transfer. The pings stop after twice the I/O timeout (2 s).
    // (a fast machine may finish a pass before it is caught: then more data starts another)
    const big = openSync(join(gpu, 'big.bin'), 'w');
    const chunk = Buffer.alloc(1 << 20, 1);
    let rsyncPid: number | undefined;
    for (let attempt = 0; attempt < 5 && rsyncPid === undefined; attempt++) {
      for (let i = 0; i < 300; i++) writeSync(big, chunk);
      const pid = await waitFor('the pass rsync', () => pidsWithMarker(runDir).find((p) => commandLine(p).startsWith('rsync')), { timeoutMs: 10_000, everyMs: 5 });
      try {
        process.kill(pid, 'SIGSTOP');
        rsyncPid = pid;
      } catch {
        // it ended before the signal: try again with more data
      }
    }
    closeSync(big);
    assert.ok(rsyncPid !== undefined, 'caught a pass in flight');
    const stoppedAt = performance.now();
    try {
      await new Promise((r) => setTimeout(r, 3_500)); // the stall window (2 s) and then some: observing, not imitating work
      const late = sock.with('WATCHDOG').filter((m) => m.at > stoppedAt + 2_600);
      assert.deepEqual(late, [], 'no watchdog ping while the pass is stuck');
    } finally {
      process.kill(rsyncPid, 'SIGCONT');
    }
    const resumed = performance.now();
    await waitFor('pings again once the loop works', () => sock!.with('WATCHDOG').some((m) => m.at > resumed), { timeoutMs: 10_000 });

    const r = await agent.stop();
    assert.equal(r.code, 0);
    const stopping = sock.with('STOPPING');
    assert.equal(stopping.length, 1);
    const order = sock.messages.map((m) => ('READY' in m.fields ? 'READY' : 'STOPPING' in m.fields ? 'STOPPING' : undefined)).filter(Boolean);
    assert.deepEqual(order, ['READY', 'STOPPING']);
  } finally {
    await agent?.stop();
    killMarked(runDir);
    await sshd?.close();
    await sock?.close();
    rmSync(top, { recursive: true, force: true });
  }
});

test('the proxy: READY once listening with its state, WATCHDOG, STOPPING on SIGTERM', { timeout: 60_000 }, async () => {
  const top = mkdtempSync(join(tmpdir(), 'standby-notify-proxy-'));
  let sock: NotifySocket | undefined;
  let proxy: ProxyProcess | undefined;
  try {
    sock = await startNotifySocket();
    const port = await freePort();
    const configFile = join(top, 'proxy.json');
    writeFileSync(configFile, JSON.stringify(proxySettings({ primaryUrl: 'http://127.0.0.1:9', standbyUrl: 'http://127.0.0.1:9', settings: { listen: { host: '127.0.0.1', port }, logLevel: 'warn', detector: { heartbeatIntervalMs: 60_000 } } }, join(top, 'state'))), { mode: 0o600 });
    const prev = { NOTIFY_SOCKET: process.env.NOTIFY_SOCKET, WATCHDOG_USEC: process.env.WATCHDOG_USEC };
    process.env.NOTIFY_SOCKET = sock.path;
    process.env.WATCHDOG_USEC = '400000';
    proxy = await startProxyProcess(configFile, port).finally(() => {
      for (const [k, v] of Object.entries(prev)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });
    await waitFor('READY=1', () => sock!.with('READY').length > 0, { timeoutMs: 10_000 });
    // no GPU agent in this test: a first run waits for its GPU, and READY says so
    assert.match(sock.with('READY')[0]!.fields.STATUS ?? '', /gpu-1 serves; phase waiting, epoch 1/);
    await waitFor('watchdog pings', () => sock!.with('WATCHDOG').length >= 3, { timeoutMs: 5_000 });
    proxy.kill('SIGTERM');
    const exit = await proxy.exited;
    assert.equal(exit.code, 0);
    await waitFor('STOPPING=1', () => sock!.with('STOPPING').length === 1, { timeoutMs: 2_000 });
  } finally {
    await proxy?.stop();
    await sock?.close();
    rmSync(top, { recursive: true, force: true });
  }
});

test('the proxy: a transition of its state machine updates STATUS at once, not at the next 5 s refresh', { timeout: 60_000 }, async () => {
  const top = mkdtempSync(join(tmpdir(), 'standby-notify-proxy-'));
  let sock: NotifySocket | undefined;
  let proxy: ProxyProcess | undefined;
  try {
    sock = await startNotifySocket();
    const port = await freePort();
    const configFile = join(top, 'proxy.json');
    writeFileSync(configFile, JSON.stringify(proxySettings({ primaryUrl: 'http://127.0.0.1:9', standbyUrl: 'http://127.0.0.1:9', settings: { listen: { host: '127.0.0.1', port }, logLevel: 'warn', detector: { heartbeatIntervalMs: 60_000 } } }, join(top, 'state'))), { mode: 0o600 });
    const prev = process.env.NOTIFY_SOCKET;
    process.env.NOTIFY_SOCKET = sock.path;
    proxy = await startProxyProcess(configFile, port).finally(() => {
      if (prev === undefined) delete process.env.NOTIFY_SOCKET;
      else process.env.NOTIFY_SOCKET = prev;
    });
    const ready = await waitFor('READY=1', () => sock!.with('READY')[0], { timeoutMs: 10_000 });
    // a failover by hand (accepted while waiting for the GPU): a new epoch is logged, the fence is tried (and fails: no standby here)
    const res = await fetch(`http://127.0.0.1:${port}/_standby/api/v1/failover`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(5_000) });
    assert.equal(res.status, 202, await res.text());
    const status = await waitFor('STATUS saying failing_over', () => sock!.with('STATUS').find((m) => /phase failing_over, epoch 2/.test(m.fields.STATUS ?? '')), { timeoutMs: 10_000 });
    // supervise() refreshes STATUS 5 s after READY at the earliest: sooner, it came from the transition
    assert.ok(status.at - ready.at < 4_000, `STATUS followed the transition ${Math.round(status.at - ready.at)} ms after READY`);
    proxy.kill('SIGTERM');
    assert.equal((await proxy.exited).code, 0);
  } finally {
    await proxy?.stop();
    await sock?.close();
    rmSync(top, { recursive: true, force: true });
  }
});
