// The admin's dashboard session (proxy/admin-session.ts, proxy/dashboard.ts):
// /_standby/ is a login form without a session; a wrong token is refused and
// throttled like a wrong Bearer token; the right one sets a Secure, HttpOnly,
// SameSite=Strict cookie for /_standby/ that the admin API accepts for reads,
// and for changes only with an Origin of this proxy (CSRF); a tampered cookie
// counts for nothing, a rotated admin token ends every session; the event
// stream gives an admin session the status and lag events and nobody else;
// the page carries a strict CSP and the assets it needs come from the proxy.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN_TOKEN, startProxyWithBackends, type ProxyWithBackends } from '../fixtures/proxy.ts';

function postForm(base: string, path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}${path}`, { method: 'POST', body: new URLSearchParams(form), headers, redirect: 'manual', signal: AbortSignal.timeout(5_000) });
}

function req(base: string, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${base}${path}`, { redirect: 'manual', signal: AbortSignal.timeout(5_000), ...init });
}

/** The first `bytes` of an event stream, or what came within `ms`. */
async function streamHead(base: string, headers: Record<string, string>, ms: number): Promise<string> {
  const ac = new AbortController();
  const res = await fetch(`${base}/_standby/events`, { headers, signal: ac.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  let text = '';
  const until = performance.now() + ms;
  const timer = setTimeout(() => ac.abort(), ms);
  try {
    while (performance.now() < until) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
  } catch {
    // aborted at the deadline: what came is the answer
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return text;
}

describe('the dashboard session', () => {
  let w: ProxyWithBackends;
  let base = '';
  let cookie = '';
  let origin = '';
  before(async () => {
    w = await startProxyWithBackends({});
    base = w.proxy.url;
    origin = base;
  });
  after(async () => {
    await w?.close();
  });

  test('without a session /_standby/ is the login form (POSTed, no script, strict CSP); the API refuses a request without credentials', async () => {
    const page = await req(base, '/_standby/');
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<form method="post" action="\/_standby\/admin\/login">/);
    assert.match(html, /name="token" type="password"/);
    assert.doesNotMatch(html, /<script/);
    assert.doesNotMatch(html, /https?:\/\//, 'no external asset');
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'.*frame-ancestors 'none'/);
    assert.equal((await req(base, '/_standby/api/v1/status')).status, 401);
  });

  test('a wrong token gets the form again (401, no cookie); the right one sets the Strict cookie for /_standby/ and goes to the page', async () => {
    const wrong = await postForm(base, '/_standby/admin/login', { token: 'not-the-token' });
    assert.equal(wrong.status, 401);
    assert.match(await wrong.text(), /Wrong admin token/);
    assert.equal(wrong.headers.get('set-cookie'), null);
    const right = await postForm(base, '/_standby/admin/login', { token: ADMIN_TOKEN });
    assert.equal(right.status, 303);
    assert.equal(right.headers.get('location'), '/_standby/');
    const set = right.headers.get('set-cookie') ?? '';
    assert.match(set, /^standby_admin=v1\.\d+\.[A-Za-z0-9_-]{43}; Path=\/_standby\/; Max-Age=43200; Secure; HttpOnly; SameSite=Strict$/);
    assert.ok(!set.includes(ADMIN_TOKEN), 'the token is not the cookie');
    cookie = set.split(';')[0]!;
    const page = await req(base, '/_standby/', { headers: { cookie } });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /id="lag-chart"/);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'; script-src 'self'; style-src 'self' 'nonce-[A-Za-z0-9+/=]+'; connect-src 'self'/);
    assert.doesNotMatch(csp, /unsafe/);
    assert.doesNotMatch(html, /https?:\/\//, 'no external asset');
    assert.doesNotMatch(html, /<script>|\son[a-z]+=/, 'no inline script or handler');
  });

  test('the assets come from the proxy, from the installed uPlot, with long cache headers', async () => {
    for (const [path, type] of [['/_standby/assets/uPlot.iife.min.js', 'text/javascript'], ['/_standby/assets/uPlot.min.css', 'text/css'], ['/_standby/assets/dashboard.js', 'text/javascript']] as const) {
      const res = await req(base, path);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type') ?? '', new RegExp(`^${type}`));
      assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      assert.ok((await res.text()).length > 100);
    }
    const post = await req(base, '/_standby/assets/dashboard.js', { method: 'POST' });
    assert.deepEqual([post.status, post.headers.get('allow'), await post.text()], [405, 'GET, HEAD', 'GET or HEAD.\n']);
  });

  test('with the cookie: reads go; a change (a failover abort, a settings PATCH) needs an Origin of this proxy (none, or another site: 403)', async () => {
    const phase = w.proxy.store.state.phase;
    const epoch = w.proxy.store.state.epoch;
    assert.equal((await req(base, '/_standby/api/v1/status', { headers: { cookie } })).status, 200);
    assert.equal((await req(base, '/_standby/api/v1/sync/lag', { headers: { cookie } })).status, 200);
    // failover/abort with nothing to abort: 409 means the request passed the guard
    const none = await req(base, '/_standby/api/v1/failover/abort', { method: 'POST', headers: { cookie } });
    assert.equal(none.status, 403);
    assert.match(await none.text(), /must come from the dashboard/);
    assert.equal((await req(base, '/_standby/api/v1/failover/abort', { method: 'POST', headers: { cookie, origin: 'https://evil.example' } })).status, 403);
    assert.equal((await req(base, '/_standby/api/v1/failover/abort', { method: 'POST', headers: { cookie, origin: 'null' } })).status, 403);
    assert.equal((await req(base, '/_standby/api/v1/failover/abort', { method: 'POST', headers: { cookie, origin } })).status, 409);
    // the Bearer token is unchanged: no Origin needed
    assert.equal((await w.proxy.api('failover/abort', { method: 'POST' })).status, 409);
    assert.deepEqual([w.proxy.store.state.phase, w.proxy.store.state.epoch], [phase, epoch], 'nothing changed on the way');
    // a settings change: refused without this Origin (and nothing changed), taken with it
    const patch = (headers: Record<string, string>, value: boolean) => req(base, '/_standby/api/v1/settings', { method: 'PATCH', body: JSON.stringify({ autoFailover: value }), headers: { cookie, 'content-type': 'application/json', ...headers } });
    const autoFailover = async () => ((await (await w.proxy.api('settings')).json()) as { settings: { autoFailover: boolean } }).settings.autoFailover;
    assert.equal((await patch({}, false)).status, 403);
    assert.equal((await patch({ origin: 'https://evil.example' }, false)).status, 403);
    assert.equal(await autoFailover(), true, 'the refused changes changed nothing');
    assert.equal((await patch({ origin }, false)).status, 200);
    assert.equal(await autoFailover(), false);
    assert.equal((await patch({ origin }, true)).status, 200);
  });

  test('a tampered cookie or one with a later expiry counts for nothing', async () => {
    const [, expiry, mac] = cookie.split('=')[1]!.split('.');
    const flipped = mac!.startsWith('A') ? `B${mac!.slice(1)}` : `A${mac!.slice(1)}`;
    assert.equal((await req(base, '/_standby/api/v1/status', { headers: { cookie: `standby_admin=v1.${expiry}.${flipped}` } })).status, 401);
    assert.equal((await req(base, '/_standby/api/v1/status', { headers: { cookie: `standby_admin=v1.${Number(expiry) + 86_400}.${mac}` } })).status, 401);
    const page = await req(base, '/_standby/', { headers: { cookie: `standby_admin=v1.${expiry}.${flipped}` } });
    assert.match(await page.text(), /name="token"/, 'the login form again');
  });

  test('the event stream: an admin session gets status events; without one, only what it got before', async () => {
    // side by side: the plain stream listens while the admin's hears its status events
    const [admin, plain] = await Promise.all([streamHead(base, { cookie }, 2_500), streamHead(base, {}, 2_500)]);
    assert.match(admin, /^event: status$/m);
    const status = admin.split('\n').find((l, i, all) => all[i - 1] === 'event: status' && l.startsWith('data: '));
    assert.equal((JSON.parse(status!.slice(6)) as { epoch: number }).epoch, w.proxy.store.state.epoch);
    assert.match(plain, /^data: /m, 'the editor state still');
    assert.doesNotMatch(plain, /^event:/m);
    assert.doesNotMatch(plain, /epoch|gpu-1|agents/);
  });

  test('logout clears the cookie (from this origin only); a login or logout from another site is refused', async () => {
    assert.equal((await postForm(base, '/_standby/admin/logout', {}, { cookie, origin: 'https://evil.example' })).status, 403);
    assert.equal((await postForm(base, '/_standby/admin/login', { token: ADMIN_TOKEN }, { origin: 'https://evil.example' })).status, 403, 'login CSRF');
    const out = await postForm(base, '/_standby/admin/logout', {}, { cookie, origin });
    assert.equal(out.status, 303);
    assert.match(out.headers.get('set-cookie') ?? '', /^standby_admin=; Path=\/_standby\/; Max-Age=0; Secure; HttpOnly; SameSite=Strict$/);
  });

  test('a rotated admin token ends every session, and its open event stream', async () => {
    const fresh = (await postForm(base, '/_standby/admin/login', { token: ADMIN_TOKEN })).headers.get('set-cookie')!.split(';')[0]!;
    assert.equal((await req(base, '/_standby/api/v1/status', { headers: { cookie: fresh } })).status, 200);
    const stream = await fetch(`${base}/_standby/events`, { headers: { cookie: fresh }, signal: AbortSignal.timeout(10_000) });
    const reader = stream.body!.getReader();
    let heard = '';
    while (!heard.includes('event: status')) heard += Buffer.from((await reader.read()).value ?? []).toString();
    w.proxy.reloadAdminTokens({ adminToken: 'a-new-admin-token-for-tests', previousAdminTokens: [] });
    assert.equal((await req(base, '/_standby/api/v1/status', { headers: { cookie: fresh } })).status, 401);
    // the stream ends at its next admin event instead of telling a session that no longer holds
    let ended = false;
    let after = '';
    const until = performance.now() + 5_000;
    while (!ended && performance.now() < until) {
      try {
        const r = await reader.read();
        ended = r.done;
        if (r.value) after += Buffer.from(r.value).toString();
      } catch {
        ended = true; // the connection cut: ended too
      }
    }
    assert.ok(ended, `the stream ended (it heard meanwhile: ${JSON.stringify(after.slice(0, 200))})`);
    // the former token still works as a Bearer token in its grace window; the session did not survive
    assert.equal((await w.proxy.api('status')).status, 200);
  });

  test('failed logins count in the throttle: locked out after 10 in a minute', async () => {
    let last = 0;
    for (let i = 0; i < 11; i++) last = (await postForm(base, '/_standby/admin/login', { token: `wrong-${i}` })).status;
    assert.equal(last, 429);
    assert.equal((await postForm(base, '/_standby/admin/login', { token: 'a-new-admin-token-for-tests' })).status, 429, 'even the right token waits');
  });
});
