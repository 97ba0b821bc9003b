// The standby's agent restoring a new GPU: under a proxy's grants (a small
// WebSocket server here, answering every heartbeat with the grant of the
// moment), an agent with no standby section pushes nothing until a grant
// names a target, then syncs its whole workspace to target A (a real sshd on
// loopback whose key's forced command is the real `standby receive`, epochs
// and all), then to B after a new grant (B gets everything, A nothing more),
// reporting the target and the full pass's progress in its heartbeats and its
// public key once per connection; a target fenced at a newer epoch refuses it,
// and the agent stops and says so.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { startAgent, type Agent } from '../../agent/daemon.ts';
import { agentConfigSchema, type AgentConfig } from '../../config/agent.ts';
import { validateSettings } from '../../config/file.ts';
import type { Heartbeat, PushTarget } from '../../protocol/messages.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { startAgentSocket, type AgentSocket } from '../fixtures/agent-socket.ts';
import { run } from '../fixtures/cli-run.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import { snapshot } from '../fixtures/tree-snapshot.ts';
import { waitFor } from '../fixtures/wait-for.ts';

/** A new GPU as the proxy's recovery lays it out: a workspace folder, a receiver state folder, sshd with the agent's key behind `standby receive`. */
interface Target {
  id: string;
  root: string;
  state: string;
  sshd: Sshd;
  grant: PushTarget;
}

async function startTarget(top: string, id: string, agentPub: string): Promise<Target> {
  const root = join(top, `${id}-workspace`);
  const state = join(top, `${id}-state`);
  mkdirSync(root);
  const sshd = await startSshd();
  // only the agent's key, and only through the receiver (the client key of the fixture is not authorized)
  writeFileSync(sshd.authorizedKeysFile, `command="${STANDBY_CLI} receive --root ${root} --state-dir ${state}",restrict ${agentPub}\n`, { mode: 0o600 });
  const knownHosts = readFileSync(sshd.knownHostsFile, 'utf8').split('\n').filter(Boolean);
  return { id, root, state, sshd, grant: { id, host: sshd.host, port: sshd.port, user: sshd.user, path: root, knownHosts } };
}

/** The proxy's side: records every heartbeat with its connection number, answers each with the grant of the moment. */
interface TestProxy extends AgentSocket {
  beats: { connection: number; hb: Heartbeat }[];
  /** the agent's other messages (answers to requests) */
  answers: Record<string, unknown>[];
  grant: Record<string, unknown>;
}

async function startTestProxy(): Promise<TestProxy> {
  const socket = await startAgentSocket();
  const proxy = Object.assign(socket, { beats: [] as TestProxy['beats'], answers: [] as TestProxy['answers'] });
  proxy.grant = { type: 'grant', epoch: 3, role: 'fenced', reason: 'not yet', heartbeatSeq: null };
  proxy.onMessage = (m, connection) => {
    if (m['type'] !== 'heartbeat') return void proxy.answers.push(m);
    proxy.beats.push({ connection, hb: m as unknown as Heartbeat });
  };
  return proxy as TestProxy;
}

