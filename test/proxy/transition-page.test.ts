// The transition page: escaping and self-containment of the HTML (unit), then
// the page in Debian's Chromium driven by playwright-core: the status line
// follows /_standby/status, "Waiting for the proxy..." when it fails, polling
// pauses while hidden, and the page reloads into the workspace once ready; at
// desktop and phone width, with no console errors and no request leaving the
// server that serves it.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { closePage, launchChromium, noChromium, type Browser } from '../fixtures/chromium.ts';
import { escapeHtml, jsonForScript } from '../../proxy/pages/escape.ts';
import { PUBLIC_STATUS_PATH, type PublicStatus } from '../../proxy/pages/public-status.ts';
import {
  READY_TEXT, WAITING_FOR_PROXY, transitionPage,
  type TransitionPageOptions, type TransitionScriptConfig,
} from '../../proxy/pages/transition.ts';

const HOSTILE = [
  '<script>alert(1)</script>',
  '"><img src=x onerror="window.__pwned=1">',
  "'><svg onload=alert(1)>",
  '</script><script>window.__pwned=1</script>',
  '<!-- & &amp; \u2028\u2029 -->',
];

const BASE: TransitionPageOptions = {
  from: { id: 'gpu-1', kind: 'GPU' },
  to: { id: 'cpu-1', kind: 'CPU standby' },
  phase: 'failed_over',
  message: 'GPU gpu-1 stopped answering. Moving your workspace to the standby.',
};

/** The config object embedded in the page's script, read back as the browser would. */
function embeddedConfig(html: string): TransitionScriptConfig {
  const m = /const cfg = (.*);\n/.exec(html);
  assert.ok(m?.[1], 'the script embeds its config');
  assert.doesNotMatch(m[1], /[<>&\u2028\u2029]/, 'the embedded JSON has no raw <, >, & or line separators');
  return JSON.parse(m[1]) as TransitionScriptConfig;
}

describe('escapeHtml', () => {
  const cases = [
    { name: 'plain text unchanged', input: 'gpu-1', want: 'gpu-1' },
    { name: 'tags', input: '<script>alert(1)</script>', want: '&lt;script&gt;alert(1)&lt;/script&gt;' },
    { name: 'both quotes', input: `"a" 'b'`, want: '&quot;a&quot; &#39;b&#39;' },
    { name: 'ampersand first, no double decode', input: '&lt;', want: '&amp;lt;' },
    { name: 'attribute breakout', input: '" onmouseover="x', want: '&quot; onmouseover=&quot;x' },
  ];
  for (const c of cases) test(c.name, () => assert.equal(escapeHtml(c.input), c.want));
});

describe('jsonForScript', () => {
  test('no character that ends a script or a line survives, and the value round-trips', () => {
    const value = { s: '</script><!--<script>', amp: 'a&b>c', ls: 'x\u2028y\u2029z', n: 1 };
    const out = jsonForScript(value);
    assert.doesNotMatch(out, /[<>&\u2028\u2029]/);
    assert.deepEqual(JSON.parse(out), value);
    // a JavaScript engine reads it back too (what the page's script does)
    assert.deepEqual(new Function(`return ${out};`)(), value);
  });
  test('a value without a JSON form is an error, not "undefined" in a page', () => {
    assert.throws(() => jsonForScript(undefined), TypeError);
  });
});

