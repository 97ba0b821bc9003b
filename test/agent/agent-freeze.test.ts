// A frozen code-server never outlives its agent frozen: the real
// `standby agent` process, connected to a proxy's agent socket on loopback,
// freezes a writer tree on request; then the agent is stopped with SIGTERM
// (its close thaws), SIGKILLed (its freeze guard thaws), or itself SIGSTOPped
// past the freeze's maxMs (the guard thaws). No grant is ever given: the agent
// pushes nothing and needs no standby.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { startAgent, type Agent } from '../fixtures/agent-process.ts';
import { startAgentSocket, type Message } from '../fixtures/agent-socket.ts';
import { processState, startAppendWriters, type AppendWriters } from '../fixtures/append-writers.ts';
import { waitFor } from '../fixtures/wait-for.ts';

interface World {
  agent: Agent;
  writers: AppendWriters;
  control: AppendWriters;
  /** sends a freeze request and resolves with the agent's answer */
  freeze(id: string, body: Record<string, unknown>): Promise<Message>;
}

async function world(t: TestContext, maxMs: number): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'standby-agent-freeze-'));
  const closers: (() => Promise<void>)[] = [];
  // one hook, in this order: the agent and the writers end before their folder goes
  t.after(async () => {
    for (const close of closers) await close();
    rmSync(dir, { recursive: true, force: true });
  });
  const writers = await startAppendWriters(dir, 'code-server');
  closers.push(() => writers.kill());
  const control = await startAppendWriters(dir, 'control');
  closers.push(() => control.kill());
  const proxy = await startAgentSocket();
  t.after(() => proxy.close());
  const workspace = join(dir, 'workspace');
  mkdirSync(workspace);
  const identityFile = join(dir, 'id_unused');
  writeFileSync(identityFile, 'never read: no grant, no push\n', { mode: 0o600 });
  const agent = await startAgent({
    src: workspace,
    dst: '/nonexistent',
    dir,
    target: { host: '127.0.0.1', port: 9, user: 'nobody', identityFile, sshOptions: [] },
    settings: {
      hostId: 'standby-1',
      proxy: { url: proxy.url, token: 'agent-token-standby-1', heartbeatIntervalMs: 100 },
      freeze: { pidFiles: [writers.pidFile], maxMs },
    },
  });
  closers.unshift(async () => {
    agent.kill('SIGCONT');
    await agent.stop();
  });
  let exited = false;
  void agent.exited.then(() => (exited = true));
  await proxy.connected({ timeoutMs: 20_000, failIf: () => (exited ? `the agent exited: ${agent.logTail()}` : undefined) });
  return {
    agent,
    writers,
    control,
    async freeze(id, body) {
      proxy.send({ type: 'freeze', id, ...body });
      return waitFor(`the answer to ${id}`, () => proxy.received.find((m) => m['type'] === 'frozen' && m['id'] === id), { timeoutMs: 10_000 });
    },
  };
}

async function frozen(w: World, maxMs?: number): Promise<void> {
  const answer = await w.freeze('f1', { frozen: true, ...(maxMs !== undefined ? { maxMs } : {}) });
  assert.equal(answer['ok'], true, `${String(answer['error'])}\n${w.agent.logTail()}`);
  assert.equal(answer['frozen'], true);
  await w.writers.stopped(maxMs === undefined ? 10_000 : maxMs / 2);
  if (maxMs !== undefined) return; // a short freeze may lift while the control writes: the states say enough
  const before = w.writers.sizes();
  await w.control.wrote(10);
  assert.deepEqual(w.writers.sizes(), before, 'nothing written while frozen');
}

test('SIGTERM to a frozen agent: it thaws the host before it exits', async (t) => {
  const w = await world(t, 60_000);
  await frozen(w);
  const stopped = await w.agent.stop();
  assert.equal(stopped.code, 0, w.agent.logTail());
  assert.ok(!w.writers.states().includes('T'), `running at once after the agent's exit: ${w.writers.states().join(',')}`);
  await w.writers.wrote(5);
  assert.match(w.agent.logTail(), /thawed the host's user processes/);
});

test('SIGKILL to a frozen agent: its freeze guard thaws the host', async (t) => {
  const w = await world(t, 60_000);
  await frozen(w);
  w.agent.kill('SIGKILL');
  await w.agent.exited;
  // the guard sees its pipe end: no wait for maxMs (60 s)
  await w.writers.wrote(5, 10_000);
  assert.ok(!w.writers.states().includes('T'));
  await waitFor("the guard's line in the agent's stderr", () => /freeze guard: thawed the host's user processes.*the agent is gone/.test(w.agent.logTail()), { timeoutMs: 5_000 });
});

test('a stopped (hung) frozen agent: the guard thaws the host once maxMs has passed', async (t) => {
  const w = await world(t, 60_000);
  await frozen(w, 5_000);
  w.agent.kill('SIGSTOP'); // the agent's own timer cannot run
  await waitFor('the agent stopped', () => processState(w.agent.pid) === 'T', { timeoutMs: 5_000 });
  // still frozen once the agent is stopped: what thaws the writers now is not the agent
  assert.deepEqual(w.writers.states(), ['T', 'T']);
  await w.writers.wrote(5, 15_000);
  await waitFor("the guard's line in the agent's stderr", () => /freeze guard: thawed the host's user processes.*maxMs/.test(w.agent.logTail()), { timeoutMs: 5_000 });
  w.agent.kill('SIGCONT');
});
