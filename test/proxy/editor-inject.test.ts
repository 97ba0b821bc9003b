// The one rewrite: code-server's workbench page gets one same-origin script
// tag, asked for uncompressed and sent with its new length, only when its CSP
// lets the script run; every other answer goes through as it came
// (compressed, streamed). The page here is code-server 4.139.1's workbench
// HTML as it serves it (its marker, its CSP header); the backend is a real
// HTTP server that records what it was asked.
import assert from 'node:assert/strict';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { injectScript, scriptAllowance, WORKBENCH_MARKER } from '../../proxy/editor-inject.ts';
import { startTestProxy, type TestProxy } from '../fixtures/proxy.ts';

/** code-server 4.139.1's CSP header on its workbench page (its nonce and hashes as one run served them) */
const CODE_SERVER_CSP = "default-src 'self'; img-src 'self' https: data: blob:; media-src 'self'; script-src 'self' 'unsafe-eval'  blob: 'nonce-eX4VRhfwJyNj2Rof7y9rtA' 'sha256-daEgfo2VIXpx2Np71KqCCbkeQwv+68vPrx54XRcbdcs=' ; child-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss: https:; font-src 'self' blob:; manifest-src 'self';";
const WORKBENCH = `<!DOCTYPE html>\n<html>\n\t<head>\n\t\t<meta charset="utf-8" />\n\t\t<meta ${WORKBENCH_MARKER} data-settings="{}">\n\t</head>\n\t<body aria-label="">\n\t</body>\n\t<script type="module" src="./static/out/vs/code/browser/workbench/workbench.js"></script>\n</html>`;
const NAVIGATION = { accept: 'text/html,application/xhtml+xml', 'sec-fetch-dest': 'document', 'accept-encoding': 'gzip, deflate, br' };

test('which CSPs let the script run, and with what', () => {
  const cases: { name: string; policies: string[]; want: ReturnType<typeof scriptAllowance> }[] = [
    { name: "code-server's own: 'self'", policies: [CODE_SERVER_CSP], want: { allowed: true } },
    { name: 'no policy', policies: [], want: { allowed: true } },
    { name: 'no script directive at all', policies: ["img-src 'self'"], want: { allowed: true } },
    { name: "default-src 'self' only", policies: ["default-src 'self'"], want: { allowed: true } },
    { name: 'a nonce and no self: the page nonce', policies: ["script-src 'nonce-abc123'"], want: { allowed: true, nonce: 'abc123' } },
    { name: "'strict-dynamic' ignores 'self': the nonce", policies: ["script-src 'self' 'strict-dynamic' 'nonce-xyz'"], want: { allowed: true, nonce: 'xyz' } },
    { name: 'script-src-elem governs elements', policies: ["script-src 'self'; script-src-elem 'none'"], want: { allowed: false, why: "the page's Content-Security-Policy allows neither 'self' nor one nonce for scripts ('none')" } },
    { name: "'none'", policies: ["script-src 'none'"], want: { allowed: false, why: "the page's Content-Security-Policy allows neither 'self' nor one nonce for scripts ('none')" } },
    { name: 'two policies, both must allow', policies: ["script-src 'self'", "script-src 'nonce-n1'"], want: { allowed: true, nonce: 'n1' } },
  ];
  for (const c of cases) assert.deepEqual(scriptAllowance(c.policies), c.want, c.name);
});

test('the tag goes before </head> of the workbench page only', () => {
  const done = injectScript(WORKBENCH, { 'content-security-policy': CODE_SERVER_CSP }, { generation: 'g123', side: 'standby' });
  assert.ok('html' in done);
  assert.match(done.html, /<script src="\/_standby\/editor\.js\?v=[0-9a-f]{12}" data-generation="g123" data-side="standby" defer><\/script>\n<\/head>/);
  assert.equal(done.html.match(/<script/g)?.length, 2, 'one tag added, nothing else');
  assert.deepEqual(injectScript('<html><head></head><body>an app</body></html>', {}, { generation: 'g', side: 'primary' }), { skipped: 'not the workbench page' });
  const meta = WORKBENCH.replace('<meta charset="utf-8" />', `<meta http-equiv="Content-Security-Policy" content="script-src 'nonce-m1'">`);
  const withNonce = injectScript(meta, {}, { generation: 'g', side: 'primary' });
  assert.ok('html' in withNonce && withNonce.html.includes(' defer nonce="m1"></script>'), "a meta CSP's nonce is the page's own: the tag carries it");
});

