// `standby demo --json` as a user runs it (npm run demo): the whole story with
// real processes, to its end, in under 90 s: a GPU killed mid-write, the
// failover, a new GPU recovered and switched back to, and the ledger's
// verdict on the new GPU: no acknowledged write lost. Then once more with a
// real code-server on every host (--server code-server).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { run, NODE } from '../fixtures/cli-run.ts';
import { ensureCodeServer } from '../../installer/code-server.ts';

test('standby demo --json: the whole cycle in under 90 s, every acknowledged write on the new GPU, the phases measured', { timeout: 150_000 }, async () => {
  const r = await run(NODE, ['cli.ts', 'demo', '--json'], {}, 140_000);
  assert.equal(r.code, 0, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  const out = JSON.parse(r.stdout) as { lostFiles: number; verifiedFiles: number; rpoMs: number | null; phases: { name: string; ms: number | null }[]; totalMs: number; writes: { acknowledged: number } };
  assert.equal(out.lostFiles, 0);
  assert.ok(out.verifiedFiles > 0, 'files were checked on the new GPU');
  assert.ok(out.writes.acknowledged > 0);
  assert.equal(typeof out.rpoMs, 'number', 'the RPO at failover is reported');
  for (const name of ['detection', 'failover', 'provisioning', 'restore', 'switch-back']) {
    const p = out.phases.find((x) => x.name === name);
    assert.ok(p && typeof p.ms === 'number', `phase ${name} measured: ${JSON.stringify(out.phases)}`);
  }
  assert.ok(out.totalMs < 90_000, `the demo took ${out.totalMs} ms`);
});

test('standby demo --server code-server --json: a real code-server on every host behind the one URL, the same cycle, nothing lost, no code-server left after', { timeout: 300_000 }, async () => {
  // code-server comes from the cache `npm test`'s pretest fills: no install inside this timeout
  await ensureCodeServer();
  const r = await run(NODE, ['cli.ts', 'demo', '--server', 'code-server', '--json'], {}, 280_000);
  assert.equal(r.code, 0, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  const out = JSON.parse(r.stdout) as { lostFiles: number; verifiedFiles: number; newGpuWorkspace: string; backend: { server: string; status: number; location: string | null }; editorSettings: string | null; writes: { acknowledged: number } };
  assert.equal(out.lostFiles, 0);
  assert.ok(out.verifiedFiles > 0 && out.writes.acknowledged > 0);
  // what the URL serves after the switch back is the new GPU's code-server, opening its workspace
  assert.deepEqual(out.backend, { server: 'code-server', status: 302, location: `./?folder=${out.newGpuWorkspace}` });
  assert.equal(out.editorSettings, 'followed', "the setting changed in the standby's code-server is in the new GPU's");
  const world = out.newGpuWorkspace.slice(0, out.newGpuWorkspace.indexOf('/hosts/'));
  const left = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(world);
    } catch {
      return false;
    }
  });
  assert.deepEqual(left, [], `no process of the demo's world (${world}) outlives it`);
});
