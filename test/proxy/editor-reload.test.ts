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
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { killTree } from '../../core/process-tree.ts';
import { launchChromium, noChromium, type Browser } from '../fixtures/chromium.ts';
import { explorerRow, noEditor, openWorkbench, recordOverlay, startEditorWorld, type EditorWorld } from '../fixtures/editor-world.ts';
import { waitFor } from '../fixtures/wait-for.ts';

// with the login off (editor-switch.test.ts runs the real editor with it on): one world, the suite's time is bounded
for (const login of [false]) {
  test(`a reload as the GPU dies gets the transition page, never an error, then the standby's workbench (login ${login ? 'on' : 'off'})`, { skip: noChromium || noEditor, timeout: 120_000 }, async (t) => {
    const started = performance.now();
    let world: EditorWorld | undefined;
    let browser: Browser | undefined;
    try {
      world = await startEditorWorld({ login });
      writeFileSync(join(world.gpuDir, 'hello.txt'), 'hello\n');
      await world.agent.settled(15_000);
      browser = await launchChromium();
      const page = await browser.context.newPage();
      page.setDefaultTimeout(30_000);
      const overlays = await recordOverlay(page);
      await openWorkbench(page, world, { login, file: 'hello.txt' });
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
        documents.push(r.text().then((body) => ({ status: r.status(), type: r.headers()['content-type'] ?? '', title: /<title>([^<]*)<\/title>/.exec(body)?.[1] ?? '', at }), () => ({ status: r.status(), type: r.headers()['content-type'] ?? '', title: '?', at })));
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
      await waitFor('a document from the standby', async () => (await Promise.all(documents)).some((d) => d.status === 200), { timeoutMs: 30_000 });
      await page.waitForSelector('.monaco-workbench', { state: 'visible', timeout: 30_000 });
      await page.waitForSelector(explorerRow('hello.txt'), { state: 'visible', timeout: 30_000 });
      const backMs = performance.now() - killedAt;
      const side = await page.locator('script[data-side]').getAttribute('data-side');
      const all = await Promise.all(documents);

      t.diagnostic(`the navigation left ${Math.round(sentAt)} ms after the SIGKILL; the proxy routed to the standby ${routedMs(world, killedAt)} after it; documents: ${all.map((d) => `${d.status} ${d.title || d.type} at ${Math.round(d.at)} ms`).join(', ')}; workbench back ${Math.round(backMs)} ms after the kill; test ${Math.round(performance.now() - started)} ms`);
      assert.equal(routedEarly, false, 'the route had not moved when the first answer came');
      assert.deepEqual({ status: first.status, title: first.title }, { status: 503, title: 'Switching machine' }, 'the reload in the window got the transition page');
      for (const d of all) {
        assert.ok((d.status === 503 && d.title === 'Switching machine') || (d.status === 200 && /^text\/html/.test(d.type)), `every document is the transition page or the workbench, not ${d.status} ${d.type} "${d.title}"`);
      }
      assert.deepEqual(errorPages, [], 'no browser error page');
      assert.equal(side, 'standby', 'the workbench now open was served by the standby');
    } finally {
      await browser?.close();
      await world?.close();
    }
  });
}

/** When the proxy routed to the standby, in ms after `killedAt` (performance.now()), from its log. */
function routedMs(world: EditorWorld, killedAt: number): string {
  const routed = world.proxy.logs.find((l) => l.msg === 'routed' && l.side === 'standby');
  return typeof routed?.time === 'number' ? `${Math.round(routed.time - (Date.now() - (performance.now() - killedAt)))} ms` : 'at an unknown time';
}
