// The switch nobody clicks, in Chromium with a real code-server on each side:
// a file is created in the editor, the GPU (its code-server and agent) is
// SIGKILLed 2 s later, and the page the developer has open shows the overlay
// within 1.5 s and is back in a working workbench on the standby within 6 s,
// the file there, without a click (the injected script reloads it). Then the
// GPU comes back (its code-server and a new agent), `switch-back` is asked
// through the admin API, and the same tab shows "Switching back to the
// GPU..." and reloads into the GPU's workbench, again without a click.
// The issue's figures (overlay within 1.5 s, the workbench back within 6 s at
// p50 over 5 trials) are measured by bench/editor on a quiet machine, beside a
// plain proxy: this test, run beside others on two cores, asserts what happens
// and in what order, with bounds that only a broken switch exceeds (a workbench started beside
// the whole suite took 20 s to open), and prints
// its times.
//
// The second test of this file:
// A reload in the detection window, in Chromium with a real code-server on
// each side (after a reload with the GPU well, which shows no overlay): the
// developer loads the workbench URL the instant the GPU (its code-server and
// agent) is SIGKILLed, before the proxy has moved the route.
// The tab gets the transition page, never an error page (no 502, no
// browser error page), and that page takes it into the standby's workbench
// by itself. The tab is first taken off the workbench (about:blank): a
// reload of the workbench itself runs VS Code's shutdown in a busy renderer
// before the request leaves; the proxy sees the same request either way. The
// window is held open for the test: the standby's sshd is stopped (SIGSTOP)
// as the GPU dies, so the fence (and the route after it) waits until the
// tab's first answer is in; a slow fence would do the same.
//
// Both tests are in one file so that they run one after the other: each starts
// two code-servers and a Chromium, and run side by side on two cores (as two
// files of the suite) each took up to 45 s to open its first workbench.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { killTree } from '../../core/process-tree.ts';
import { launchChromium, noChromium, type Browser } from '../fixtures/chromium.ts';
import { createFileInExplorer, explorerRow, noEditor, openWorkbench, recordOverlay, startEditorWorld, type EditorWorld } from '../fixtures/editor-world.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { TO_GPU_TEXT, TO_STANDBY_TEXT } from '../../proxy/pages/editor-script.ts';

/** a document whose body could not be read, known by its headers as the transition page */
const TRANSITION_BY_HEADERS = '(unread: 503, text/html, Retry-After)';
/** bounds from the SIGKILL that only a broken switch exceeds (the targets, 1.5 s and 6 s, are bench/editor's) */
const OVERLAY_MS = 5_000;
const WORKBENCH_BACK_MS = 60_000;
/** the first open of the workbench, in a fresh Chromium profile: beside the whole suite on two cores it took 45 s */
const FIRST_OPEN_MS = 90_000;

