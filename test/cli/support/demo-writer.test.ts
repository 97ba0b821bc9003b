// The demo's writer (cli/support/demo-writer.ts) against real workspace
// server processes: its mix of ops lands on disk as its log says (the ledger
// finds nothing lost, and finds what a test then takes away); the same seed
// gives the same ops; a killed server does not pause it (its requests fail,
// recorded, and it goes on with the server that comes back), and stop() ends
// it within a request's timeout even when the server hangs.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { checkWorkspace } from '../../../cli/support/demo-ledger.ts';
import { CHECKPOINT_PATH, Writer, type WriteRecord } from '../../../cli/support/demo-writer.ts';
import { startWorkspaceServer, type WorkspaceServer } from '../../../proxy/provision/workspace-server.ts';
import { waitFor } from '../../fixtures/wait-for.ts';

const top = mkdtempSync(join(tmpdir(), 'demo-writer-'));
const servers: WorkspaceServer[] = [];
const writers: Writer[] = [];
let n = 0;

async function server(name: string, root?: string, port?: number): Promise<{ s: WorkspaceServer; root: string }> {
  const dir = root ?? join(top, `ws-${++n}`);
  mkdirSync(dir, { recursive: true });
  const s = await startWorkspaceServer({ name, root: dir, ...(port !== undefined ? { port } : {}) });
  servers.push(s);
  return { s, root: dir };
}

function writer(o: ConstructorParameters<typeof Writer>[0]): Writer {
  const w = new Writer(o);
  writers.push(w);
  w.start();
  return w;
}

afterEach(async () => {
  await Promise.all(writers.splice(0).map((w) => w.stop()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
after(() => rmSync(top, { recursive: true, force: true }));

const acked = (w: Writer) => w.records().filter((r) => r.ok).length;

test('its ops land as its log says: every kind, all acknowledged, the ledger finds nothing lost, then finds what is taken away', async () => {
  const { s, root } = await server('ws-a');
  const w = writer({ baseUrl: s.url + '/', seed: 3, everyMs: 5 });
  await waitFor('200 acknowledged writes', () => acked(w) >= 200, { timeoutMs: 30_000 });
  await w.stop();
  const records = w.records();
  assert.deepEqual(records.filter((r) => !r.ok), []);
  assert.deepEqual(records.map((r) => r.seq), records.map((_r, i) => i + 1));
  const ops = new Set(records.map((r) => r.op));
  assert.deepEqual([...ops].sort(), ['append', 'create', 'delete', 'edit', 'rename']);
  assert.ok(records.every((r) => r.servedBy === 'ws-a' && r.ackedAt >= r.sentAt));
  const appends = records.filter((r) => r.op === 'append');
  assert.ok(appends.every((r) => r.path === CHECKPOINT_PATH));
  assert.ok(appends.length >= 15, `${appends.length} appends`);
  // the checkpoint grows by 64 KiB an append
  assert.equal(appends.at(-1)!.size - appends.at(-2)!.size, 64 * 1024);

  const clean = checkWorkspace(root, records, () => true);
  assert.deepEqual(clean.lost, []);
  assert.equal(clean.uncertain, 0);
  assert.ok(clean.verifiedFiles >= 10, `${clean.verifiedFiles} files verified`);
  assert.ok(clean.verifiedBytes >= appends.at(-1)!.size);

  // take a file away and change another: both are reported lost
  const live = new Map<string, WriteRecord>();
  for (const r of records) {
    if (r.op === 'delete') live.delete(r.path);
    else if (r.op === 'rename') {
      live.delete(r.path);
      live.set(r.to!, r);
    } else live.set(r.path, r);
  }
  const [gone, changed] = [...live.keys()].filter((p) => p !== CHECKPOINT_PATH);
  unlinkSync(join(root, gone!));
  writeFileSync(join(root, changed!), 'not what was written');
  const broken = checkWorkspace(root, records, () => true);
  assert.deepEqual(broken.lost.map((l) => l.path).sort(), [gone!, changed!].sort());
  assert.equal(broken.verifiedFiles, clean.verifiedFiles - 2);
});

test('the same seed gives the same ops, another seed others', async () => {
  const a = await server('ws-a');
  const b = await server('ws-b');
  const c = await server('ws-c');
  const wa = writer({ baseUrl: a.s.url, seed: 42, everyMs: 5, maxOps: 60 });
  const wb = writer({ baseUrl: b.s.url, seed: 42, everyMs: 5, maxOps: 60 });
  const wc = writer({ baseUrl: c.s.url, seed: 43, everyMs: 5, maxOps: 60 });
  await waitFor('60 ops each', () => [wa, wb, wc].every((w) => w.records().length === 60), { timeoutMs: 30_000 });
  const shape = (w: Writer) => w.records().map((r) => ({ seq: r.seq, op: r.op, path: r.path, to: r.to, sha256: r.sha256, size: r.size, ok: r.ok }));
  assert.deepEqual(shape(wa), shape(wb));
  assert.notDeepEqual(shape(wa), shape(wc));
});

test('a killed server does not pause it: failures are recorded, it goes on with the server that comes back, and nothing acknowledged is lost', async () => {
  const first = await server('first');
  const w = writer({ baseUrl: first.s.url, seed: 9, everyMs: 10, requestTimeoutMs: 1000 });
  await waitFor('40 acknowledged writes', () => acked(w) >= 40, { timeoutMs: 30_000 });
  first.s.kill('SIGKILL');
  await waitFor('the server gone', () => !first.s.running());
  const before = w.records().length;
  await waitFor('5 failed writes after the kill', () => w.records().slice(before).filter((r) => !r.ok).length >= 5, { timeoutMs: 15_000 });
  await server('second', first.root, first.s.port);
  await waitFor('30 writes acknowledged by the second server', () => w.records().filter((r) => r.ok && r.servedBy === 'second').length >= 30, { timeoutMs: 30_000 });
  await w.stop();
  const records = w.records();
  assert.deepEqual(records.map((r) => r.seq), records.map((_r, i) => i + 1));
  const failed = records.filter((r) => !r.ok);
  assert.ok(failed.length >= 5);
  assert.ok(failed.every((r) => typeof r.error === 'string' && r.error.length > 0 && r.servedBy === undefined), JSON.stringify(failed.slice(0, 3)));
  const check = checkWorkspace(first.root, records, () => true);
  assert.deepEqual(check.lost, []);
  assert.ok(check.uncertain >= 1 && check.verifiedFiles >= 5, JSON.stringify({ uncertain: check.uncertain, verified: check.verifiedFiles }));
});

test('stop() ends it within a request\'s timeout when the server hangs, recording the hung request as failed', async () => {
  const { s } = await server('hung');
  const w = writer({ baseUrl: s.url, seed: 5, everyMs: 10, requestTimeoutMs: 400 });
  await waitFor('10 acknowledged writes', () => acked(w) >= 10, { timeoutMs: 30_000 });
  s.kill('SIGSTOP');
  await waitFor('a write timed out', () => w.records().some((r) => !r.ok && /no answer within 400 ms/.test(r.error ?? '')), { timeoutMs: 10_000 });
  const t0 = performance.now();
  await w.stop();
  const took = performance.now() - t0;
  assert.ok(took < 400 + 1000, `stop() took ${took.toFixed(0)} ms`);
  // the request in flight at stop() (to the hung server) is recorded as failed too
  assert.equal(w.records().at(-1)!.ok, false);
});
