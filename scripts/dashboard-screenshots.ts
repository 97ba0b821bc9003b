// Writes the dashboard's screenshots into docs/: dashboard-recovery.png (a
// recovery under way after the GPU was killed), dashboard-normal.png (the new
// GPU serving again: the lag chart, the failover with its phases, the report,
// the costs), dashboard-settings.png (the settings form) and
// dashboard-phone.png (the same page on a phone's width). The whole system on
// this machine (cli/support/local-world.ts: the proxy with a recovery on the
// local provider, real agents, sshd), Debian's Chromium. Not part of npm test:
//   node scripts/dashboard-screenshots.ts
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startLocalWorld } from '../cli/support/local-world.ts';
import { launchChromium, noChromium } from '../test/fixtures/chromium.ts';
import { waitFor } from '../test/fixtures/wait-for.ts';

if (noChromium) throw new Error(noChromium);
const docs = join(import.meta.dirname, '..', 'docs');
let logText = '';
const log = pino({ level: 'info' }, new Writable({ write(c: Buffer, _e, cb) { logText = (logText + c.toString()).slice(-100_000); cb(); } }));
const world = await startLocalWorld({ log });
const browser = await launchChromium();
try {
  const proxy = world.proxy;
  await waitFor('the GPU serves, its agent heard', () => proxy.store.state.phase === 'normal' && (proxy.hub.agents.get('gpu-1')?.heartbeats ?? 0) > 2, { timeoutMs: 60_000 });
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1200, height: 900 });
  page.setDefaultTimeout(60_000);
  await page.goto(`${proxy.url}/_standby/`);
  await page.fill('#token', world.adminToken);
  await page.click('button[type=submit]');
  await page.waitForSelector('body[data-live="yes"]');

  // a developer at work: files written for a while (the chart's lag), a dataset big enough for the restore to show its progress
  const data = join(world.gpu.workspace, 'data');
  mkdirSync(data, { recursive: true });
  const chunk = Buffer.alloc(256 * 1024, 7);
  for (let i = 0; i < 40; i++) {
    for (let j = 0; j < 10; j++) writeFileSync(join(data, `part-${i}-${j}.bin`), chunk);
    writeFileSync(join(world.gpu.workspace, 'train.log'), `step ${i}\n`, { flag: 'a' });
    await page.waitForTimeout(150); // the writer's pace
  }
  await waitFor('the standby has it all', () => {
    const sync = proxy.hub.agents.get('gpu-1')?.last?.sync;
    return sync !== undefined && sync.pending === 0 && sync.watermark === sync.lastSeq;
  }, { timeoutMs: 60_000 });

  // the GPU dies: the failover, then the recovery to a new GPU
  world.killGpu();
  await waitFor('a recovery under way', () => proxy.store.state.phase === 'recovering', { timeoutMs: 60_000 });
  // the restore's progress bar if the page catches it (a small workspace restores in a second or two), else the step it shows
  await page.waitForSelector('#recovery .progress', { timeout: 120_000 }).catch(() => page.waitForSelector('#recovery p'));
  // and some of it done, if it lasts that long
  await page.waitForSelector('#recovery .note:not(:text-matches("^restore: 0 files"))', { timeout: 5_000 }).catch(() => undefined);
  await page.screenshot({ path: join(docs, 'dashboard-recovery.png'), animations: 'disabled' });

  await waitFor('the new GPU serves', () => proxy.store.state.phase === 'normal' && proxy.store.state.gpu !== null, { timeoutMs: 180_000 });
  await page.waitForSelector('#failovers .failover[data-outcome="succeeded"]');
  await waitFor('the new GPU has pushed everything to the standby', () => {
    const gpu = proxy.store.state.gpu;
    const sync = gpu ? proxy.hub.agents.get(gpu.id)?.last?.sync : undefined;
    return sync !== undefined && sync.ready && sync.pending === 0;
  }, { timeoutMs: 120_000 });
  await page.waitForSelector('#watermark-age:has-text("nothing pending")');
  await page.screenshot({ path: join(docs, 'dashboard-normal.png'), animations: 'disabled', fullPage: true });

  await page.locator('#settings').scrollIntoViewIfNeeded();
  await page.locator('#settings').screenshot({ path: join(docs, 'dashboard-settings.png'), animations: 'disabled' });

  const phone = await browser.context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${proxy.url}/_standby/`);
  await phone.waitForSelector('body[data-live="yes"]');
  await phone.screenshot({ path: join(docs, 'dashboard-phone.png'), animations: 'disabled' });
  console.log(`written: docs/dashboard-recovery.png, docs/dashboard-normal.png, docs/dashboard-settings.png, docs/dashboard-phone.png`);
} catch (err) {
  writeFileSync('/tmp/dashboard-screenshots.log', logText);
  console.error('failed; the proxy log is in /tmp/dashboard-screenshots.log');
  throw err;
} finally {
  await browser.close();
  await world.close();
}
