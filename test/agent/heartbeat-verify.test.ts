// The agent's side of `standby verify --from-proxy`: a verify request from
// the proxy runs the comparison here and answers under the request's id; a
// second request while one runs is answered at once with a refusal, so the
// admin cannot stack whole-workspace checksum runs on the GPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentOnSocket } from '../fixtures/agent-socket.ts';
import { waitFor } from '../fixtures/wait-for.ts';

test('verify requests: answered under their id with the differences; one at a time', async (t) => {
  const { dir, proxy, client } = await agentOnSocket(t, 'standby-hb-verify-', (dir, url) => ({ hostId: 'gpu-1', workspace: dir, standby: { host: '127.0.0.1', path: '/nonexistent' }, proxy: { url, token: 'agent-token-gpu-1' } }));
  const answers = (): Record<string, unknown>[] => proxy.received.filter((m) => m['type'] === 'verified');
  let finish: (() => void) | undefined;
  let runs = 0;
  client.verifier = () => {
    runs++;
    return new Promise((resolve) => (finish = () => resolve([{ root: dir, path: 'extra.txt', kind: 'extra on standby' }])));
  };
  client.start();
  const ws = await proxy.connected();
  ws.send(JSON.stringify({ type: 'verify', id: 'first' }));
  await waitFor('the first verify running', () => runs === 1, { timeoutMs: 5_000 });
  ws.send(JSON.stringify({ type: 'verify', id: 'second' }));
  const refused = await waitFor('the second answered', () => answers().find((a) => a['id'] === 'second'), { timeoutMs: 5_000 });
  assert.deepEqual(refused, { type: 'verified', id: 'second', ok: false, total: 0, differences: [], error: 'a verify is already running on this host: try again when it is done' });
  assert.equal(runs, 1, 'the second did not start a comparison');
  finish!();
  const first = await waitFor('the first answered', () => answers().find((a) => a['id'] === 'first'), { timeoutMs: 5_000 });
  assert.deepEqual(first, { type: 'verified', id: 'first', ok: true, total: 1, differences: [{ root: dir, path: 'extra.txt', kind: 'extra on standby' }], error: null });
  ws.send(JSON.stringify({ type: 'verify', id: 'third' }));
  await waitFor('a third, after the first, runs', () => runs === 2, { timeoutMs: 5_000 });
  finish!();
  await waitFor('the third answered', () => answers().find((a) => a['id'] === 'third'), { timeoutMs: 5_000 });
});
