// /_standby/events, the stream the editor's injected script follows: what it
// says (fixed words, nothing internal), that it moves with the route, that it
// needs the session when the login is on, its global cap, and that the
// proxy's shutdown ends every stream.
import assert from 'node:assert/strict';
import { Agent, get } from 'node:http';
import { test } from 'node:test';
import { SESSION_COOKIE } from '../../proxy/login.ts';
import type { EditorState } from '../../proxy/editor-events.ts';
import { startProxyWithBackends, type ProxyWithBackends } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const PASSWORD = 'events-test-password';
const fence = async () => ({ waitedMs: 0, killed: 0 });

/** An open stream: the states it carried so far, and its raw text. */
interface Stream {
  status: number;
  type: string;
  text: () => string;
  states: () => EditorState[];
  ended: Promise<void>;
  close(): void;
}

/** Opens the stream with node:http (on `agent`'s connection when given: one that already carried code-server traffic). */
function openStream(url: string, headers: Record<string, string> = {}, agent?: Agent): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { accept: 'text/event-stream', ...headers }, ...(agent ? { agent } : {}) }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('error', () => undefined);
      const ended = new Promise<void>((done) => res.once('close', () => done()));
      resolve({
        status: res.statusCode ?? 0,
        type: String(res.headers['content-type'] ?? ''),
        text: () => text,
        states: () => [...text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]!) as EditorState),
        ended,
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}

test('the stream says the phase, the side, readiness and a generation, in fixed words; a route move changes the generation', { timeout: 30_000 }, async (t) => {
  const world: ProxyWithBackends = await startProxyWithBackends({ fence, settings: { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 10 } } });
  t.after(() => world.close());
  // one connection: it carries a request to the GPU's code-server, then the stream (the switch closes the GPU's connections, not this one)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const whoami = await new Promise<string>((resolve, reject) => get(`${world.proxy.url}/whoami`, { agent }, (res) => {
    let body = '';
    res.on('data', (d: Buffer) => (body += d.toString()));
    res.on('end', () => resolve(body));
  }).on('error', reject));
  assert.match(whoami, /gpu/);
  const stream = await openStream(`${world.proxy.url}/_standby/events`, {}, agent);
  t.after(() => stream.close());
  assert.equal(stream.status, 200);
  assert.equal(stream.type, 'text/event-stream; charset=utf-8');
  await waitFor('the first state', () => stream.states().length > 0);
  assert.match(stream.text(), /^retry: \d+\n\n/);
  const first = stream.states()[0]!;
  assert.deepEqual(Object.keys(first).sort(), ['generation', 'message', 'phase', 'ready', 'serving', 'suspect']);
  assert.equal(first.serving, 'primary');
  assert.match(first.generation, /^[A-Za-z0-9_-]{16}$/);

  assert.equal(world.proxy.failover.manual('test: move the route').accepted, true);
  await waitFor('the standby serves, in the stream', () => stream.states().some((s) => s.phase === 'failed_over' && s.serving === 'standby' && s.ready));
  const states = stream.states();
  const moved = states.find((s) => s.serving === 'standby')!;
  assert.notEqual(moved.generation, first.generation, 'the route moved: a new generation');
  assert.ok(states.some((s) => s.phase === 'failing_over' && s.serving === null && !s.ready), 'the switch itself was told');
  // nothing internal: no host ids, no addresses, no epochs by name
  for (const word of ['gpu-1', 'cpu-1', '127.0.0.1', 'epoch', world.gpu.url, world.cpu.url]) assert.ok(!stream.text().includes(word), `the stream says ${JSON.stringify(word)}`);
});

test('with the login on, the stream needs the session; without it, 401', { timeout: 30_000 }, async (t) => {
  const world = await startProxyWithBackends({ fence, settings: { login: { password: PASSWORD } } });
  t.after(() => world.close());
  const refused = await fetch(`${world.proxy.url}/_standby/events`, { headers: { accept: 'text/event-stream' } });
  assert.equal(refused.status, 401);
  await refused.text();
  const login = await fetch(`${world.proxy.url}/_standby/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `password=${PASSWORD}&next=/` });
  const cookie = /standby_session=[^;]+/.exec(login.headers.get('set-cookie') ?? '')?.[0];
  assert.ok(cookie?.startsWith(`${SESSION_COOKIE}=`), 'logged in');
  const stream = await openStream(`${world.proxy.url}/_standby/events`, { cookie: cookie! });
  t.after(() => stream.close());
  assert.equal(stream.status, 200);
  await waitFor('a state', () => stream.states().length > 0);
  // the script itself tells nothing: served without a session
  const script = await fetch(`${world.proxy.url}/_standby/editor.js`);
  assert.equal(script.status, 200);
  assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
  assert.match(script.headers.get('cache-control') ?? '', /max-age=\d+/);
  assert.match(await script.text(), /EventSource/);
});

test('streams are capped in all (limits.maxEventStreams): one more gets 503 with Retry-After; the shutdown ends every stream', { timeout: 30_000 }, async (t) => {
  const world = await startProxyWithBackends({ fence, settings: { limits: { maxEventStreams: 2 } } });
  let closed = false;
  t.after(async () => {
    if (!closed) await world.close();
  });
  const streams = [await openStream(`${world.proxy.url}/_standby/events`), await openStream(`${world.proxy.url}/_standby/events`)];
  t.after(() => streams.forEach((s) => s.close()));
  assert.deepEqual(streams.map((s) => s.status), [200, 200]);
  const third = await fetch(`${world.proxy.url}/_standby/events`);
  assert.equal(third.status, 503);
  assert.ok(Number(third.headers.get('retry-after')) > 0);
  await third.text();

  // one closes: its place is free again
  streams[0]!.close();
  await streams[0]!.ended;
  const again = await waitFor('a place free again', async () => {
    const s = await openStream(`${world.proxy.url}/_standby/events`);
    if (s.status === 200) return s;
    s.close();
    return undefined;
  });
  assert.equal(again.status, 200);
  streams.push(again);

  const started = performance.now();
  closed = true;
  await world.close();
  await Promise.all([streams[1]!.ended, again.ended]);
  assert.ok(performance.now() - started < 5_000, 'every stream ended with the shutdown');
});
