// The agent's side of a switch back's freeze, through the heartbeat socket:
// a freeze request stops the host's user processes (a real writer tree) and
// is answered under its id; heartbeats then carry frozen: true; a lift
// continues them; closing the client (the agent stopping) thaws; an agent
// without a freeze section answers that it has nothing to freeze.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { Freezer } from '../../agent/freeze.ts';
import { agentOnSocket, type Message } from '../fixtures/agent-socket.ts';
import { startAppendWriters, type AppendWriters } from '../fixtures/append-writers.ts';
import { waitFor } from '../fixtures/wait-for.ts';

/** A proxy's agent socket on loopback and an agent's heartbeat client connected to it, with `freeze` settings. */
async function connected(t: TestContext, freeze: Record<string, unknown> | undefined) {
  const { dir, proxy, client, config } = await agentOnSocket(t, 'standby-hb-freeze-', (dir, url) => ({
    hostId: 'standby-1',
    workspace: dir,
    standby: { host: '127.0.0.1', path: '/nonexistent' },
    proxy: { url, token: 'agent-token-standby-1', heartbeatIntervalMs: 50 },
    ...(freeze ? { freeze } : {}),
  }));
  client.freezer = new Freezer(config.freeze, pino({ level: 'silent' }));
  const received = proxy.received;
  client.start();
  const ws = await proxy.connected();
  const answer = (id: string) => waitFor(`the answer to ${id}`, () => received.find((m) => m['type'] === 'frozen' && m['id'] === id), { timeoutMs: 10_000 });
  /** the next heartbeat after now */
  const nextBeat = async (): Promise<Message> => {
    const from = received.length;
    return waitFor('a heartbeat', () => received.slice(from).find((m) => m['type'] === 'heartbeat'), { timeoutMs: 5_000 });
  };
  return { dir, ws, client, answer, nextBeat };
}

test('freeze over the socket: answered under its id, heartbeats say frozen, a lift continues, a close thaws', async (t) => {
  const writersDir = mkdtempSync(join(tmpdir(), 'standby-hb-freeze-w-'));
  const started: AppendWriters[] = [];
  // one hook: the writers end before their folder goes
  t.after(async () => {
    for (const w of started) await w.kill();
    rmSync(writersDir, { recursive: true, force: true });
  });
  const w = await startAppendWriters(writersDir, 'code-server');
  started.push(w);
  const control = await startAppendWriters(writersDir, 'control');
  started.push(control);
  const { ws, client, answer, nextBeat } = await connected(t, { pidFiles: [w.pidFile] });
  assert.equal((await nextBeat())['frozen'], false);

  ws.send(JSON.stringify({ type: 'freeze', id: 'f1', frozen: true, maxMs: 60_000 }));
  const frozen = await answer('f1');
  assert.equal(frozen['ok'], true, String(frozen['error']));
  assert.equal(frozen['frozen'], true);
  assert.ok((frozen['processes'] as number) >= 2);
  // a process in uninterruptible I/O (D) when the SIGSTOP came stops once its write returns
  await w.stopped();
  assert.equal((await nextBeat())['frozen'], true, 'heartbeats carry frozen');
  const before = w.sizes();
  await control.wrote(20);
  assert.deepEqual(w.sizes(), before, 'nothing written while frozen');

  ws.send(JSON.stringify({ type: 'freeze', id: 'f2', frozen: true }));
  const again = await answer('f2');
  assert.deepEqual([again['ok'], again['frozen']], [true, true], 'a freeze while frozen is fine (it extends)');

  ws.send(JSON.stringify({ type: 'freeze', id: 'lift', frozen: false }));
  const lifted = await answer('lift');
  // every held process still there is continued; one of the writers' short-lived children that was
  // exiting as the SIGSTOP came is gone by then, and not counted (a fresh-clone run: 4 stopped, 3 continued)
  const continued = lifted['processes'] as number;
  assert.ok(continued >= 1 && continued <= (frozen['processes'] as number), `continued ${continued} of the ${String(frozen['processes'])} stopped`);
  assert.deepEqual({ ...lifted, processes: 0 }, { type: 'frozen', id: 'lift', ok: true, frozen: false, processes: 0, error: null });
  await w.wrote(5);
  assert.equal((await nextBeat())['frozen'], false);

  ws.send(JSON.stringify({ type: 'freeze', id: 'f3', frozen: true }));
  assert.equal((await answer('f3'))['frozen'], true);
  await w.stopped();
  client.close(); // the agent stopping
  await w.wrote(5);
  assert.ok(!w.states().includes('T'), `running again after the close: ${w.states().join(',')}`);
});

test('no freeze section: the answer names the fields to set, and nothing is frozen', async (t) => {
  const { ws, answer, nextBeat } = await connected(t, undefined);
  ws.send(JSON.stringify({ type: 'freeze', id: 'f1', frozen: true }));
  assert.deepEqual(await answer('f1'), { type: 'frozen', id: 'f1', ok: false, frozen: false, processes: 0, error: 'nothing to freeze: set freeze.cgroup or freeze.pidFiles in agent.json' });
  assert.equal((await nextBeat())['frozen'], false);
});