describe('transitionPage (HTML)', () => {
  test('the document: lang, title, heading, landmarks, live status, explanation, noscript', () => {
    const html = transitionPage(BASE);
    assert.match(html, /^<!doctype html>\n<html lang="en"/);
    assert.match(html, /<title>Switching machine<\/title>/);
    assert.match(html, /<h1 id="title">Switching machine<\/h1>/);
    assert.match(html, /<main /);
    assert.match(html, /<footer>/);
    assert.match(html, /<p id="status" role="status" aria-live="polite" aria-atomic="true">GPU gpu-1 stopped answering\. Moving your workspace to the standby\.<\/p>/);
    assert.match(html, /Your workspace is moving to <strong>CPU standby cpu-1<\/strong>\. Files saved up to the last sync are there; this page reloads by itself\./);
    assert.match(html, /<figcaption class="sr-only">Picture: your workspace moves from GPU gpu-1, which was serving it, to CPU standby cpu-1, which is taking over\.<\/figcaption>/);
    assert.match(html, /<noscript><p class="noscript">[^<]*Reload the page[^<]*<\/p><\/noscript>/);
    assert.match(html, /<svg /);
    assert.match(html, /@media \(prefers-reduced-motion: reduce\)/);
    assert.match(html, /<code id="phase">failed_over<\/code>/);
  });

  test('defaults: polls /_standby/status every 1000 ms', () => {
    const cfg = embeddedConfig(transitionPage(BASE));
    assert.equal(PUBLIC_STATUS_PATH, '/_standby/status');
    assert.equal(cfg.statusPath, PUBLIC_STATUS_PATH);
    assert.equal(cfg.pollMs, 1000);
    assert.equal(cfg.waitingText, WAITING_FOR_PROXY);
    assert.ok(cfg.timeoutMs > 0 && cfg.maxBackoffMs >= cfg.pollMs);
  });

  // every option that reaches the page, with every hostile string
  const fields: { name: string; with: (h: string) => TransitionPageOptions }[] = [
    { name: 'from.id', with: (h) => ({ ...BASE, from: { ...BASE.from, id: h } }) },
    { name: 'from.kind', with: (h) => ({ ...BASE, from: { ...BASE.from, kind: h } }) },
    { name: 'to.id', with: (h) => ({ ...BASE, to: { ...BASE.to, id: h } }) },
    { name: 'to.kind', with: (h) => ({ ...BASE, to: { ...BASE.to, kind: h } }) },
    { name: 'phase', with: (h) => ({ ...BASE, phase: h }) },
    { name: 'message', with: (h) => ({ ...BASE, message: h }) },
    { name: 'statusPath', with: (h) => ({ ...BASE, statusPath: `/_standby/status?x=${h.replace(/\s/g, '')}` }) },
  ];
  for (const f of fields) {
    test(`hostile ${f.name} is escaped everywhere it appears`, () => {
      for (const h of HOSTILE) {
        const options = f.with(h);
        const html = transitionPage(options);
        const raw = f.name === 'statusPath' ? options.statusPath! : h;
        assert.ok(!html.includes(raw), `${f.name}=${JSON.stringify(raw)} appears unescaped`);
        // the only markup is the page's own: one script, one style, no injected elements or handlers
        assert.equal(html.match(/<script/gi)?.length, 1, 'exactly one <script');
        assert.equal(html.match(/<\/script/gi)?.length, 1, 'exactly one </script');
        assert.equal(html.match(/<style/gi)?.length, 1, 'exactly one <style');
        assert.ok(!/<img|<svg onload/i.test(html), 'no injected element');
        assert.ok(!/<[^>]*\son\w+\s*=/i.test(html), 'no event handler attribute in any tag');
        assert.ok(!html.includes('<!--'), 'no comment opener');
        const script = html.slice(html.indexOf('<script'), html.indexOf('</script'));
        assert.ok(!/[\u2028\u2029]/.test(script), 'no raw U+2028/U+2029 in the script');
        // escaped, not dropped: the text is there, and the script's config reads back exactly
        if (f.name !== 'statusPath') assert.ok(html.includes(escapeHtml(h)), `${f.name} is shown, escaped`);
        assert.equal(embeddedConfig(html).statusPath, options.statusPath ?? PUBLIC_STATUS_PATH);
      }
    });
  }

  test('self-contained: nothing is loaded from any URL, and the CSP says so', () => {
    const html = transitionPage(BASE);
    assert.doesNotMatch(html, /https?:/i, 'no http(s) URL anywhere');
    assert.doesNotMatch(html, /["'(\s]\/\/[^\s]/, 'no protocol-relative URL');
    assert.doesNotMatch(html, /\bsrc\s*=/i, 'no src attribute');
    assert.doesNotMatch(html, /url\(|@import/i, 'no CSS url() or @import');
    const hrefs = [...html.matchAll(/\bhref\s*=\s*"([^"]*)"/gi)].map((m) => m[1]);
    assert.deepEqual(hrefs, ['data:,'], 'the only href is the empty favicon (stops a /favicon.ico request)');
    const csp = (/http-equiv="Content-Security-Policy" content="([^"]*)"/.exec(html)?.[1] ?? '').replaceAll('&#39;', "'");
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /connect-src 'self'/);
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
    assert.ok(nonce && html.includes(`<script nonce="${nonce}">`) && html.includes(`<style nonce="${nonce}">`));
    assert.notEqual(/nonce-([^']+)/.exec(transitionPage(BASE))?.[1], nonce, 'a fresh nonce per page');
  });

  test('bad options stop with a message naming the field', () => {
    const cases = [
      { name: 'absolute URL as statusPath', o: { ...BASE, statusPath: 'https://evil.example/status' }, re: /statusPath/ },
      { name: 'protocol-relative statusPath', o: { ...BASE, statusPath: '//evil.example/status' }, re: /statusPath/ },
      { name: 'backslash statusPath', o: { ...BASE, statusPath: '/\\evil.example' }, re: /statusPath/ },
      { name: 'pollMs too small', o: { ...BASE, pollMs: 10 }, re: /pollMs/ },
      { name: 'pollMs not a number', o: { ...BASE, pollMs: Number.NaN }, re: /pollMs/ },
      { name: 'id not a string', o: { ...BASE, to: { id: 7 as unknown as string, kind: 'CPU' } }, re: /to\.id/ },
    ];
    for (const c of cases) assert.throws(() => transitionPage(c.o), c.re, c.name);
  });
});

// ---------------------------------------------------------------------------
// A SCRIPTED SERVER FOR THE PAGE'S OWN BEHAVIOUR. The real proxy serving this
// page through a real failover is test/proxy/failover-page.test.ts; here a
// small server plays the proxy so the page can be driven through states the
// real one passes quickly (a failing status endpoint, a reload loop): the
// transition page at every path until the switch, then a "workspace" page;
// /_standby/status answers what the test scripts.
// ---------------------------------------------------------------------------
interface ProxyUnderTest {
  /** http://127.0.0.1:PORT */
  origin: string;
  /** back to the start: transition page at every path */
  reset(): void;
  /** what /_standby/status answers from now on; 'fail' answers 503 */
  setStatus(s: PublicStatus | 'fail'): void;
  /** the route moved: status says ready and every path serves the workspace */
  switchToWorkspace(): void;
  /** status requests answered so far */
  statusRequests(): number;
  close(): Promise<void>;
}

const WORKSPACE_TITLE = 'Workspace (stand-in for code-server)';
const POLL_MS = 150;

async function startStandInProxy(page: TransitionPageOptions): Promise<ProxyUnderTest> {
  let status: PublicStatus | 'fail' = 'fail';
  let switched = false;
  let statusCount = 0;
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === (page.statusPath ?? PUBLIC_STATUS_PATH)) {
      statusCount++;
      if (status === 'fail') {
        res.writeHead(503, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end('proxy restarting');
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(status));
      }
      return;
    }
    if (req.method !== 'GET') return void res.writeHead(405).end();
    const body = switched
      ? `<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${WORKSPACE_TITLE}</title></head><body><main><h1>workspace</h1></main></body></html>`
      : transitionPage(page);
    res.writeHead(switched ? 200 : 503, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    reset() { switched = false; status = 'fail'; },
    setStatus(s) { status = s; },
    switchToWorkspace() {
      if (status === 'fail') throw new Error('switchToWorkspace: set a status first');
      status = { ...status, ready: true };
      switched = true;
    },
    statusRequests: () => statusCount,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
// --------------------------- end of the stand-in ---------------------------

const SCREENSHOT = join(import.meta.dirname, '../../docs/transition-page.png');
const WAIT_MS = 5000;

const FENCING: PublicStatus = {
  phase: 'failed_over', active: null, ready: false,
  message: 'Fencing cpu-1 so the old GPU can no longer write to it.',
};
const STARTING: PublicStatus = {
  phase: 'failed_over', active: { role: 'standby' }, ready: false,
  message: 'Starting code-server on cpu-1.',
};

/** What one page did: console errors, page errors, dialogs, main-frame navigations. */
function watch(page: Page): { errors: string[]; dialogs: string[]; navigations: string[] } {
  const seen = { errors: [] as string[], dialogs: [] as string[], navigations: [] as string[] };
  page.on('console', (m) => { if (m.type() === 'error') seen.errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => seen.errors.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => { seen.dialogs.push(d.message()); void d.dismiss(); });
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) seen.navigations.push(f.url()); });
  return seen;
}

/**
 * The little of the DOM the functions run inside the page use. The project's
 * tsconfig has no DOM lib (it is Node code); these functions are sent to the
 * browser as text, types stripped.
 */
interface InPage {
  document: {
    title: string;
    documentElement: { scrollWidth: number };
    getElementById(id: string): { textContent: string | null } | null;
    querySelectorAll(selector: string): Iterable<{ getBoundingClientRect(): { right: number } }>;
    dispatchEvent(event: unknown): boolean;
  };
  Event: new (type: string) => unknown;
  __pwned?: number;
}

/**
 * Console errors other than Chromium's own "Failed to load resource" line for
 * a 503: the stand-in serves the page and the failing status with 503 on
 * purpose (as the proxy should: the transition page is not the workspace).
 */
function unexpectedErrors(errors: string[]): string[] {
  return errors.filter((e) => !/^console: Failed to load resource: the server responded with a status of 503\b/.test(e));
}


async function waitForStatus(page: Page, want: string): Promise<void> {
  await page.waitForFunction((w) => (globalThis as unknown as InPage).document.getElementById('status')?.textContent === w, want, { timeout: WAIT_MS });
}

/** The whole story in one tab: not ready, proxy away, new message, ready -> workspace. */
async function scenario(context: BrowserContext, proxy: ProxyUnderTest, width: number, extras: boolean): Promise<void> {
  proxy.reset();
  proxy.setStatus(FENCING);
  const page = await context.newPage();
  try {
    page.setDefaultTimeout(WAIT_MS);
    await page.setViewportSize({ width, height: width < 500 ? 740 : 760 });
    const seen = watch(page);
    const url = `${proxy.origin}/?folder=/workspace`;
    await page.goto(url, { waitUntil: 'load', timeout: WAIT_MS });

    assert.equal(await page.title(), 'Switching machine');
    assert.equal(await page.locator('h1').textContent(), 'Switching machine');
    const live = page.locator('[aria-live="polite"]');
    assert.equal(await live.count(), 1);
    assert.equal(await live.getAttribute('id'), 'status');
    await waitForStatus(page, FENCING.message);

    // fits the width: nothing wider than the viewport, both machines fully on screen
    const layout = await page.evaluate(() => {
      const { document } = globalThis as unknown as InPage;
      return {
        scrollWidth: document.documentElement.scrollWidth,
        rights: [...document.querySelectorAll('.machine, #status, h1')].map((e) => e.getBoundingClientRect().right),
      };
    });
    assert.ok(layout.scrollWidth <= width, `page is ${layout.scrollWidth} px wide at a ${width} px viewport`);
    for (const r of layout.rights) assert.ok(r <= width, `an element ends at ${r} px, past ${width} px`);

    if (extras) {
      if (process.env.UPDATE_SCREENSHOTS === '1' || !existsSync(SCREENSHOT)) {
        await page.screenshot({ path: SCREENSHOT, animations: 'disabled', timeout: WAIT_MS });
      }

      // hidden tab: polling stops (one request may be in flight), and resumes when visible
      await page.evaluate(() => {
        const { document, Event } = globalThis as unknown as InPage;
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
        document.dispatchEvent(new Event('visibilitychange'));
      });
      const before = proxy.statusRequests();
      await sleep(POLL_MS * 6);
      assert.ok(proxy.statusRequests() <= before + 1, `hidden page polled ${proxy.statusRequests() - before} times`);
      await page.evaluate(() => {
        const { document, Event } = globalThis as unknown as InPage;
        delete (document as { hidden?: boolean }).hidden;
        document.dispatchEvent(new Event('visibilitychange'));
      });
      const resumedFrom = proxy.statusRequests();
      const deadline = Date.now() + WAIT_MS;
      while (proxy.statusRequests() <= resumedFrom && Date.now() < deadline) await sleep(20);
      assert.ok(proxy.statusRequests() > resumedFrom, 'polling resumes when the page is visible again');
    }

    // the status endpoint fails: the page says so and keeps going
    proxy.setStatus('fail');
    await waitForStatus(page, WAITING_FOR_PROXY);
    assert.equal(await page.locator('h1').textContent(), 'Switching machine');

    // back, with a new message: the live region follows
    proxy.setStatus(STARTING);
    await waitForStatus(page, STARTING.message);
    assert.equal(await page.locator('#phase').textContent(), 'failed_over');

    // ready: the page reloads itself into the workspace, at the same URL
    proxy.switchToWorkspace();
    await page.waitForFunction((t) => (globalThis as unknown as InPage).document.title === t, WORKSPACE_TITLE, { timeout: WAIT_MS });
    assert.equal(page.url(), url);
    assert.equal(await page.locator('h1').textContent(), 'workspace');
    assert.equal(seen.navigations.length, 2, `one load and one reload, got ${seen.navigations.join(', ')}`);

    assert.deepEqual(unexpectedErrors(seen.errors), []);
    assert.deepEqual(seen.dialogs, []);
  } finally {
    await closePage(page); // it shows the workspace stand-in: a static page, nothing navigating
  }
}

describe('transition page in Chromium', { skip: noChromium, timeout: 60_000 }, () => {
  test('follows the status, survives a failing proxy, reloads into the workspace; desktop and 375 px', async () => {
    const started = performance.now();
    const proxy = await startStandInProxy({ ...BASE, pollMs: POLL_MS });
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const { context } = browser;
      const requests: string[] = [];
      context.on('request', (r) => requests.push(r.url()));

      await scenario(context, proxy, 1100, true);
      await scenario(context, proxy, 375, false);

      // hostile ids in a real browser: shown as text, never run
      proxy.reset();
      proxy.setStatus(FENCING);
      const page = await context.newPage();
      const seen = watch(page);
      const hostile = '"><img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>';
      await page.route('**/hostile', (route) => route.fulfill({
        status: 503, contentType: 'text/html; charset=utf-8',
        body: transitionPage({ ...BASE, pollMs: POLL_MS, from: { id: hostile, kind: 'GPU' }, to: { id: 'cpu-1', kind: hostile } }),
      }));
      await page.goto(`${proxy.origin}/hostile`, { timeout: WAIT_MS });
      await waitForStatus(page, FENCING.message);
      assert.equal(await page.locator('.machine.from .id').textContent(), hostile);
      assert.equal(await page.locator('.machine.to .kind').textContent(), hostile);
      assert.equal(await page.evaluate(() => (globalThis as unknown as InPage).__pwned), undefined);
      assert.equal(await page.locator('img').count(), 0);
      assert.equal(await page.locator('script').count(), 1);
      assert.deepEqual(unexpectedErrors(seen.errors), []);
      assert.deepEqual(seen.dialogs, []);
      await closePage(page); // not ready: it polls, it does not reload

      // a proxy that says ready but still serves this page: reloads are spaced, not a loop
      proxy.reset();
      proxy.setStatus({ ...STARTING, ready: true });
      const looping = await context.newPage();
      const loads: number[] = [];
      looping.on('framenavigated', (f) => { if (f === looping.mainFrame()) loads.push(performance.now()); });
      await looping.goto(`${proxy.origin}/`, { timeout: WAIT_MS });
      await waitForStatus(looping, READY_TEXT);
      const deadline = performance.now() + WAIT_MS;
      while (loads.length < 3 && performance.now() < deadline) await sleep(20);
      assert.ok(loads.length >= 3, `the page reloads again after the gap (${loads.length} loads)`);
      const gap = loads[2]! - loads[1]!;
      assert.ok(gap >= 1000, `second reload ${Math.round(gap)} ms after the first (minReloadGapMs is 2000)`);
      // Stop the reloads before closing: a close racing a reload's commit can hang (closePage).
      // Once a document shows the not-ready message it has polled since, and schedules no reload.
      proxy.setStatus(FENCING);
      await waitForStatus(looping, FENCING.message);
      await closePage(looping);

      // nothing but the server that served the page was asked for anything
      assert.ok(requests.length > 0);
      const elsewhere = requests.filter((u) => !u.startsWith(`${proxy.origin}/`));
      assert.deepEqual(elsewhere, [], 'requests to anything but the test server');
      assert.ok(!requests.some((u) => u.endsWith('/favicon.ico')), 'no favicon request');
      console.log(`# browser part: ${Math.round(performance.now() - started)} ms`);
    } finally {
      await browser?.close();
      await proxy.close();
    }
  });
});
