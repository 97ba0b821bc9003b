// The `local` provider with `codeServer` (what `standby demo --server
// code-server` runs): each host runs a real code-server opening its
// workspace, fronted by its workspace server. Through the host's one URL,
// /healthz, the workbench and WebSockets are code-server's (Host kept, so its
// Origin check passes), the file API is still the workspace server's (the
// demo's writer); the freeze's pid files name both;
// kill() takes code-server down with the host, close() leaves nothing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { descendants, processAlive } from '../../core/process-tree.ts';
import { ensureCodeServer } from '../../installer/code-server.ts';
import { LocalProvider, type LocalHostDetails } from '../../proxy/provision/local.ts';
import type { GpuOffer } from '../../proxy/provision/provider.ts';
import WebSocket from 'ws';
import { waitFor } from '../fixtures/wait-for.ts';

const LOCAL_OFFER: GpuOffer = { id: 'local', pricePerHour: 0, gpuName: 'this machine (no GPU)', gpuCount: 1, gpuRamGb: 1, location: 'this machine', region: undefined, reliability: 1 };
const top = mkdtempSync(join(tmpdir(), 'standby-local-cs-'));
let provider: LocalProvider;
let gpu: LocalHostDetails;

const gone = (pid: number): boolean => !processAlive(pid) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');

before(async () => {
  const { entry } = await ensureCodeServer();
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fence', '-f', join(top, 'fence')]);
  provider = new LocalProvider({ baseDir: join(top, 'hosts'), fenceKey: readFileSync(join(top, 'fence.pub'), 'utf8').trim(), startTimeoutMs: 15_000, codeServer: { entry } });
  const host = await provider.gpu.create(LOCAL_OFFER, { name: { workspace: 'proj', epoch: 1 }, image: 'unused', onstart: '', diskGb: 1 });
  gpu = provider.details(host.id)!;
});
after(async () => {
  await provider?.close();
  rmSync(top, { recursive: true, force: true });
});

test("the host's URL serves code-server (its /healthz, its workbench opening the host's workspace)", async () => {
  const health = await fetch(`${gpu.url}/healthz`);
  const body = (await health.json()) as { status?: string; name?: string };
  assert.equal(health.status, 200);
  assert.match(body.status ?? '', /^(alive|expired)$/);
  assert.equal(body.name, undefined, "code-server's answer, not the workspace server's");
  const root = await fetch(`${gpu.url}/`, { redirect: 'manual' });
  await root.arrayBuffer();
  assert.equal(root.status, 302);
  assert.equal(root.headers.get('location'), `./?folder=${gpu.workspace}`);
  const page = await fetch(`${gpu.url}/?folder=${encodeURIComponent(gpu.workspace)}`);
  assert.match(await page.text(), /workbench/);
});

test("the file API through the same URL is still the workspace server's: a write lands in the workspace, answered once on disk", async () => {
  const res = await fetch(`${gpu.url}/files/notes/a.txt`, { method: 'PUT', body: 'hello', headers: { 'x-standby-files-token': gpu.filesToken } });
  const answer = (await res.json()) as { ok: boolean; name: string };
  assert.equal(res.status, 200);
  assert.equal(answer.ok, true);
  assert.equal(answer.name, gpu.id);
  assert.equal(readFileSync(join(gpu.workspace, 'notes/a.txt'), 'utf8'), 'hello');
  const refused = await fetch(`${gpu.url}/files/notes/b.txt`, { method: 'PUT', body: 'x' });
  await refused.arrayBuffer();
  assert.equal(refused.status, 401, 'the token is still wanted');
});

test("a WebSocket through the host's URL reaches code-server, Host kept: its Origin check passes for the host's own origin, and still refuses another", async () => {
  const open = (origin: string) => new Promise<string>((resolve) => {
    const ws = new WebSocket(`${gpu.url.replace(/^http/, 'ws')}/?reconnectionToken=test-token&reconnection=false&skipWebSocketFrames=false&type=management`, { origin });
    const done = (how: string) => {
      ws.terminate();
      resolve(how);
    };
    ws.on('open', () => done('open'));
    ws.on('unexpected-response', (_req, res) => done(`HTTP ${res.statusCode}`));
    ws.on('error', (err) => done(`error ${err.message}`));
  });
  assert.equal(await open(gpu.url), 'open');
  assert.equal(await open('http://elsewhere.example'), 'HTTP 403');
});

test("an agent's freeze names code-server's pid file beside the workspace server's", () => {
  assert.deepEqual(gpu.pidFiles, [gpu.pidFile, join(gpu.dir, 'code-server.pid')]);
  for (const f of gpu.pidFiles) assert.ok(processAlive(Number(readFileSync(f, 'utf8').trim())), f);
});

test('kill() takes code-server down with the host: its whole tree, and the URL refuses', async () => {
  const csPid = Number(readFileSync(join(gpu.dir, 'code-server.pid'), 'utf8').trim());
  const tree = descendants(csPid);
  assert.ok(tree.length >= 2, `code-server's tree: ${tree.join(', ')}`);
  provider.kill(gpu.id);
  await waitFor('every process of code-server gone', () => tree.every(gone), { timeoutMs: 5_000 });
  await assert.rejects(fetch(`${gpu.url}/healthz`, { signal: AbortSignal.timeout(2_000) }));
});

test('create starts the host again with a code-server; close() leaves none of it running', async () => {
  await provider.gpu.create(LOCAL_OFFER, { name: { workspace: 'proj', epoch: 1 }, image: 'unused', onstart: '', diskGb: 1 });
  const again = provider.details(gpu.id)!;
  const res = await fetch(`${again.url}/`, { redirect: 'manual' });
  await res.arrayBuffer();
  assert.equal(res.headers.get('location'), `./?folder=${again.workspace}`);
  const csPid = Number(readFileSync(join(again.dir, 'code-server.pid'), 'utf8').trim());
  const tree = descendants(csPid);
  await provider.close();
  await waitFor('code-server gone after close()', () => tree.every(gone), { timeoutMs: 5_000 });
  assert.equal(existsSync(join(again.dir, 'code-server.pid')), false);
});
