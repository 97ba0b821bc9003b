// bench/editor: what the developer's editor does when the GPU dies, in
// headless Chromium (Debian's, through playwright-core) with a real
// code-server 4.139.1 on each side. Each trial builds a fresh world, opens the
// workbench through the proxy, waits for its file tree, SIGKILLs the GPU and
// measures on the monotonic clock from the kill. Systems, alternated:
//  - Standby: the editor world of the tests (test/fixtures/editor-world.ts:
//    the real agent syncing to the standby's receiver over sshd, the proxy with
//    its injected script); the GPU's code-server and agent SIGKILLed. Figures:
//    the overlay visible, and a working workbench back on the standby (a new
//    document, `.monaco-workbench` and the file tree), with no click.
//  - a plain proxy: http-proxy-3 alone in front of the same two code-servers,
//    moving its target to the standby at the instant of the kill (no detector
//    could be faster); the GPU's code-server SIGKILLed. Figures: code-server's
//    own "Cannot reconnect" dialog visible, and the workbench back counted from
//    a click on its Reload Window button (the dialog waits for that click).
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createProxyServer } from 'http-proxy-3';
import type { Page } from 'playwright-core';
import { launchChromium, noChromium, type Browser } from '../../test/fixtures/chromium.ts';
import { startCodeServer } from '../../test/fixtures/code-server.ts';
import { explorerRow, noEditor, openWorkbench, recordOverlay, startEditorWorld, type CodeServer, type EditorWorld } from '../../test/fixtures/editor-world.ts';
import { editorTimesChart } from '../chart-specs.ts';
import { percentile, seconds, type CaseResult } from '../report.ts';
import { removeScratch, scratchDir } from '../scratch.ts';

/** BENCH_TRIALS=n (default 5) trials of each system */
const TRIALS = Number(process.env.BENCH_TRIALS ?? 5);
/** the issue's targets, from the SIGKILL */
const OVERLAY_TARGET_MS = 1_500;
const BACK_TARGET_MS = 6_000;
/** how long a trial waits for each step before it counts as not reached */
const STEP_MS = 30_000;
const FILE = 'hello.txt';
/** loads of the workbench before the kill beyond the first, for a browser whose code cache is warm */
const WARM_LOADS = 2;
const BENCH_OUT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '.bench-out');

interface Trial {
  /** kill -> the overlay shown (Standby: the moment the page showed it, kept across its reload by recordOverlay) or code-server's dialog visible (plain proxy) */
  shownMs?: number;
  /** kill -> a working workbench on the standby (Standby: no click); plain proxy: from the click on Reload Window */
  backMs?: number;
  /** what went wrong, when a step was not reached */
  missed?: string;
}

/** Every navigation of the tab's main frame from now on, timed from `since()`. */
function documentsOf(page: Page, since: () => number): number[] {
  const at: number[] = [];
  page.on('response', (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) at.push(performance.now() - since());
  });
  return at;
}

/**
 * Loads the open workbench again `times` times: Chromium compiles a script afresh on its first two
 * loads and keeps V8's code cache from the second, so a developer's browser, which has opened the
 * workbench many times, starts it faster than a fresh profile does.
 */
async function warm(page: Page, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    await page.reload();
    await page.waitForSelector('.monaco-workbench', { state: 'visible' });
    await page.waitForSelector(explorerRow(FILE), { state: 'visible' });
  }
}

async function standbyTrial(warmLoads: number): Promise<Trial> {
  let world: EditorWorld | undefined;
  let browser: Browser | undefined;
  try {
    world = await startEditorWorld();
    writeFileSync(join(world.gpuDir, FILE), 'hello\n');
    await world.agent.settled(15_000);
    browser = await launchChromium();
    const page = await browser.context.newPage();
    page.setDefaultTimeout(STEP_MS);
    // the moment the overlay showed, kept across the reload: it may be up only a few ms before it (editor-world.ts)
    const overlays = await recordOverlay(page);
    await openWorkbench(page, world, { file: FILE });
    await warm(page, warmLoads);
    let killedAt = 0;
    const documents = documentsOf(page, () => killedAt);
    killedAt = performance.now();
    const killedWall = Date.now();
    world.killGpu();
    const trial: Trial = {};
    try {
      await waitUntil(() => documents.length > 0, STEP_MS, 'the tab reloaded');
      await page.waitForSelector('.monaco-workbench', { state: 'visible' });
      await page.waitForSelector(explorerRow(FILE), { state: 'visible' });
      trial.backMs = performance.now() - killedAt;
      const shown = (await overlays()).find((o) => o.at >= killedWall)?.at;
      if (shown === undefined) throw new Error('the tab reloaded without showing the overlay');
      trial.shownMs = shown - killedWall;
    } catch (err) {
      trial.missed = (err as Error).message.split('\n')[0];
    }
    return trial;
  } finally {
    await browser?.close();
    await world?.close();
  }
}

