// ForwardedHeaders.apply on its own: whatever the casing a client sends a
// hop-by-hop or forwarded header in, it is removed (its fast path rules names
// out by length and first letter before it lowercases them); a trusted
// proxy's forwarded headers are kept; nothing else is touched.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { ForwardedHeaders } from '../../proxy/forwarded-headers.ts';

const HOP = ['Connection', 'Keep-Alive', 'Proxy-Connection', 'Proxy-Authorization', 'Proxy-Authenticate', 'TE', 'Trailer', 'Upgrade'];
const FORWARDED = ['X-Forwarded-For', 'X-Forwarded-Host', 'X-Forwarded-Proto', 'X-Forwarded-Port', 'X-Real-IP', 'Forwarded'];
/** headers of the same lengths and first letters as removable ones, which must stay */
const LOOKALIKES = ['Content-Type', 'User-Agent', 'X-Forwarded-Bye', 'Trailers', 'Keep-Alivex', 'Fforwarded', 'Upgrades', 'Tf', 'Referer', 'X-Real-IQ'];

function casings(name: string): string[] {
  const mixed = [...name].map((c, i) => (i % 2 ? c.toUpperCase() : c.toLowerCase())).join('');
  return [name, name.toLowerCase(), name.toUpperCase(), mixed];
}

/** A request as Node parses it: rawHeaders as sent, headers lowercased (duplicates joined). */
function request(peer: string, raw: [string, string][]): IncomingMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of raw) {
    const key = name.toLowerCase();
    headers[key] = headers[key] === undefined ? value : `${headers[key]}, ${value}`;
  }
  return { socket: { remoteAddress: peer }, rawHeaders: raw.flat(), headers } as unknown as IncomingMessage;
}

test('hop-by-hop and client forwarded headers are removed in any casing; look-alikes and the rest stay', () => {
  const f = new ForwardedHeaders([], false);
  for (const name of [...HOP, ...FORWARDED]) {
    for (const spelled of casings(name)) {
      const req = request('203.0.113.7', [['Host', 'dev.example.com'], [spelled, 'x'], ...LOOKALIKES.map((l) => [l, 'kept'] as [string, string])]);
      assert.equal(f.apply(req, false), true);
      const h = req.headers as Record<string, string | undefined>;
      const lower = name.toLowerCase();
      if (lower === 'x-forwarded-for') assert.equal(h[lower], '203.0.113.7', spelled);
      else if (lower === 'x-forwarded-host') assert.equal(h[lower], 'dev.example.com', spelled);
      else if (lower === 'x-forwarded-proto') assert.equal(h[lower], 'http', spelled);
      else assert.equal(h[lower], undefined, spelled);
      for (const l of LOOKALIKES) assert.equal(h[l.toLowerCase()], 'kept', `${l} beside ${spelled}`);
      assert.equal(h.host, 'dev.example.com');
    }
  }
});

test('headers named in Connection go too, in any casing, but never Host or the framing headers', () => {
  const f = new ForwardedHeaders([], false);
  const req = request('203.0.113.7', [['HOST', 'dev.example.com'], ['cOnNeCtIoN', 'X-Secret, host, Content-Length'], ['X-SECRET', 's'], ['Content-Length', '5']]);
  f.apply(req, false);
  const h = req.headers as Record<string, string | undefined>;
  assert.equal(h['x-secret'], undefined);
  assert.equal(h.connection, undefined);
  assert.equal(h.host, 'dev.example.com');
  assert.equal(h['content-length'], '5');
});

test("a trusted proxy's forwarded headers are kept and extended; its hop-by-hop headers still go", () => {
  const f = new ForwardedHeaders(['10.0.0.0/8'], true);
  const req = request('10.1.2.3', [['Host', 'dev.example.com'], ['x-forwarded-for', '198.51.100.1'], ['X-FORWARDED-PROTO', 'https'], ['X-Real-IP', '198.51.100.1'], ['Keep-Alive', 'timeout=5'], ['TE', 'trailers']]);
  f.apply(req, false);
  const h = req.headers as Record<string, string | undefined>;
  assert.equal(h['x-forwarded-for'], '198.51.100.1, 10.1.2.3');
  assert.equal(h['x-forwarded-proto'], 'https');
  assert.equal(h['x-real-ip'], '198.51.100.1');
  assert.equal(h['x-forwarded-host'], 'dev.example.com');
  assert.equal(h['keep-alive'], undefined);
  assert.equal(h.te, undefined);
});

test('a WebSocket upgrade keeps Connection: Upgrade and Upgrade: websocket, rebuilt', () => {
  const f = new ForwardedHeaders([], false);
  const req = request('203.0.113.7', [['Host', 'dev.example.com'], ['Connection', 'keep-alive, Upgrade'], ['Upgrade', 'websocket'], ['X-Forwarded-Host', 'evil.example']]);
  f.apply(req, true);
  const h = req.headers as Record<string, string | undefined>;
  assert.equal(h.connection, 'Upgrade');
  assert.equal(h.upgrade, 'websocket');
  assert.equal(h['x-forwarded-host'], 'dev.example.com');
});