// with the login on (its session and the WebSocket's Origin check on every request of the switch);
// the second test below runs the real editor with it off (editor-events.test.ts checks the stream
// with and without it): two code-servers and a Chromium per world are heavy on two cores, and the
// suite's time is bounded
for (const login of [true]) {
  test(`the GPU dies: the overlay shows, the standby's workbench is back with the file, no click; and back to the GPU the same way (login ${login ? 'on' : 'off'})`, { skip: noChromium || noEditor, timeout: 300_000 }, async (t) => {
    const started = performance.now();
    const parts: Held = {};
    try {
      const { world, page, overlays, openMs } = await openedWorld(parts, login, 30_000);
      // when each document showed the overlay: it may be up for only a few ms before the reload
      const overlaySince = async (wall: number): Promise<number | undefined> => (await overlays()).find((o) => o.at >= wall)?.at;

      // a file made in the editor: the explorer's New File action, a name, Enter
      await createFileInExplorer(page, 'made-in-editor.txt');
      // bounds only a broken editor exceeds: beside the whole suite on two cores, the first open of the workbench took 23 s
      await page.waitForSelector(explorerRow('made-in-editor.txt'), { state: 'visible', timeout: 30_000 });
      await waitFor('the file on the GPU', () => existsSync(join(world.gpuDir, 'made-in-editor.txt')), { timeoutMs: 30_000 });
      const madeAt = performance.now();

      // every document the tab loads from here on, and whether it was an error
      const documents: { status: number; url: string; at: number; wall: number }[] = [];
      page.on('response', (r) => {
        if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) documents.push({ status: r.status(), url: r.url(), at: performance.now(), wall: Date.now() });
      });
      // the kill comes 2 s after the file was made, and once the agent has acknowledged it (on the
      // standby's disk): an acknowledged write is never lost; one still in flight is the RPO, which
      // a loaded machine would otherwise turn into a missing file
      await world.agent.settled(30_000);
      const ackMs = performance.now() - madeAt;
      await sleep(Math.max(0, 2_000 - (performance.now() - madeAt)));

      const killedAt = performance.now();
      const killedWall = Date.now();
      world.killGpu();
      await waitFor('the overlay, or a new document', async () => documents.length > 0 || (await overlaySince(killedWall)) !== undefined, { timeoutMs: 10_000 });
      // the page's own sockets may close before the proxy doubts the GPU: "Reconnecting to the GPU..." first, for a moment
      const title = await page.locator('#standby-overlay h1', { hasText: TO_STANDBY_TEXT }).textContent({ timeout: 3_000 }).catch(() => null);

      // back: a new document (the script reloaded the tab), served by the standby, its workbench and tree up
      await waitFor('the tab reloaded', () => documents.length > 0, { timeoutMs: 20_000 });
      await page.waitForSelector('.monaco-workbench', { state: 'visible', timeout: WORKBENCH_BACK_MS });
      const workbenchMs = performance.now() - killedAt;
      await page.waitForSelector(explorerRow('made-in-editor.txt'), { state: 'visible', timeout: WORKBENCH_BACK_MS });
      const backMs = performance.now() - killedAt;
      const shownAt = await overlaySince(killedWall);
      assert.ok(shownAt !== undefined, 'the tab showed the overlay before it reloaded');
      const overlayMs = shownAt - killedWall;
      const side = await page.locator('script[data-side]').getAttribute('data-side');

      t.diagnostic(`overlay ${Math.round(overlayMs)} ms after the SIGKILL; workbench back on the standby ${Math.round(backMs)} ms after it (the proxy routed at ${routedMs(world, killedAt)}, the tab reloaded at ${documents.map((d) => `${Math.round(d.at - killedAt)} ms (${d.status})`).join(', ')}, .monaco-workbench at ${Math.round(workbenchMs)} ms, the file in its tree at ${Math.round(backMs)} ms); the file made in the editor acknowledged ${Math.round(ackMs)} ms after it was made; the first open of the workbench took ${Math.round(openMs)} ms; test ${Math.round(performance.now() - started)} ms`);
      assert.equal(world.proxy.store.state.active, 'standby', 'the standby serves');
      assert.equal(side, 'standby', 'the workbench now open was served by the standby');
      if (title !== null) assert.equal(title, TO_STANDBY_TEXT);
      assert.deepEqual(documents.filter((d) => d.status !== 200), [], 'no error page, no transition page: the tab went straight from the overlay to the workbench');
      assert.ok(overlayMs <= OVERLAY_MS, `the overlay showed ${Math.round(overlayMs)} ms after the kill (bound ${OVERLAY_MS} ms)`);
      assert.ok(shownAt <= documents[0]!.wall, 'the overlay showed before the tab reloaded');
      assert.ok(backMs <= WORKBENCH_BACK_MS, `the workbench was back ${Math.round(backMs)} ms after the kill (bound ${WORKBENCH_BACK_MS} ms)`);

      // the switch back: the GPU returns, the admin asks for it (its agent finds its workspace equal to the standby's)
      await world.reviveGpu();
      const before = documents.length;
      const askedAt = performance.now();
      const askedWall = Date.now();
      const res = await world.proxy.api('switch-back', { method: 'POST', body: '{}', signal: AbortSignal.timeout(90_000) });
      assert.equal(res.status, 202, await res.text());
      await waitFor('the overlay, or a new document', async () => documents.length > before || (await overlaySince(askedWall)) !== undefined, { timeoutMs: 30_000 });
      const backTitle = await page.locator('#standby-overlay h1', { hasText: TO_GPU_TEXT }).textContent({ timeout: 3_000 }).catch(() => null);
      await waitFor('the tab reloaded towards the GPU', () => documents.length > before, { timeoutMs: 60_000 });
      await page.waitForSelector(explorerRow('made-in-editor.txt'), { state: 'visible', timeout: WORKBENCH_BACK_MS });
      const gpuBackMs = performance.now() - askedAt;
      const backSide = await page.locator('script[data-side]').getAttribute('data-side');
      const backShownAt = await overlaySince(askedWall);
      assert.ok(backShownAt !== undefined && backShownAt <= documents[before]!.wall, 'the tab showed the overlay before it reloaded towards the GPU');
      const backOverlayMs = backShownAt - askedWall;
      t.diagnostic(`switch back: overlay ${Math.round(backOverlayMs)} ms after it was asked, the GPU's workbench with the file ${Math.round(gpuBackMs)} ms after it (documents ${documents.slice(before).map((d) => `${Math.round(d.at - askedAt)} ms (${d.status})`).join(', ')})`);
      assert.equal(world.proxy.store.state.active, 'primary', 'the GPU serves');
      assert.equal(backSide, 'primary', 'the workbench now open was served by the GPU');
      if (backTitle !== null) assert.equal(backTitle, TO_GPU_TEXT);
      assert.deepEqual(documents.slice(before).filter((d) => d.status !== 200), [], 'no error page on the way back either');
    } finally {
      await parts.browser?.close();
      await parts.world?.close();
    }
  });
}

