// The developer's login in front of code-server (proxy.json `login`): without
// a session a navigation goes to the login page and anything else gets 401; a
// wrong password is refused (and throttled like a wrong token); the right one
// sets a Secure, HttpOnly, SameSite cookie that lets requests and WebSocket
// upgrades (from this origin only) through; a tampered or expired cookie, or
// one signed under another password, counts for nothing; logout clears it;
// the proxy's own public pages need no login.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { validateSettings } from '../../config/file.ts';
import { proxyConfigSchema } from '../../config/proxy.ts';
import { safeNext } from '../../proxy/login.ts';
import { startProxyWithBackends, upgradeAnswer, type ProxyWithBackends } from '../fixtures/proxy.ts';

const PASSWORD = 'correct horse battery staple';

/** A request through the proxy, never following a redirect. */
function get(base: string, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}${path}`, { headers, redirect: 'manual', signal: AbortSignal.timeout(5_000) });
}

function postForm(base: string, path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}${path}`, { method: 'POST', body: new URLSearchParams(form), headers, redirect: 'manual', signal: AbortSignal.timeout(5_000) });
}

/** Opens a WebSocket to the backend's echo through the proxy: 'open' or the HTTP status it was refused with. */
function upgrade(base: string, headers: Record<string, string>): Promise<number | 'open'> {
  return upgradeAnswer(`${base.replace('http', 'ws')}/echo`, headers);
}

describe('the login in front of code-server', () => {
  let w: ProxyWithBackends;
  let base = '';
  let session = '';
  before(async () => {
    w = await startProxyWithBackends({ settings: { login: { password: PASSWORD, sessionHours: 1 } } });
    base = w.proxy.url;
  });
  after(async () => {
    await w?.close();
  });

  test('no session: a navigation goes to the login page (with where it was going), anything else gets 401; the public status needs no login', async () => {
    const nav = await get(base, '/some/file?x=1', { accept: 'text/html' });
    assert.equal(nav.status, 302);
    assert.equal(nav.headers.get('location'), `/_standby/login?next=${encodeURIComponent('/some/file?x=1')}`);
    const api = await get(base, '/whoami');
    assert.equal(api.status, 401);
    assert.match(await api.text(), /log in first: \/_standby\/login/);
    const page = await get(base, '/_standby/login?next=%2Fsome%2Ffile');
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<form method="post" action="\/_standby\/login">/);
    assert.match(html, /name="next" value="\/some\/file"/);
    assert.doesNotMatch(html, /https?:\/\//, 'no external asset');
    assert.equal((await get(base, '/_standby/status')).status, 200);
  });

  test('a wrong password is refused with the page again; the right one sets the cookie and goes where it was going', async () => {
    const wrong = await postForm(base, '/_standby/login', { password: 'not the password', next: '/whoami' });
    assert.equal(wrong.status, 401);
    assert.match(await wrong.text(), /Wrong password/);
    assert.equal(wrong.headers.get('set-cookie'), null);
    const right = await postForm(base, '/_standby/login', { password: PASSWORD, next: '/whoami' });
    assert.equal(right.status, 303);
    assert.equal(right.headers.get('location'), '/whoami');
    const cookie = right.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^standby_session=v1\.\d+\.[A-Za-z0-9_-]{43}; Path=\/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax$/);
    session = cookie.split(';')[0]!;
    const through = await get(base, '/whoami', { cookie: session });
    assert.equal(through.status, 200);
    assert.equal(await through.text(), 'gpu');
  });

  test('a tampered, expired or foreign cookie counts for nothing', async () => {
    const [, expiry, mac] = session.split('=')[1]!.split('.');
    const flipped = mac!.startsWith('A') ? `B${mac!.slice(1)}` : `A${mac!.slice(1)}`;
    assert.equal((await get(base, '/whoami', { cookie: `standby_session=v1.${expiry}.${flipped}` })).status, 401);
    assert.equal((await get(base, '/whoami', { cookie: `standby_session=v1.${Number(expiry) + 86_400}.${mac}` })).status, 401, 'a later expiry under the same signature');
    assert.equal((await get(base, '/whoami', { cookie: 'standby_session=v1.1.' + mac })).status, 401);
    assert.equal((await get(base, '/whoami', { cookie: 'other=1' })).status, 401);
  });

  test('WebSocket upgrades: refused without a session (401) or from another origin (403); through with both', async () => {
    const origin = base;
    assert.equal(await upgrade(base, { origin }), 401);
    assert.equal(await upgrade(base, { cookie: session, origin: 'https://evil.example' }), 403);
    assert.equal(await upgrade(base, { cookie: session }), 403, 'no Origin: not a browser on this origin');
    assert.equal(await upgrade(base, { cookie: session, origin }), 'open');
  });

  test('where a login may send the browser: plain paths to code-server on this origin only', () => {
    assert.equal(safeNext('/a/b?c=d'), '/a/b?c=d');
    for (const bad of ['//evil.example/', 'https://evil.example/', '/_standby/api/v1/status', '/\\evil', '', undefined, null, '/a b']) assert.equal(safeNext(bad), '/', String(bad));
  });

  test('logout clears the cookie, from this origin only', async () => {
    const foreign = await fetch(`${base}/_standby/logout`, { method: 'POST', headers: { cookie: session, origin: 'https://evil.example' }, redirect: 'manual', signal: AbortSignal.timeout(5_000) });
    assert.equal(foreign.status, 403);
    const out = await fetch(`${base}/_standby/logout`, { method: 'POST', headers: { cookie: session, origin: base }, redirect: 'manual', signal: AbortSignal.timeout(5_000) });
    assert.equal(out.status, 303);
    assert.equal(out.headers.get('location'), '/_standby/login');
    assert.match(out.headers.get('set-cookie') ?? '', /^standby_session=; Path=\/; Max-Age=0; Secure; HttpOnly; SameSite=Lax$/);
  });

  test('failed tries are throttled like a wrong token: locked out after 10 in a minute', async () => {
    let status = 0;
    for (let i = 0; i < 12 && status !== 429; i++) status = (await postForm(base, '/_standby/login', { password: `wrong ${i}` })).status;
    assert.equal(status, 429);
    assert.equal((await postForm(base, '/_standby/login', { password: PASSWORD })).status, 429, 'the right password waits too');
  });
});

