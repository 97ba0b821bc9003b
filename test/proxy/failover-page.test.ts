// The real proxy's transition page in Chromium: the GPU dies while the
// standby's code-server is not up yet; a browser at the developer's URL gets
// "Switching machine", follows the live status, and reloads into the
// standby's workspace by itself once it answers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchChromium, noChromium, type Browser } from '../fixtures/chromium.ts';
import { heartbeatsFlowing, startWorld } from '../fixtures/failover-world.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../fixtures/workspace-server.ts';

test('GPU dead, standby not ready yet: the page says so, then reloads into the standby', { skip: noChromium, timeout: 90_000 }, async () => {
  const world = await startWorld();
  let browser: Browser | undefined;
  let cpuAgain: WorkspaceServer | undefined;
  try {
    await heartbeatsFlowing(world);
    browser = await launchChromium();
    const page = await browser.context.newPage();
    page.setDefaultTimeout(10_000);
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`${world.proxy.url}/?folder=/workspace`);
    assert.match((await page.textContent('body')) ?? '', /"name":"gpu"/);

    // the standby's code-server is down when the GPU dies
    const cpuPort = world.cpuServer.port;
    await world.cpuServer.close();
    world.killGpu();
    await waitFor('failed over', () => world.proxy.store.state.phase === 'failed_over', { timeoutMs: 15_000 });
    await waitFor('the proxy saw the standby down', async () => (await world.get('/_standby/status').then((r) => JSON.parse(r.body) as { ready: boolean })).ready === false, { timeoutMs: 5_000 });

    const loads: string[] = [];
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) loads.push(f.url());
    });
    await page.reload();
    assert.equal(await page.title(), 'Switching machine');
    await page.waitForFunction(() => /standby/.test((globalThis as unknown as { document: { getElementById(id: string): { textContent: string } | null } }).document.getElementById('status')?.textContent ?? ''));

    cpuAgain = await startWorkspaceServer({ name: 'cpu', port: cpuPort });
    await page.waitForFunction(() => /"name":"cpu"/.test((globalThis as unknown as { document: { body: { textContent: string } } }).document.body.textContent), undefined, { timeout: 15_000 });
    assert.equal(new URL(page.url()).search, '?folder=/workspace', 'back at the same URL');
    assert.ok(loads.length >= 2, 'the page reloaded itself');
    const origin = new URL(world.proxy.url).origin;
    assert.deepEqual(requests.filter((u) => !u.startsWith(origin) && !u.startsWith('data:')), [], 'nothing but the proxy was asked for anything');
  } finally {
    await browser?.close();
    await cpuAgain?.close();
    await world.close();
  }
});
