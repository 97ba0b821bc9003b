// Unsaved text survives the GPU's death: code-server 4.139.1 keeps hot-exit
// backups of unsaved editors on the server, in <user-data-dir>/User/Backups/
// (docs/editor.md), and the agent's editor roots carry them to the standby.
// Text typed in an untitled editor, never saved, 3 s (or, on a loaded machine,
// until it reached the standby's disk: the times are printed) before the GPU's
// agent and code-server are SIGKILLed is in the standby's copy, and a
// code-server started on that copy, opened by a browser that never saw the
// GPU, offers it back.
//
// Real parts: code-server and Chromium (playwright-core), the agent process,
// sshd with the receiver as its forced command. The workspace folder is one
// path on both "hosts" (as in production, where code-server must open the same
// folder on each): a symlink, pointed at the standby's copy after the kill. The
// browser reaches both code-servers at the same address, as it reaches both
// through the proxy (code-server keys backups by the workspace's URI,
// vscode-remote://HOST:PORT/path).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Page } from 'playwright-core';
import { freePort } from '../../core/free-port.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { startAgent, type Agent } from '../fixtures/agent-process.ts';
import { launchChromium, noChromium, type Browser } from '../fixtures/chromium.ts';
import { startCodeServer } from '../fixtures/code-server.ts';
import { killMarked } from '../fixtures/process-tree.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const skip = noChromium;

interface CodeServer {
  /** SIGKILLs its whole tree (entry.js forks the server, which forks the extension host...) and waits until none of it runs */
  kill(): Promise<void>;
}

/** A real code-server (test/fixtures/code-server.ts) at 127.0.0.1:`port`, extensions beside its user data. */
async function codeServerAt(port: number, userDataDir: string, folder: string): Promise<CodeServer> {
  const cs = await startCodeServer({ folder, port, userDataDir, extensionsDir: join(userDataDir, 'extensions') });
  return { kill: () => cs.close() };
}

/** Every backup's text under a user data dir (empty when none). */
function backups(userDataDir: string): string {
  let text = '';
  const walk = (dir: string, depth: number): void => {
    if (depth > 6) return;
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // not there yet
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p, depth + 1);
      else text += readFileSync(p, 'utf8');
    }
  };
  walk(join(userDataDir, 'User', 'Backups'), 0);
  return text;
}

async function openWorkbench(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.waitForSelector('.explorer-folders-view .monaco-list-row', { timeout: 60_000 });
}