// with the login off (the test above runs the real editor with it on): one world, the suite's time is bounded
for (const login of [false]) {
  test(`a reload as the GPU dies gets the transition page, never an error, then the standby's workbench (login ${login ? 'on' : 'off'})`, { skip: noChromium || noEditor, timeout: 240_000 }, async (t) => {
    const started = performance.now();
    const parts: Held = {};
    try {
      // the default bound covers its reload with the GPU well, which loads the workbench again
      const { world, page, overlays } = await openedWorld(parts, login, WORKBENCH_BACK_MS);
      // regression: a reload with the GPU well flashed "Switching to the CPU standby..." (its code-server,
      // busy serving the workbench, missed two probes in a row while the agent beat on time)
      await page.reload();
      await page.waitForSelector('html[data-standby="listening"]');
      await page.waitForSelector(explorerRow('hello.txt'), { state: 'visible' });
      assert.deepEqual(await overlays(), [], 'no overlay on a reload while the GPU is well');

      const workbenchUrl = page.url();
      await page.goto('about:blank');
      // every document the tab gets from here on: its status, type and title line
      const documents: Promise<{ status: number; type: string; title: string; at: number }>[] = [];
      let killedAt = 0;
      page.on('response', (r) => {
        if (!r.request().isNavigationRequest() || r.frame() !== page.mainFrame()) return;
        const at = performance.now() - killedAt;
        const h = r.headers();
        // a document replaced at once may have no body to read (a fresh-clone run met one 18 ms before the next): then its
        // headers tell the transition page (the proxy's only HTML 503, with Retry-After) from anything else
        const unread = (): string => (r.status() === 503 && /^text\/html/.test(h['content-type'] ?? '') && h['retry-after'] !== undefined ? TRANSITION_BY_HEADERS : '?');
        documents.push(r.text().then((body) => ({ status: r.status(), type: h['content-type'] ?? '', title: /<title>([^<]*)<\/title>/.exec(body)?.[1] ?? '', at }), () => ({ status: r.status(), type: h['content-type'] ?? '', title: unread(), at })));
      });
      const errorPages: string[] = [];
      let sentAt = 0;
      page.on('request', (r) => {
        if (r.isNavigationRequest() && r.frame() === page.mainFrame() && sentAt === 0) sentAt = performance.now() - killedAt;
      });
      page.on('framenavigated', (f) => {
        if (f === page.mainFrame() && f.url().startsWith('chrome-error:')) errorPages.push(f.url());
      });

      const sshd = world.sshd.pid()!;
      killTree(sshd, 'SIGSTOP');
      let held = true;
      const release = (): void => {
        if (held) killTree(sshd, 'SIGCONT');
        held = false;
      };
      t.after(release);
      killedAt = performance.now();
      world.killGpu();
      await page.goto(workbenchUrl, { waitUntil: 'commit' });
      const first = await documents[0]!;
      const routedEarly = world.proxy.store.state.active === 'standby';
      release();

      // the transition page reloads itself into the standby's workbench: no click
      await waitFor('a document from the standby', async () => (await Promise.all(documents)).some((d) => d.status === 200), { timeoutMs: WORKBENCH_BACK_MS });
      await page.waitForSelector('.monaco-workbench', { state: 'visible', timeout: WORKBENCH_BACK_MS });
      await page.waitForSelector(explorerRow('hello.txt'), { state: 'visible', timeout: WORKBENCH_BACK_MS });
      const backMs = performance.now() - killedAt;
      const side = await page.locator('script[data-side]').getAttribute('data-side');
      const all = await Promise.all(documents);

      t.diagnostic(`the navigation left ${Math.round(sentAt)} ms after the SIGKILL; the proxy routed to the standby ${routedMs(world, killedAt)} after it; documents: ${all.map((d) => `${d.status} ${d.title || d.type} at ${Math.round(d.at)} ms`).join(', ')}; workbench back ${Math.round(backMs)} ms after the kill; test ${Math.round(performance.now() - started)} ms`);
      assert.equal(routedEarly, false, 'the route had not moved when the first answer came');
      const transition = (d: { status: number; title: string }): boolean => d.status === 503 && (d.title === 'Switching machine' || d.title === TRANSITION_BY_HEADERS);
      assert.ok(transition(first), `the reload in the window got the transition page, not ${first.status} "${first.title}"`);
      for (const d of all) {
        assert.ok(transition(d) || (d.status === 200 && /^text\/html/.test(d.type)), `every document is the transition page or the workbench, not ${d.status} ${d.type} "${d.title}"`);
      }
      assert.deepEqual(errorPages, [], 'no browser error page');
      assert.equal(side, 'standby', 'the workbench now open was served by the standby');
    } finally {
      await parts.browser?.close();
      await parts.world?.close();
    }
  });
}