/** http-proxy-3 alone, forwarding HTTP and WebSockets to `target()`, Host kept (code-server checks Origin against it). */
async function plainProxy(target: () => string): Promise<{ url: string; close(): Promise<void> }> {
  const proxy = createProxyServer({ xfwd: true, ws: true, changeOrigin: false });
  proxy.on('error', (_err, _req, res) => {
    if (res && 'writeHead' in res && !res.headersSent) res.writeHead(502).end();
    else if (res && 'destroy' in res) res.destroy();
  });
  const server: Server = createServer((req, res) => void proxy.web(req, res, { target: target() }));
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    void proxy.ws(req, socket, head, { target: target() });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  // every client socket, upgraded ones included (closeAllConnections leaves those, and close() waits for them)
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      const closed = new Promise((r) => server.close(r));
      for (const socket of sockets) socket.destroy();
      await closed;
      proxy.close();
    },
  };
}

async function plainTrial(warmLoads: number): Promise<Trial> {
  const top = scratchDir('standby-bench-editor-');
  const folder = join(top, 'workspace');
  const gpuDir = join(top, 'gpu');
  const cpuDir = join(top, 'cpu');
  for (const d of [folder, gpuDir, cpuDir]) mkdirSync(d);
  writeFileSync(join(gpuDir, FILE), 'hello\n');
  writeFileSync(join(cpuDir, FILE), 'hello\n');
  let gpu: CodeServer | undefined;
  let cpu: CodeServer | undefined;
  let proxy: Awaited<ReturnType<typeof plainProxy>> | undefined;
  let browser: Browser | undefined;
  try {
    // the same two code-servers as the editor world's: one path, each machine's folder there
    gpu = await startCodeServer({ folder, bind: gpuDir, userDataDir: join(top, 'gpu-code-server', 'user'), extensionsDir: join(top, 'gpu-code-server', 'ext') });
    cpu = await startCodeServer({ folder, bind: cpuDir, userDataDir: join(top, 'cpu-code-server', 'user'), extensionsDir: join(top, 'cpu-code-server', 'ext') });
    let target = gpu.url;
    proxy = await plainProxy(() => target);
    browser = await launchChromium();
    const page = await browser.context.newPage();
    page.setDefaultTimeout(STEP_MS);
    await page.goto(`${proxy.url}/`);
    await page.waitForSelector('.monaco-workbench', { state: 'visible' });
    await page.waitForSelector(explorerRow(FILE), { state: 'visible' });
    await warm(page, warmLoads);
    let clickedAt = 0;
    const documents = documentsOf(page, () => clickedAt);
    const killedAt = performance.now();
    gpu.kill('SIGKILL');
    target = cpu.url;
    const trial: Trial = {};
    try {
      const dialog = page.locator('.monaco-dialog-box').filter({ hasText: /reconnect/i });
      await dialog.waitFor({ state: 'visible' });
      trial.shownMs = performance.now() - killedAt;
      clickedAt = performance.now();
      await dialog.locator('.monaco-button', { hasText: /reload/i }).first().click();
      await waitUntil(() => documents.length > 0, STEP_MS, 'the tab reloaded');
      await page.waitForSelector('.monaco-workbench', { state: 'visible' });
      await page.waitForSelector(explorerRow(FILE), { state: 'visible' });
      trial.backMs = performance.now() - clickedAt;
    } catch (err) {
      trial.missed = (err as Error).message.split('\n')[0];
      // what the page showed instead, for a look after the run (.bench-out/, git-ignored)
      mkdirSync(BENCH_OUT, { recursive: true });
      const shot = join(BENCH_OUT, `editor-plain-missed-${Date.now()}.png`);
      await page.screenshot({ path: shot }).catch(() => undefined);
      trial.missed += ` (the page: ${shot})`;
    }
    return trial;
  } finally {
    await browser?.close();
    await proxy?.close();
    await cpu?.close();
    await gpu?.close();
    removeScratch(top);
  }
}