/** The agent's key pair, made in `top`: its private key's path and its public key's line. */
function agentKey(top: string, hostId: string): { key: string; pub: string } {
  const key = join(top, 'agent_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `standby-agent@${hostId}`, '-f', key]);
  return { key, pub: readFileSync(`${key}.pub`, 'utf8').trim() };
}

/** The agent's config for a restore: `more` (its sync and push settings) with heartbeats every 50 ms to `proxy`, a status port, nothing asked of GCP. */
function agentConfig(top: string, hostId: string, workspace: string, proxy: TestProxy, more: Record<string, unknown>): AgentConfig {
  return validateSettings(agentConfigSchema, {
    hostId,
    workspace,
    ...more,
    proxy: { url: proxy.url, token: `agent-token-${hostId}`, heartbeatIntervalMs: 50 },
    status: { port: 0 },
    runDir: join(top, 'run'),
    notices: { gcpMetadata: false },
  }, 'test');
}

/** The workspace of the standby that served after the failover: enough files that a full pass spans many heartbeats. */
function seed(ws: string): void {
  for (let d = 0; d < 40; d++) {
    mkdirSync(join(ws, `src/d${d}`), { recursive: true });
    for (let f = 0; f < 100; f++) writeFileSync(join(ws, `src/d${d}/f${f}.py`), `# ${d}/${f}\n${'x'.repeat(1000)}\n`);
  }
  writeFileSync(join(ws, 'checkpoint.bin'), Buffer.alloc(4_000_000, 7));
}

describe('restore to a granted target', () => {
  let top: string;
  let ws: string;
  let proxy: TestProxy;
  let agent: Agent | undefined;
  let a: Target;
  let b: Target;
  let c: Target;
  let agentPub: string;
  const logs: { msg: string }[] = [];

  before(async () => {
    top = mkdtempSync(join(tmpdir(), 'standby-restore-'));
    ws = join(top, 'standby-workspace');
    mkdirSync(ws);
    seed(ws);
    const { key, pub } = agentKey(top, 'cpu-1');
    agentPub = pub;
    a = await startTarget(top, 'gpu-a', agentPub);
    b = await startTarget(top, 'gpu-b', agentPub);
    c = await startTarget(top, 'gpu-c', agentPub);
    proxy = await startTestProxy();
    const config = agentConfig(top, 'cpu-1', ws, proxy, {
      identityFile: key,
      // a guard that trips on 500 of 4000 files: the tree's five folders deleted
      sync: { delayMs: 50, retryMinMs: 50, retryMaxMs: 500, deleteGuard: { fraction: 0.05, minFiles: 50 } },
    });
    const log = pino({ level: 'debug' }, new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) logs.push(JSON.parse(l) as { msg: string });
        done();
      },
    }));
    agent = await startAgent(config, log, { statusEveryMs: 60_000, progressEveryMs: 100 });
  });

  after(async () => {
    await agent?.close();
    await proxy?.close();
    await a?.sshd.close();
    await b?.sshd.close();
    await c?.sshd.close();
    rmSync(top, { recursive: true, force: true });
  });

  /** C as the switch to A left it */
  let cutC: { connections: number; snapshot: Record<string, string>; short: string | undefined } | undefined;
  /** heartbeats sent after `from` (an index into proxy.beats) */
  const beatsSince = (from: number) => proxy.beats.slice(from).map((x) => x.hb);
  /** `waiting`, failing with the agent's last log lines (a CI run once saw no pass to a new target start in 60 s) */
  const withLog = <T>(waiting: Promise<T>): Promise<T> =>
    waiting.catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\nthe agent's last log lines:\n${logs.slice(-40).map((l) => JSON.stringify(l)).join('\n')}`, { cause: err });
    });

  test('no standby section and no target: granted primary, it pushes nothing and says so', async () => {
    proxy.grant = { type: 'grant', epoch: 3, role: 'primary', reason: 'serving after failover', heartbeatSeq: null };
    proxy.push();
    const from = proxy.beats.length;
    await waitFor('heartbeats under the grant', () => beatsSince(from).length >= 10 && agent!.heartbeat!.role === 'primary', { timeoutMs: 10_000 });
    const s = agent!.engine.status();
    assert.equal(s.destination, null);
    assert.equal(agent!.engine.pushing, false);
    assert.deepEqual(readdirNames(a.root), []);
    assert.deepEqual(readdirNames(b.root), []);
    for (const hb of beatsSince(from)) {
      assert.equal(hb.sync.target, null);
      assert.equal(hb.sync.progress, null);
    }
    assert.ok(logs.some((l) => /nowhere to push/.test(l.msg)), 'the log says why nothing is pushed');
    const sync = await agent!.engine.syncNow(2_000);
    assert.equal(sync.ok, false);
    assert.match(sync.error ?? '', /nowhere to push/);
    const status = await run(STANDBY_CLI, ['status', '--agent', '--agent-url', `http://127.0.0.1:${agent!.status.port}`], {}, 20_000, '');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^pushing to  nowhere \(no standby configured, no target granted\)$/m);
  });

  test('a new target granted in the middle of a full pass: the pass to the old one is cut, every file that landed there is whole but the one in flight (short at its name: written in place), and it gets nothing more', async (t) => {
    const from = proxy.beats.length;
    proxy.grant = { type: 'grant', epoch: 3, role: 'primary', reason: 'restore to gpu-c', heartbeatSeq: null, target: c.grant };
    proxy.push();
    await withLog(waitFor('the full pass to C under way', () => beatsSince(from).find((hb) => hb.sync.target === 'gpu-c' && (hb.sync.progress?.files ?? 0) > 0), { timeoutMs: 60_000 }));
    proxy.grant = { type: 'grant', epoch: 3, role: 'primary', reason: 'restore to gpu-a', heartbeatSeq: null, target: a.grant };
    proxy.push();
    await waitFor('the agent on A', () => agent!.engine.status().destination?.target === 'gpu-a', { timeoutMs: 10_000 });
    await agent!.engine.settled(); // the pass that was under way when A was granted (C's, or A's own first)
    const source = snapshot(ws);
    const onC = snapshot(c.root);
    // what rsync was still writing: its temp files (.name.XXXXXX beside the file; .~tmp~ folders for delayed updates)
    const landed = Object.keys(onC).filter((p) => !p.split('/').includes('.~tmp~') && !/^\..+\.[A-Za-z0-9]{6}$/.test(p.split('/').at(-1)!));
    t.diagnostic(`C got ${landed.length} of ${Object.keys(source).length} entries before the switch`);
    // C's folder held nothing, so its full pass wrote in place: the file rsync was writing when the pass was cut may be
    // short at its own name (never anything else); every other file that landed is whole
    assert.ok(logs.some((l) => l.msg === 'rsync run done' && (l as { inplace?: boolean }).inplace === true), 'the full pass into the empty folder wrote in place');
    const short = landed.filter((p) => onC[p] !== source[p]);
    assert.ok(short.length <= 1, `at most the file in flight differs: ${short.join(', ')}`);
    for (const p of short) {
      const [got, want] = [readFileSync(join(c.root, p)), readFileSync(join(ws, p))];
      assert.ok(got.length < want.length && want.subarray(0, got.length).equals(got), `${p} on C is the start of the file, cut short`);
    }
    const connectionsToC = c.sshd.connections();
    cutC = { connections: connectionsToC, snapshot: onC, short: short[0] };
  });

  test('a grant naming target A: the whole workspace goes there, with progress in the heartbeats, then changes follow', async () => {
    const from = 0;
    await withLog(waitFor('target A ready', () => beatsSince(from).find((hb) => hb.sync.target === 'gpu-a' && hb.sync.ready), { timeoutMs: 60_000 }));
    assert.deepEqual(snapshot(a.root), snapshot(ws), 'A holds the whole workspace');
    const onA = beatsSince(from).filter((hb) => hb.sync.target === 'gpu-a');
    const moving = onA.filter((hb) => hb.sync.progress !== null && hb.sync.progress.files > 0);
    assert.ok(moving.length > 0, `a heartbeat during the full pass shows its progress: ${JSON.stringify(onA.map((hb) => hb.sync.progress))}`);
    for (const hb of moving) {
      const p = hb.sync.progress!;
      assert.ok(p.elapsedMs >= 0 && p.rateBps >= 0 && p.bytes >= 0);
      if (p.totalFiles !== null) assert.ok(p.files <= p.totalFiles, JSON.stringify(p));
    }
    const status = await run(STANDBY_CLI, ['status', '--agent', '--agent-url', `http://127.0.0.1:${agent!.status.port}`], {}, 20_000, '');
    assert.match(status.stdout, new RegExp(`^pushing to  target gpu-a ${a.grant.user}@127\\.0\\.0\\.1:${a.grant.port}:${a.root}$`, 'm'), status.stdout);
    assert.ok(logs.some((l) => /^full pass to target gpu-a .*: \d+ (of \d+ )?files/.test(l.msg)), 'the log says how far the restore got');
    const last = onA.at(-1)!;
    assert.equal(last.sync.progress, null, 'no progress once the pass is done');
    writeFileSync(join(ws, 'src/new-on-a.txt'), 'written while A is the target\n');
    await waitFor('the change on A', () => existsSync(join(a.root, 'src/new-on-a.txt')), { timeoutMs: 20_000 });
    // most of a tree deleted: the guard holds it on A (the next test's target starts without it)
    for (let d = 0; d < 5; d++) rmSync(join(ws, `src/d${d}`), { recursive: true });
    const held = proxy.beats.length;
    await waitFor('the deletions held on A', () => beatsSince(held).find((hb) => hb.sync.target === 'gpu-a' && hb.sync.held), { timeoutMs: 20_000 });
    assert.ok(existsSync(join(a.root, 'src/d0/f0.py')), 'nothing deleted on A');
  });

  test('a grant naming target B: B gets the whole workspace, afresh; A gets nothing more', async () => {
    const from = proxy.beats.length;
    proxy.grant = { type: 'grant', epoch: 3, role: 'primary', reason: 'restore to gpu-b', heartbeatSeq: null, target: b.grant };
    proxy.push();
    await withLog(waitFor('target B ready', () => beatsSince(from).find((hb) => hb.sync.target === 'gpu-b' && hb.sync.ready), { timeoutMs: 60_000 }));
    const connectionsToA = a.sshd.connections();
    const aBefore = snapshot(a.root);
    assert.deepEqual(snapshot(b.root), snapshot(ws), 'B holds the whole workspace (without what was deleted here)');
    assert.ok(beatsSince(from).filter((hb) => hb.sync.target === 'gpu-b').every((hb) => !hb.sync.held), "the guard does not hold the first full pass to an empty target, nor carry A's hold over");
    // the proxy's verify compares with where the agent pushes now: B, through its receiver
    proxy.send({ type: 'verify', id: 'verify-b' });
    const verified = await waitFor('the verify answer', () => proxy.answers.find((m) => m['id'] === 'verify-b'), { timeoutMs: 30_000 });
    assert.deepEqual(verified, { type: 'verified', id: 'verify-b', ok: true, total: 0, differences: [], error: null });
    const firstOnB = beatsSince(from).find((hb) => hb.sync.target === 'gpu-b')!;
    assert.equal(firstOnB.sync.ready, false, 'ready describes the new target only');
    assert.ok(firstOnB.sync.lastSeq <= 1, `the numbers start afresh: ${JSON.stringify(firstOnB.sync)}`);
    writeFileSync(join(ws, 'src/after-switch.txt'), 'written after the switch\n');
    await waitFor('the change on B', () => existsSync(join(b.root, 'src/after-switch.txt')), { timeoutMs: 20_000 });
    assert.ok(!existsSync(join(a.root, 'src/after-switch.txt')), 'A gets nothing after the switch');
    assert.deepEqual(snapshot(a.root), aBefore);
    assert.equal(a.sshd.connections(), connectionsToA, 'no ssh connection to A after the switch');
    assert.equal(c.sshd.connections(), cutC!.connections, 'nor to C, given up before A');
    assert.deepEqual(snapshot(c.root), cutC!.snapshot);
    // ...and it still guards the passes after the first
    for (let d = 5; d < 10; d++) rmSync(join(ws, `src/d${d}`), { recursive: true });
    const held = proxy.beats.length;
    await waitFor('the deletions held on B', () => beatsSince(held).find((hb) => hb.sync.target === 'gpu-b' && hb.sync.held), { timeoutMs: 20_000 });
    assert.ok(existsSync(join(b.root, 'src/d5/f0.py')), 'nothing deleted on B');
  });

  test('publicKey: in the first heartbeat of each connection, and only there', async () => {
    proxy.drop();
    await waitFor('a second connection with heartbeats', () => proxy.beats.filter((x) => x.connection === 2).length >= 3, { timeoutMs: 20_000 });
    for (const c of [1, 2]) {
      const beats = proxy.beats.filter((x) => x.connection === c).map((x) => x.hb);
      assert.equal(beats[0]!.publicKey, agentPub, `connection ${c}: its first heartbeat carries the key`);
      assert.ok(beats.slice(1).every((hb) => hb.publicKey === undefined), `connection ${c}: no other heartbeat does`);
    }
  });

  test('a target whose receiver was fenced at a newer epoch refuses: the agent stops pushing and reports it', async () => {
    const fence = await run(STANDBY_CLI, ['receive', '--fence', '5', '--wait-ms', '5000', '--state-dir', b.state], {}, 20_000, '');
    assert.equal(fence.code, 0, fence.stderr);
    writeFileSync(join(ws, 'src/after-fence.txt'), 'must not reach B\n');
    const from = proxy.beats.length;
    const refused = await waitFor('a heartbeat reporting the refusal', () => beatsSince(from).find((hb) => /refused this agent's epoch 3/.test(hb.sync.lastError ?? '')), { timeoutMs: 20_000 });
    assert.equal(refused.sync.target, 'gpu-b');
    assert.equal(agent!.engine.pushing, false);
    assert.ok(!existsSync(join(b.root, 'src/after-fence.txt')));
    // the proxy's grants of the refused epoch do not start it again
    const again = proxy.beats.length;
    await waitFor('more heartbeats', () => beatsSince(again).length >= 5, { timeoutMs: 10_000 });
    assert.equal(agent!.engine.pushing, false);
    assert.ok(!existsSync(join(b.root, 'src/after-fence.txt')));
  });

  test('a target whose address ssh would read as an option is refused: nothing runs, the heartbeat says why', async () => {
    const marker = join(top, 'proxy-command-ran');
    proxy.grant = { type: 'grant', epoch: 6, role: 'primary', reason: 'a hostile grant', heartbeatSeq: null, target: { ...a.grant, id: 'gpu-evil', host: `-oProxyCommand=touch ${marker}` } };
    proxy.push();
    const from = proxy.beats.length;
    const told = await waitFor('the refusal in a heartbeat', () => beatsSince(from).find((hb) => /cannot take up target gpu-evil/.test(hb.sync.lastError ?? '')), { timeoutMs: 10_000 });
    assert.equal(told.sync.target, null);
    assert.equal(agent!.engine.status().destination, null);
    assert.equal(agent!.engine.pushing, false);
    assert.ok(!existsSync(marker), 'no ssh ran with the address as an option');
  });

  test('C granted again after its cut pass: its folder holds files, so nothing is written in place, and a file the cut left short is whole again', async () => {
    // the file the cut left short at its name, or one made so as a cut leaves it (the cut may have fallen between files)
    const kept = (p: string | undefined): p is string => p !== undefined && existsSync(join(ws, p)); // the tests above deleted some folders here
    const short = kept(cutC!.short) ? cutC!.short : Object.keys(cutC!.snapshot).find((p) => p.endsWith('.py') && kept(p));
    assert.ok(short, `C got a file the workspace still has: ${Object.keys(cutC!.snapshot).length} entries`);
    const want = readFileSync(join(ws, short));
    writeFileSync(join(c.root, short), want.subarray(0, want.length >> 1));
    const from = logs.length;
    proxy.grant = { type: 'grant', epoch: 7, role: 'primary', reason: 'restore to gpu-c again', heartbeatSeq: null, target: c.grant };
    proxy.push();
    await withLog(waitFor('the short file whole on C', () => readFileSync(join(c.root, short)).equals(want) || undefined, { timeoutMs: 60_000 }));
    // the run that wrote it logs once rsync has exited
    const runs = await waitFor('its run logged', () => {
      const done = logs.slice(from).filter((l) => l.msg === 'rsync run done');
      return done.length > 0 ? done : undefined;
    }, { timeoutMs: 10_000 });
    assert.ok(runs.every((l) => (l as { inplace?: boolean }).inplace !== true), `no run into C's folder wrote in place: ${JSON.stringify(runs)}`);
  });
});