/** What a test started, for its finally: each part as soon as it is made. */
interface Held {
  world?: EditorWorld;
  browser?: Browser;
}

/**
 * A world whose GPU holds hello.txt (synced to the standby), and a page in a fresh Chromium profile that
 * records every overlay, opened on the workbench through the proxy; `defaultTimeoutMs` bounds the page's
 * later steps.
 */
async function openedWorld(held: Held, login: boolean, defaultTimeoutMs: number): Promise<{ world: EditorWorld; page: Page; overlays: Awaited<ReturnType<typeof recordOverlay>>; openMs: number }> {
  const world = (held.world = await startEditorWorld({ login }));
  writeFileSync(join(world.gpuDir, 'hello.txt'), 'hello\n');
  await world.agent.settled(15_000);
  const browser = (held.browser = await launchChromium());
  const page = await browser.context.newPage();
  page.setDefaultTimeout(defaultTimeoutMs);
  const overlays = await recordOverlay(page);
  const openedAt = performance.now();
  await openWorkbench(page, world, { login, file: 'hello.txt', timeoutMs: FIRST_OPEN_MS });
  return { world, page, overlays, openMs: performance.now() - openedAt };
}

/** When the proxy routed to the standby, in ms after `killedAt`, from its log (for the diagnostic). */
function routedMs(world: EditorWorld, killedAt: number): string {
  const routed = world.proxy.logs.find((l) => l.msg === 'routed' && l.side === 'standby');
  const time = typeof routed?.time === 'number' ? routed.time : undefined;
  return time === undefined ? 'unknown' : `${Math.round(time - (Date.now() - (performance.now() - killedAt)))} ms`;
}