test('config: a login needs HTTPS (tls, a TLS proxy in trustedProxies) or a loopback listener; a short password or the admin token is refused', () => {
  const base = { adminToken: 'admin-token-123456', stateDir: '/var/lib/standby', primary: { id: 'gpu-1', url: 'http://10.0.0.2:8080' }, standby: { id: 'cpu-1', url: 'http://10.0.0.3:8080', ssh: { host: '10.0.0.3', identityFile: '/etc/standby/keys/id_ed25519' } } };
  const ok = (settings: object) => validateSettings(proxyConfigSchema, { ...base, ...settings }, 'proxy.json');
  ok({ login: { password: PASSWORD } });
  ok({ listen: { host: '0.0.0.0', port: 443 }, trustedProxies: ['10.0.0.1'], login: { password: PASSWORD } });
  assert.throws(() => ok({ listen: { host: '0.0.0.0', port: 80 }, login: { password: PASSWORD } }), /login: got \{"password":"\(hidden\)"\}, expected login needs HTTPS: set tls/);
  // the error names the field, never its value (it may end up in a log)
  assert.throws(() => ok({ login: { password: 'short-secret' .slice(0, 8) } }), (err: Error) => /login.password: got a string \(hidden: a secret\), expected a password of 12-1024 characters/.test(err.message) && !err.message.includes('short-se'));
  assert.throws(() => ok({ login: { password: 'admin-token-123456' } }), (err: Error) => /a password of its own, not the admin token/.test(err.message) && !err.message.includes('admin-token-123456'));
});