function readdirNames(dir: string): string[] {
  return Object.keys(snapshot(dir));
}

describe('back to the configured standby: a grant of primary without a target', () => {
  let top: string;
  let ws: string;
  let proxy: TestProxy;
  let agent: Agent | undefined;
  let standby: Target;
  let a: Target;

  before(async () => {
    top = mkdtempSync(join(tmpdir(), 'standby-restore-back-'));
    ws = join(top, 'workspace');
    mkdirSync(join(ws, 'src'), { recursive: true });
    for (let f = 0; f < 50; f++) writeFileSync(join(ws, `src/f${f}.py`), `# ${f}\n`);
    const { key, pub } = agentKey(top, 'gpu-1');
    standby = await startTarget(top, 'cpu-1', pub);
    a = await startTarget(top, 'gpu-a', pub);
    proxy = await startTestProxy();
    const config = agentConfig(top, 'gpu-1', ws, proxy, {
      standby: { host: standby.sshd.host, port: standby.sshd.port, user: standby.sshd.user, identityFile: key, path: standby.root, sshOptions: standby.sshd.sshOptions },
      sync: { delayMs: 50, retryMinMs: 50, retryMaxMs: 500 },
    });
    agent = await startAgent(config, pino({ level: 'silent' }), { statusEveryMs: 60_000 });
  });

  after(async () => {
    await agent?.close();
    await proxy?.close();
    await standby?.sshd.close();
    await a?.sshd.close();
    rmSync(top, { recursive: true, force: true });
  });

  const beatsSince = (from: number) => proxy.beats.slice(from).map((x) => x.hb);

  test('standby, then target A, then the standby again with a full pass: each gets what was written while it was the destination and after', async () => {
    proxy.grant = { type: 'grant', epoch: 2, role: 'primary', reason: 'primary', heartbeatSeq: null };
    proxy.push();
    await waitFor('the standby ready', () => proxy.beats.find((x) => x.hb.sync.target === null && x.hb.sync.ready), { timeoutMs: 30_000 });
    assert.deepEqual(snapshot(standby.root), snapshot(ws));

    let from = proxy.beats.length;
    proxy.grant = { type: 'grant', epoch: 2, role: 'primary', reason: 'restore to gpu-a', heartbeatSeq: null, target: a.grant };
    proxy.push();
    await waitFor('target A ready', () => beatsSince(from).find((hb) => hb.sync.target === 'gpu-a' && hb.sync.ready), { timeoutMs: 30_000 });
    writeFileSync(join(ws, 'src/while-on-a.txt'), 'written while A was the destination\n');
    await waitFor('the change on A', () => existsSync(join(a.root, 'src/while-on-a.txt')), { timeoutMs: 20_000 });
    assert.ok(!existsSync(join(standby.root, 'src/while-on-a.txt')), 'the standby was not the destination');

    from = proxy.beats.length;
    proxy.grant = { type: 'grant', epoch: 2, role: 'primary', reason: 'back to the standby', heartbeatSeq: null };
    proxy.push();
    await waitFor('the standby ready again', () => beatsSince(from).find((hb) => hb.sync.target === null && hb.sync.ready), { timeoutMs: 30_000 });
    assert.equal(beatsSince(from).find((hb) => hb.sync.target === null)!.sync.ready, false, 'its numbers start afresh too');
    assert.deepEqual(snapshot(standby.root), snapshot(ws), 'the full pass brought what was written while A was the destination');
    writeFileSync(join(ws, 'src/back.txt'), 'written after the return\n');
    await waitFor('the change on the standby', () => existsSync(join(standby.root, 'src/back.txt')), { timeoutMs: 20_000 });
    assert.ok(!existsSync(join(a.root, 'src/back.txt')), 'A gets nothing after the return');
    assert.deepEqual(agent!.engine.status().destination, { target: null, host: standby.sshd.host, port: standby.sshd.port, user: standby.sshd.user, path: standby.root });
  });
});
