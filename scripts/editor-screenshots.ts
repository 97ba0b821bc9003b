// Writes docs/editor-overlay.png and docs/editor-transition-page.png: the
// overlay the injected script lays over code-server's workbench when the GPU
// dies, and the transition page a tab loading the URL gets meanwhile. A real
// editor world (test/fixtures/editor-world.ts: code-server on each side, the
// agent, the proxy); the standby's code-server is stopped first so that both
// stay on screen (the proxy says the standby is not ready yet) long enough to
// be taken. Not part of npm test:
//   node scripts/editor-screenshots.ts
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium } from '../test/fixtures/chromium.ts';
import { noEditor, openWorkbench, startEditorWorld } from '../test/fixtures/editor-world.ts';
import { waitFor } from '../test/fixtures/wait-for.ts';

if (noEditor) throw new Error(noEditor);
const docs = join(import.meta.dirname, '..', 'docs');
const world = await startEditorWorld();
const browser = await launchChromium();
try {
  writeFileSync(join(world.gpuDir, 'train.py'), 'print("training")\n');
  await world.agent.settled(15_000);
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1100, height: 700 });
  page.setDefaultTimeout(60_000);
  await openWorkbench(page, world, { file: 'train.py' });
  await world.cpu.close();
  world.killGpu();
  await page.waitForSelector('#standby-overlay .card', { state: 'visible' });
  await waitFor('the proxy says the standby is not ready', () => world.proxy.store.state.phase === 'failed_over', { timeoutMs: 20_000 });
  await page.waitForSelector('#standby-overlay .line:has-text("starting on the standby")');
  await page.screenshot({ path: join(docs, 'editor-overlay.png'), animations: 'disabled' });
  const tab = await browser.context.newPage();
  await tab.setViewportSize({ width: 1100, height: 700 });
  await tab.goto(page.url());
  await tab.waitForSelector('#status');
  await tab.screenshot({ path: join(docs, 'editor-transition-page.png'), animations: 'disabled' });
  console.log(`written: ${join(docs, 'editor-overlay.png')}, ${join(docs, 'editor-transition-page.png')}`);
} finally {
  await browser.close();
  await world.close();
}
