// The dashboard in Chromium against the real thing: the proxy, the GPU's
// agent (a process) syncing to the standby's receiver over a loopback sshd.
// Log in with the admin token; the page shows the state (the GPU serves, the
// epoch, its heartbeat) and its lag chart moves while files are written; a
// mass deletion the agent holds is released with the page's button; the
// sync delay changed in the settings form reaches the agent (its status shows
// it, and the next pass waits for it); a failover appears in the history with
// its phases; logging out brings the login form back. The page runs under its strict CSP with no violation.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentUnavailable } from '../fixtures/agent-process.ts';
import { closePage, launchChromium, noChromium, type Browser } from '../fixtures/chromium.ts';
import { heartbeatsFlowing, startWorld } from '../fixtures/failover-world.ts';
import { ADMIN_TOKEN } from '../fixtures/proxy.ts';
import { waitFor } from '../fixtures/wait-for.ts';

test('the dashboard: log in, the state and the lag chart live while files are written, the sync delay set live, a failover in the history with its phases, log out', { skip: noChromium || agentUnavailable(), timeout: 90_000 }, async (t) => {
  // a sync delay of a second: changes wait, so the lag the chart draws is not zero
  const world = await startWorld({ agentSettings: { sync: { retryMinMs: 100, retryMaxMs: 1_000, delayMs: 1_000, maxDelayMs: 3_000, deleteGuard: { fraction: 0.5, minFiles: 5 } } } });
  t.after(() => world.close());
  await heartbeatsFlowing(world, { normal: true });

  let browser: Browser | undefined;
  t.after(() => browser?.close());
  browser = await launchChromium();
  const page = await browser.context.newPage();
  page.setDefaultTimeout(10_000);
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  // a refused resource is the page's business (the wrong token's 401); a CSP violation is not
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/.test(m.text())) problems.push(m.text());
  });

  // 1. log in: a wrong token is refused, the right one opens the page
  await page.goto(`${world.proxy.url}/_standby/`);
  await page.fill('#token', 'not-the-token');
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Wrong admin token.');
  await page.fill('#token', ADMIN_TOKEN);
  await page.click('button[type=submit]');
  await page.waitForSelector('body[data-live="yes"]');
  assert.ok(!page.url().includes(ADMIN_TOKEN), 'the token is never in a URL');

  // 2. the state, and the lag chart moving while files are written
  assert.equal(await page.textContent('#serving'), 'GPU gpu-1');
  assert.equal(await page.textContent('#phase'), 'normal');
  assert.equal(await page.textContent('#epoch'), String(world.proxy.store.state.epoch));
  await page.waitForSelector('#hosts tr[data-host="gpu-1"] td:has-text("healthy")');
  assert.match((await page.textContent('#hosts tr[data-host="gpu-1"]')) ?? '', /ms ago|s ago/);
  assert.equal(await page.locator('#lag-chart canvas').count(), 1, 'uPlot drew the chart');
  const before = Number(await page.getAttribute('#lag-chart', 'data-samples'));
  const dir = join(world.gpuDir, 'work');
  mkdirSync(dir);
  const writes = performance.now();
  for (let i = 0; performance.now() - writes < 3_000 && i < 60; i++) {
    writeFileSync(join(dir, `f${i}.txt`), `line ${i}\n`);
    await page.waitForTimeout(100); // a writer's pace, not a wait for a condition
  }
  await page.waitForSelector('#lag-chart:not([data-max-lag-ms="0"])');
  const after = Number(await page.getAttribute('#lag-chart', 'data-samples'));
  assert.ok(after > before, `the chart grew (${before} -> ${after} samples)`);
  await world.agent!.settled(15_000);
  await page.waitForSelector('#watermark-age:has-text("nothing pending")');

  // a mass deletion is held by the agent's guard: the page's button releases it, after a confirmation
  rmSync(dir, { recursive: true });
  await page.waitForSelector('#held', { state: 'visible', timeout: 15_000 });
  assert.ok(existsSync(join(world.cpuDir, 'work', 'f0.txt')), 'held: still on the standby');
  page.once('dialog', (d) => void d.accept());
  await page.click('#confirm-deletes');
  await page.waitForSelector('#confirm-result:has-text("Released")');
  await waitFor('the deletion on the standby', () => !existsSync(join(world.cpuDir, 'work')), { timeoutMs: 15_000 });
  await page.waitForSelector('#held', { state: 'hidden' });

  // 3. the sync delay changed on the page: the agent applies it without a restart (its status shows it) and the next pass waits for it
  await page.waitForSelector('#agent-applied[data-delay-ms="1000"]');
  assert.match((await page.textContent('#settings label[for="set-agentSync-delayMs"]')) ?? '', /sent to the agent/);
  await page.fill('input[data-path="agentSync.delayMs"]', '3000');
  await page.fill('input[data-path="agentSync.maxDelayMs"]', '6000');
  await page.click('#settings-save');
  await page.waitForSelector('#settings-result:has-text("Saved.")');
  await page.waitForSelector('#agent-applied[data-delay-ms="3000"][data-max-delay-ms="6000"]', { timeout: 15_000 });
  const applied = (await world.agent!.status()).settings as { delayMs: number; maxDelayMs: number; pushed: boolean };
  assert.deepEqual([applied.delayMs, applied.maxDelayMs, applied.pushed], [3_000, 6_000, true], 'the agent itself says so');
  await world.agent!.settled(15_000, { quietMs: 300 });
  const written = performance.now();
  writeFileSync(join(world.gpuDir, 'after-the-change.txt'), 'waits for the new delay\n');
  await waitFor('the file on the standby', () => existsSync(join(world.cpuDir, 'after-the-change.txt')), { timeoutMs: 20_000 });
  const tookMs = performance.now() - written;
  // a lower bound only: a loaded machine makes the pass later, never earlier
  assert.ok(tookMs >= 2_500, `the next pass waited for the 3 s delay (the file took ${Math.round(tookMs)} ms)`);

  // 4. a failover (the admin's, through the API) appears in the history with its phases
  assert.equal(await page.locator('#failovers .failover').count(), 0);
  const asked = await world.proxy.api('failover', { method: 'POST' });
  assert.equal(asked.status, 202, await asked.text());
  await page.waitForSelector('#serving:has-text("CPU standby cpu-1")', { timeout: 20_000 });
  const row = page.locator('#failovers .failover[data-outcome="succeeded"]');
  await row.waitFor({ timeout: 20_000 });
  const phases: (string | null)[] = [];
  for (const bar of await row.locator('.bar').all()) phases.push(await bar.getAttribute('data-phase'));
  assert.deepEqual(phases, ['final-pass', 'fence', 'route']);
  assert.match((await row.textContent()) ?? '', /planned/);
  assert.match((await row.locator('.rpo').textContent()) ?? '', /RPO/);
  await page.waitForSelector('#report-figures dd:has-text("1 of 1 (100%)")');

  // on a phone's width nothing is wider than the screen (the same session: the browser's cookie)
  const phone = await browser.context.newPage();
  await phone.setViewportSize({ width: 375, height: 800 });
  await phone.goto(`${world.proxy.url}/_standby/`);
  await phone.waitForSelector('#failovers .failover');
  assert.ok(Number(await phone.evaluate('document.documentElement.scrollWidth')) <= 375, 'readable on a phone: no sideways scrolling');
  await closePage(phone);

  // 5. log out: the login form again, also on a reload
  await page.click('#logout');
  await page.waitForSelector('#token');
  await page.goto(`${world.proxy.url}/_standby/`);
  await page.waitForSelector('#token');
  assert.deepEqual(problems, [], 'no script error, no CSP violation');
  await closePage(page);
});