async function waitUntil(ok: () => boolean, withinMs: number, what: string): Promise<void> {
  const deadline = performance.now() + withinMs;
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function run(): Promise<CaseResult> {
  const unavailable = noChromium || noEditor;
  if (unavailable) throw new Error(unavailable);
  const runs = { standby: [] as Trial[], warm: [] as Trial[], plain: [] as Trial[] };
  for (let i = 0; i < TRIALS; i++) {
    // rotate which goes first, so a drift of the machine weighs on all alike
    const order = (['standby', 'warm', 'plain'] as const).map((_, j, all) => all[(i + j) % all.length]!);
    for (const which of order) {
      const trial = which === 'standby' ? await standbyTrial(0) : which === 'warm' ? await standbyTrial(WARM_LOADS) : await plainTrial(WARM_LOADS);
      runs[which].push(trial);
      process.stderr.write(`  trial ${i + 1} ${which}: shown ${seconds(trial.shownMs)}, back ${seconds(trial.backMs)}${trial.missed ? ` (${trial.missed})` : ''}\n`);
    }
  }
  const med = (xs: (number | undefined)[]): number | undefined => percentile(xs.filter((x): x is number => x !== undefined), 50);
  const list = (xs: (number | undefined)[]): string => xs.map((x) => seconds(x)).join(', ');
  const verdict = (x: number | undefined, target: number): string => (x === undefined ? 'no figure' : x <= target ? 'met' : 'MISSED');
  const shown = (t: Trial[]): (number | undefined)[] => t.map((x) => x.shownMs);
  const back = (t: Trial[]): (number | undefined)[] => t.map((x) => x.backMs);
  const missed = [...runs.standby.map((t, i) => (t.missed ? `Standby trial ${i + 1}: ${t.missed}` : '')), ...runs.warm.map((t, i) => (t.missed ? `Standby (warm browser) trial ${i + 1}: ${t.missed}` : '')), ...runs.plain.map((t, i) => (t.missed ? `plain proxy trial ${i + 1}: ${t.missed}` : ''))].filter(Boolean);
  return {
    tables: [
      {
        title: `The editor when the GPU dies: ${TRIALS} trials each, from the SIGKILL, headless Chromium, code-server 4.139.1 on each side`,
        columns: ['system', 'what the developer sees first', 'seen at (median)', 'trials', 'working workbench back (median)', 'trials', 'click', 'target'],
        rows: [
          ['Standby proxy (detector, fence, route; the injected script); a fresh browser profile: the workbench opened once before the kill', 'the overlay "Switching to the CPU standby..."', seconds(med(shown(runs.standby))), list(shown(runs.standby)), seconds(med(back(runs.standby))), list(back(runs.standby)), 'none',
            `overlay <= ${seconds(OVERLAY_TARGET_MS)}: ${verdict(med(shown(runs.standby)), OVERLAY_TARGET_MS)}; back <= ${seconds(BACK_TARGET_MS)}: ${verdict(med(back(runs.standby)), BACK_TARGET_MS)}`],
          [`the same, a warm browser: the workbench loaded ${WARM_LOADS + 1} times before the kill (V8's code cache in use, as in a developer's browser)`, 'the overlay', seconds(med(shown(runs.warm))), list(shown(runs.warm)), seconds(med(back(runs.warm))), list(back(runs.warm)), 'none',
            `overlay <= ${seconds(OVERLAY_TARGET_MS)}: ${verdict(med(shown(runs.warm)), OVERLAY_TARGET_MS)}; back <= ${seconds(BACK_TARGET_MS)}: ${verdict(med(back(runs.warm)), BACK_TARGET_MS)}`],
          [`plain proxy (http-proxy-3), switched at the instant of the kill; a warm browser (${WARM_LOADS + 1} loads)`, 'code-server\'s dialog "Cannot reconnect. Please reload the window."', seconds(med(shown(runs.plain))), list(shown(runs.plain)), `${seconds(med(back(runs.plain)))} after the click`, list(back(runs.plain)), 'Reload Window', ''],
        ],
      },
    ],
    notes: [
      'Standby: the editor world of the tests (test/fixtures/editor-world.ts): code-server on each side in a mount namespace of its own where one path is its machine\'s workspace, the GPU\'s real agent syncing to the standby\'s receiver over a real sshd, the proxy (detector at its defaults, heartbeats every 500 ms) in the bench\'s process. Killed: the GPU\'s code-server (its whole process tree), its agent and the agent\'s ssh master, SIGKILL. Back: the tab has loaded a new document (the script\'s reload), `.monaco-workbench` is visible and the explorer shows the workspace\'s file.',
      'Plain proxy: http-proxy-3 with the options the bench\'s bare proxy uses (xfwd, ws, Host kept), in the bench\'s process, its target moved to the standby\'s code-server in the same tick as the SIGKILL of the GPU\'s. code-server\'s client reconnects to a server that never saw its reconnection token and shows its modal dialog; nothing happens until someone clicks. Its "back" is counted from that click.',
      'Each trial starts a fresh world and a fresh browser profile; the systems take turns at running first. Chromium compiles the workbench\'s scripts afresh on their first two loads and uses V8\'s code cache from the third: a developer\'s browser has loaded the workbench many times, a fresh profile once.',
      ...(missed.length ? [`Steps not reached: ${missed.join('; ')}.`] : []),
      'Partial run: BENCH_TRIALS=n (default 5).',
    ],
    charts: [editorTimesChart(
      ([['Standby proxy, fresh browser', runs.standby], ['Standby proxy, warm browser', runs.warm], ['plain proxy (http-proxy-3)', runs.plain]] as const).flatMap(([system, trials]) =>
        trials.flatMap((t, i) => [
          ...(t.shownMs === undefined ? [] : [{ system, measure: 'shown' as const, trial: i + 1, seconds: t.shownMs / 1000 }]),
          ...(t.backMs === undefined ? [] : [{ system, measure: 'back' as const, trial: i + 1, seconds: t.backMs / 1000 }]),
        ])),
      `Every trial of this run (a dot each; a black tick is the median), from the SIGKILL; steps a trial did not reach are not drawn. Targets: the overlay <= ${seconds(OVERLAY_TARGET_MS)}, back <= ${seconds(BACK_TARGET_MS)}.`,
      'run',
    )],
  };
}
