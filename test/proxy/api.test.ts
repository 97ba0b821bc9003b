// The proxy's error answers speak one vocabulary: every refusal of the admin
// API, enrollment, the agent socket and the downloads carries a
// STANDBY_ERR_* code from core/errors.ts with that code's HTTP status. A
// request the proxy cannot read is STANDBY_ERR_BAD_REQUEST, never
// STANDBY_ERR_CONFIG_INVALID (that one is for the proxy's own config).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ErrorCodes, type ErrorCode } from '../../core/errors.ts';
import { ADMIN_TOKEN, connectAgent, startTestProxy, type TestProxy } from '../fixtures/proxy.ts';

interface Case {
  name: string;
  method: string;
  path: string;
  /** the admin token unless false */
  token?: false | string;
  body?: string;
  status: number;
  code: ErrorCode;
  message?: RegExp;
  allow?: string;
}

const API = '/_standby/api/v1';

const CASES: Case[] = [
  { name: 'an unknown API endpoint', method: 'GET', path: `${API}/nothing-here`, status: 404, code: 'STANDBY_ERR_NOT_FOUND', message: /no such API endpoint: .*nothing-here \(there are status,/ },
  { name: 'an unknown endpoint outside the API, without a token', method: 'GET', path: '/_standby/nothing-here', token: false, status: 404, code: 'STANDBY_ERR_NOT_FOUND', message: /no such proxy endpoint/ },
  { name: 'an unknown action on a host', method: 'POST', path: `${API}/hosts/gpu-1/rename`, status: 404, code: 'STANDBY_ERR_NOT_FOUND', message: /hosts\/ID\/revoke and hosts\/ID\/rotate/ },
  { name: 'an unknown host', method: 'POST', path: `${API}/hosts/gpu-9/revoke`, status: 404, code: 'STANDBY_ERR_NOT_FOUND', message: /no host gpu-9/ },
  { name: 'a body that is not JSON', method: 'POST', path: `${API}/hosts`, body: '{"id": "gpu-2"', status: 400, code: 'STANDBY_ERR_BAD_REQUEST', message: /not JSON/ },
  { name: 'a body over 64 KiB', method: 'POST', path: `${API}/hosts`, body: JSON.stringify({ id: 'gpu-2', pad: 'x'.repeat(70_000) }), status: 400, code: 'STANDBY_ERR_BAD_REQUEST', message: /over 64 KiB/ },
  { name: 'a body that fails the schema', method: 'POST', path: `${API}/hosts`, body: JSON.stringify({ id: 'gpu-2', ttlSeconds: 'an hour' }), status: 400, code: 'STANDBY_ERR_BAD_REQUEST', message: /^invite: ttlSeconds: / },
  { name: 'a host id outside the grammar', method: 'POST', path: `${API}/hosts`, body: JSON.stringify({ id: 'gpu 1' }), status: 400, code: 'STANDBY_ERR_BAD_REQUEST', message: /host id "gpu 1": expected 1-63 letters/ },
  { name: "a rotation's bad grace", method: 'POST', path: `${API}/hosts/gpu-1/rotate`, body: JSON.stringify({ graceSeconds: -1 }), status: 400, code: 'STANDBY_ERR_BAD_REQUEST', message: /^rotate: graceSeconds: at least 0 seconds/ },
  { name: 'a switch-back body that is not JSON', method: 'POST', path: `${API}/switch-back`, body: '[', status: 400, code: 'STANDBY_ERR_BAD_REQUEST', message: /not JSON/ },
  { name: 'a wrong method', method: 'DELETE', path: `${API}/status`, status: 405, code: 'STANDBY_ERR_METHOD_NOT_ALLOWED', allow: 'GET' },
  { name: 'enroll with GET', method: 'GET', path: '/_standby/enroll', token: false, status: 405, code: 'STANDBY_ERR_METHOD_NOT_ALLOWED', allow: 'POST' },
  { name: 'no token', method: 'GET', path: `${API}/status`, token: false, status: 401, code: 'STANDBY_ERR_UNAUTHORIZED' },
  { name: 'an abort with no failover under way', method: 'POST', path: `${API}/failover/abort`, status: 409, code: 'STANDBY_ERR_CONFLICT', message: /^no abort: no failover is under way/ },
  { name: 'a switch back while the GPU serves', method: 'POST', path: `${API}/switch-back`, body: '{}', status: 409, code: 'STANDBY_ERR_CONFLICT', message: /^no switch back: the GPU already serves/ },
  { name: 'a verify with no agent connected', method: 'POST', path: `${API}/verify`, status: 503, code: 'STANDBY_ERR_AGENT_UNREACHABLE', message: /agent of gpu-1 is not connected/ },
];

describe('error answers carry STANDBY_ERR_* codes', () => {
  let proxy: TestProxy;
  before(async () => {
    // dead backends: nothing serves, and nothing fails over in the test's time
    proxy = await startTestProxy({ primaryUrl: 'http://127.0.0.1:1', standbyUrl: 'http://127.0.0.1:2', settings: { detector: { heartbeatIntervalMs: 60_000, missedHeartbeats: 100 } } });
  });
  after(async () => {
    await proxy?.close();
  });

  for (const c of CASES) {
    test(`${c.name}: ${c.status} ${c.code}`, async () => {
      const token = c.token === undefined ? ADMIN_TOKEN : c.token;
      const res = await fetch(`${proxy.url}${c.path}`, {
        method: c.method,
        headers: { ...(token === false ? {} : { authorization: `Bearer ${token}` }), ...(c.body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(c.body === undefined ? {} : { body: c.body }),
        signal: AbortSignal.timeout(5_000),
      });
      const text = await res.text();
      assert.equal(res.status, c.status, text);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const body = JSON.parse(text) as { error: { code: string; message: string } };
      assert.equal(body.error.code, c.code, text);
      assert.equal(typeof body.error.message, 'string');
      if (c.message) assert.match(body.error.message, c.message);
      if (c.allow) assert.equal(res.headers.get('allow'), c.allow);
    });
  }

  test('the code names its status: every code the cases meet answers with ErrorCodes[code].status', () => {
    for (const c of CASES) assert.equal(ErrorCodes[c.code].status, c.status, c.name);
  });

  test('enrollment: a body that fails the schema or holds no ssh key is STANDBY_ERR_BAD_REQUEST, and the invitation stays usable', async () => {
    const invited = await proxy.api('hosts', { method: 'POST', body: JSON.stringify({ id: 'gpu-3', ttlSeconds: 600 }) });
    assert.equal(invited.status, 201, await invited.clone().text());
    const { token } = (await invited.json()) as { token: string };
    for (const [body, message] of [[{ hostname: 'no key' }, /the enrollment request is not \{publicKey, hostname\?\}/], [{ publicKey: 'not a key' }, /the enrollment's publicKey "not a key"\.\.\. is not one ssh public key line/]] as const) {
      const res = await fetch(`${proxy.url}/_standby/enroll`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5_000) });
      const text = await res.text();
      assert.equal(res.status, 400, text);
      const answer = JSON.parse(text) as { error: { code: string; message: string } };
      assert.equal(answer.error.code, 'STANDBY_ERR_BAD_REQUEST', text);
      assert.match(answer.error.message, message);
    }
    const listed = ((await (await proxy.api('hosts')).json()) as { hosts: { id: string; state: string }[] }).hosts.find((h) => h.id === 'gpu-3');
    assert.equal(listed?.state, 'invited', 'a refused body does not use the invitation up');
  });

  test('the agent socket: a wrong token is refused with the same STANDBY_ERR_UNAUTHORIZED body', async () => {
    const refused = await connectAgent(proxy.url, 'wrong-agent-token');
    refused.ws?.terminate();
    assert.equal(refused.status, 401);
    assert.deepEqual(JSON.parse(refused.body ?? ''), { error: { code: 'STANDBY_ERR_UNAUTHORIZED', message: 'unauthorized' } });
  });

  test('the downloads are text, and so are their refusals: one line ending in the code', async () => {
    const post = await fetch(`${proxy.url}/_standby/fence-key.pub`, { method: 'POST', signal: AbortSignal.timeout(5_000) });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal(await post.text(), '/_standby/fence-key.pub takes GET [STANDBY_ERR_METHOD_NOT_ALLOWED]\n');
    // the test proxy's fencing key is /nonexistent/admin_key
    const missing = await fetch(`${proxy.url}/_standby/fence-key.pub`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /^this proxy has no fencing key: .*\/nonexistent\/admin_key.* \[STANDBY_ERR_NOT_FOUND\]\n$/);
  });
});