test('text typed in an untitled editor and never saved, 3 s before the GPU dies, is offered back by the standby\'s code-server', { skip, timeout: 240_000 }, async (t) => {
  const top = mkdtempSync(join(tmpdir(), 'standby-hot-exit-'));
  const wsGpu = join(top, 'ws-gpu');
  const wsCpu = join(top, 'ws-cpu');
  const folder = join(top, 'ws'); // the workspace path both code-servers open
  const gpuUd = join(top, 'gpu-code-server');
  const cpuUd = join(top, 'cpu-code-server');
  const runDir = join(top, 'run');
  for (const d of [wsGpu, wsCpu, runDir, join(gpuUd, 'extensions'), join(cpuUd, 'extensions')]) mkdirSync(d, { recursive: true });
  writeFileSync(join(wsGpu, 'main.py'), 'print("hello")\n');
  symlinkSync(wsGpu, folder);
  let sshd: Sshd | undefined;
  let agent: Agent | undefined;
  let gpuCs: CodeServer | undefined;
  let cpuCs: CodeServer | undefined;
  let browser: Browser | undefined;
  t.after(async () => {
    await browser?.close();
    await gpuCs?.kill();
    await cpuCs?.kill();
    await agent?.stop();
    killMarked(runDir);
    await sshd?.close();
    rmSync(top, { recursive: true, force: true });
  });
  const roots = [wsCpu, join(cpuUd, 'User'), join(cpuUd, 'extensions')].map((r) => `--root ${r}`).join(' ');
  sshd = await startSshd({ keyOptions: `command="${STANDBY_CLI} receive ${roots} --state-dir ${join(top, 'receive-state')}",restrict` });
  agent = await startAgent({
    src: wsGpu,
    dst: wsCpu,
    target: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, sshOptions: sshd.sshOptions },
    dir: top,
    settings: { runDir, editor: { userDataDir: gpuUd, remoteUserDataDir: cpuUd } },
  });
  await agent.ready(30_000);

  const port = await freePort();
  gpuCs = await codeServerAt(port, gpuUd, folder);
  browser = await launchChromium();
  let page = await browser.context.newPage();
  await openWorkbench(page, `http://127.0.0.1:${port}/`);
  await page.keyboard.press('Control+Alt+n'); // File: New Untitled Text File
  await page.waitForSelector('.tabs-container .tab:has-text("Untitled-1")', { timeout: 20_000 });
  await page.locator('.monaco-editor .view-lines').first().click();
  // the session's first backup comes late (10 s was seen under load: code-server starts the
  // backup tracker once the workbench has settled); a developer's session has been up for a while
  await page.keyboard.type('warm up ');
  await waitFor('the first backup on the standby', () => backups(cpuUd).includes('warm up'), { timeoutMs: 60_000 });

  const unsaved = `unsaved-${Math.random().toString(36).slice(2, 10)}`;
  await page.keyboard.type(unsaved);
  const typedAt = performance.now();
  let onGpuMs: number | undefined;
  let onStandbyMs: number | undefined;
  // the GPU lives 3 s more, and until the text is on the standby's disk: code-server writes its backup
  // 1 s after the last keystroke on a quiet machine, 2.7 s was seen beside the whole suite, and only
  // then can the agent send it; how long each took is printed (a timed assertion here would measure
  // the machine's load, not the sync)
  const deadline = typedAt + 30_000;
  while (performance.now() - typedAt < 3_000 || onStandbyMs === undefined) {
    if (performance.now() > deadline) break;
    if (onGpuMs === undefined && backups(gpuUd).includes(unsaved)) onGpuMs = performance.now() - typedAt;
    if (onStandbyMs === undefined && backups(cpuUd).includes(unsaved)) onStandbyMs = performance.now() - typedAt;
    await sleep(20);
  }
  agent.kill('SIGKILL');
  await gpuCs.kill();
  await agent.exited;
  t.diagnostic(`backup on the GPU's disk ${onGpuMs === undefined ? 'not within 30 s' : `${Math.round(onGpuMs)} ms`} after the last keystroke, on the standby's ${onStandbyMs === undefined ? 'not within 30 s' : `${Math.round(onStandbyMs)} ms`} (the GPU was killed ${Math.round(performance.now() - typedAt)} ms after it)`);
  assert.ok(backups(cpuUd).includes(unsaved), `the unsaved text is in the standby's copy of code-server's Backups (on the GPU after ${onGpuMs} ms)`);
  assert.equal(readFileSync(join(wsCpu, 'main.py'), 'utf8'), 'print("hello")\n', 'the workspace came along');

  // the standby takes over: its code-server on its copy, at the address the browser knows, the same folder path
  await page.close();
  await browser.close();
  browser = undefined;
  unlinkSync(folder);
  symlinkSync(wsCpu, folder);
  cpuCs = await codeServerAt(port, cpuUd, folder);
  browser = await launchChromium(); // a browser that never saw the GPU: what it shows comes from the standby's disk
  page = await browser.context.newPage();
  await openWorkbench(page, `http://127.0.0.1:${port}/`);
  const tab = page.locator('.tabs-container .tab:has-text("Untitled-1")');
  await tab.waitFor({ timeout: 30_000 });
  await tab.click();
  await waitFor('the unsaved text in the editor', async () => (await page.locator('.monaco-editor .view-lines').first().innerText()).includes(unsaved), { timeoutMs: 20_000 });
  await page.close();
});