interface Backend {
  url: string;
  seen: { url: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

/** A code-server stand-in: the workbench at / and /vscode (gzip when asked), the same HTML elsewhere, an asset, a slow stream. */
async function startBackend(): Promise<Backend> {
  const seen: Backend['seen'] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    const path = (req.url ?? '/').split('?')[0];
    const gzip = /gzip/.test(String(req.headers['accept-encoding'] ?? ''));
    if (path === '/stream') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.write(`<html><head><meta ${WORKBENCH_MARKER}></head>`);
      // the rest only once the test has seen the first part through the proxy: streaming stays streaming
      setTimeout(() => res.end('<body>late</body></html>'), 2_000).unref();
      return;
    }
    const body = path === '/asset.js' ? 'console.log(1)' : WORKBENCH;
    const type = path === '/asset.js' ? 'text/javascript' : 'text/html';
    const headers: Record<string, string> = { 'content-type': type, 'content-security-policy': CODE_SERVER_CSP, etag: '"abc"' };
    if (gzip) {
      const z = gzipSync(body);
      res.writeHead(200, { ...headers, 'content-encoding': 'gzip', 'content-length': String(z.length) });
      res.end(z);
    } else {
      res.writeHead(200, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** One GET through the proxy, raw (no decompression): status, headers, body bytes. */
function get(url: string, headers: Record<string, string>): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test('through the proxy: the workbench page is asked uncompressed, rewritten with its new length; nothing else is touched', { timeout: 30_000 }, async (t) => {
  const backend = await startBackend();
  t.after(() => backend.close());
  const proxy: TestProxy = await startTestProxy({ primaryUrl: backend.url, standbyUrl: backend.url, fence: async () => ({ waitedMs: 0, killed: 0 }) });
  t.after(() => proxy.close());

  for (const path of ['/?folder=/workspace', '/vscode']) {
    const page = await get(`${proxy.url}${path}`, { ...NAVIGATION, 'if-none-match': '"abc"' });
    assert.equal(page.status, 200, path);
    const html = page.body.toString('utf8');
    assert.match(html, /<script src="\/_standby\/editor\.js\?v=[0-9a-f]{12}" data-generation="[A-Za-z0-9_-]{16}" data-side="primary" defer><\/script>/, path);
    assert.equal(Number(page.headers['content-length']), page.body.length, `${path}: Content-Length is the rewritten page's`);
    assert.equal(page.headers['content-encoding'], undefined);
    assert.equal(page.headers['cache-control'], 'no-store');
    assert.equal(page.headers.etag, undefined, 'no validator of the original for the rewritten copy');
    assert.equal(page.headers['content-security-policy'], CODE_SERVER_CSP, 'the CSP is left as it is');
    const asked = backend.seen.at(-1)!;
    assert.equal(asked.headers['accept-encoding'], undefined, `${path}: asked uncompressed`);
    assert.equal(asked.headers['if-none-match'], undefined, `${path}: never a 304 against a copy the proxy rewrote`);
  }

  // not the workbench route, not a navigation, not a document: as they came, compressed
  const untouched: { name: string; path: string; headers: Record<string, string> }[] = [
    { name: 'another path with the same HTML', path: '/other.html', headers: NAVIGATION },
    { name: 'an asset', path: '/asset.js', headers: { accept: '*/*', 'accept-encoding': 'gzip' } },
    { name: 'a fetch of the workbench URL (not a document)', path: '/', headers: { ...NAVIGATION, 'sec-fetch-dest': 'empty' } },
    { name: 'an iframe', path: '/', headers: { ...NAVIGATION, 'sec-fetch-dest': 'iframe' } },
  ];
  for (const c of untouched) {
    const r = await get(`${proxy.url}${c.path}`, c.headers);
    assert.equal(r.status, 200, c.name);
    assert.equal(r.headers['content-encoding'], 'gzip', `${c.name}: compressed as the backend sent it`);
    assert.equal(backend.seen.at(-1)!.headers['accept-encoding'], c.headers['accept-encoding'], `${c.name}: Accept-Encoding forwarded`);
  }

  // an HTML answer that streams stays streaming: its first part arrives before the backend ends it
  const started = performance.now();
  const firstPart = await new Promise<number>((resolve, reject) => {
    const req = request(`${proxy.url}/stream`, { headers: NAVIGATION, agent: false }, (res) => {
      res.once('data', () => {
        resolve(performance.now() - started);
        res.destroy();
      });
    });
    req.on('error', reject);
    req.end();
  });
  assert.ok(firstPart < 1_500, `the first part arrived after ${Math.round(firstPart)} ms: not held back`);
});
