// The whole cycle with the `local` provider and real processes
// (cli/support/local-world.ts): a GPU whose agent the real installer set up
// with an invitation, killed with SIGKILL; failover to the standby; writes
// made on the standby while a new local GPU is created, its agent installed
// the same way, the standby's copy restored to it by the standby's agent; the
// switch back (freeze, final pass, fence, route); then every write of both
// phases is on the new GPU, `verify` through the proxy is clean, the new GPU
// pushes to the standby again, and the report accounts for it all. Every host
// has code-server's folders in a place of its own (the provider's `editor`):
// the settings follow the developer to the standby, to the new GPU and back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { humanReport } from '../../cli/report.ts';
import { startLocalWorld, tail, type LocalWorld } from '../../cli/support/local-world.ts';
import type { FailoverReport, RecoveryStatus } from '../../protocol/admin-api.ts';
import type { ProxyEvent } from '../../proxy/state.ts';
import { waitFor } from '../fixtures/wait-for.ts';

const BOUND = { timeout: 240_000 };

function sha(file: string): string | undefined {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}

async function status(w: LocalWorld): Promise<{ phase: string; active: string; epoch: number; recovery: RecoveryStatus; agents: { hostId: string; connected: boolean; sync: { watermark: number; lastSeq: number; pending: number; ready: boolean } | null }[] }> {
  return (await (await w.api('status')).json()) as never;
}

/** code-server's User folder on a local host */
function userDir(host: { editor: { userDataDir: string } | undefined }): string {
  assert.ok(host.editor, 'the host has code-server folders');
  return join(host.editor.userDataDir, 'User');
}

test('the whole cycle on the local provider: kill the GPU, fail over, write on the standby, recover to a new GPU, switch back; nothing acknowledged is lost, and the editor\'s settings follow', BOUND, async (t) => {
  let text = '';
  const log = pino({ level: 'info' }, new Writable({ write(c: Buffer, _e, cb) { text += c.toString(); cb(); } }));
  const w = await startLocalWorld({ log, editor: true });
  t.after(() => w.close());
  const why = () => `\nproxy log tail:\n${text.split('\n').slice(-30).join('\n')}\nGPU onstart:\n${tail(join(w.gpu.dir, 'onstart.log'))}\nstandby agent:\n${tail(join(w.dir, 'standby-agent.log'))}`;

  // phase 1: the GPU serves; its agent (installed with an invitation) pushes to the standby
  await waitFor('the GPU to serve with its agent heartbeating', async () => (await status(w)).phase === 'normal', { timeoutMs: 60_000 }).catch((err: Error) => assert.fail(err.message + why()));
  const before: Record<string, string> = {};
  mkdirSync(join(w.gpu.workspace, 'src'), { recursive: true });
  // the developer's resume file (agent.json resume's default): it comes back with the workspace and runs on the new GPU after the switch back
  mkdirSync(join(w.gpu.workspace, '.standby'), { recursive: true });
  writeFileSync(join(w.gpu.workspace, '.standby', 'resume'), '#!/bin/sh\necho "resuming at epoch $STANDBY_RESUME_EPOCH"\nexit 7\n', { mode: 0o755 });
  before['.standby/resume'] = sha(join(w.gpu.workspace, '.standby', 'resume'))!;
  for (let i = 0; i < 30; i++) {
    const rel = `src/before-${i}.txt`;
    writeFileSync(join(w.gpu.workspace, rel), `written on the first GPU ${i}\n`.repeat(i + 1));
    before[rel] = sha(join(w.gpu.workspace, rel))!;
  }
  await waitFor('the first GPU\'s writes on the standby', () => Object.entries(before).every(([rel, h]) => sha(join(w.standby.workspace, rel)) === h), { timeoutMs: 20_000 }).catch((err: Error) => assert.fail(err.message + why()));
  // the developer's settings on the first GPU reach the standby's code-server folder, which is not at the same path
  writeFileSync(join(userDir(w.gpu), 'settings.json'), '{"editor.fontSize": 17}\n');
  await waitFor('the GPU\'s settings in the standby\'s code-server folder', () => existsSync(join(userDir(w.standby), 'settings.json')), { timeoutMs: 20_000 }).catch((err: Error) => assert.fail(err.message + why()));

  // the GPU dies; the standby serves; the recovery starts
  w.killGpu();
  await waitFor('the standby to serve', async () => (await status(w)).active === 'standby', { timeoutMs: 30_000 }).catch((err: Error) => assert.fail(err.message + why()));

  // phase 2: the developer goes on, on the standby, while the new GPU comes up and is restored
  const during: Record<string, string> = {};
  let n = 0;
  const writeOnStandby = () => {
    const rel = `src/standby-${n++}.txt`;
    writeFileSync(join(w.standby.workspace, rel), `written on the standby ${n}\n`.repeat(n));
    during[rel] = sha(join(w.standby.workspace, rel))!;
  };
  // ...and changes a setting there, and adds a snippet
  writeFileSync(join(userDir(w.standby), 'settings.json'), '{"editor.fontSize": 19}\n');
  mkdirSync(join(userDir(w.standby), 'snippets'), { recursive: true });
  writeFileSync(join(userDir(w.standby), 'snippets', 'py.json'), '{"main": {"prefix": "main", "body": ["if __name__ == \'__main__\':"]}}\n');
  let last: Awaited<ReturnType<typeof status>> | undefined;
  await waitFor('the recovery to switch back to a new GPU', async () => {
    last = await status(w);
    if (last.recovery.configured && last.recovery.step === 'gave-up') throw new Error(`the recovery gave up: ${last.recovery.error}`);
    // writes until the restore has landed; the switch back's final pass must carry the last ones
    if (last.active === 'standby' && (!last.recovery.configured || last.recovery.step !== 'restored')) writeOnStandby();
    return last.active === 'primary' && last.recovery.configured && (last.recovery.step === 'done' || last.recovery.step === 'old-gpu');
  }, { timeoutMs: 180_000, everyMs: 100 }).catch((err: Error) => assert.fail(`${err.message}; last status ${JSON.stringify(last?.recovery)}${why()}`));
  assert.ok(n > 0, 'writes were made on the standby during the recovery');

  const rec = last!.recovery;
  assert.ok(rec.configured && rec.newGpu, 'a new GPU');
  const newGpu = w.provider.details(rec.newGpu.providerId);
  assert.ok(newGpu, `the local provider knows ${rec.newGpu.providerId}`);

  // every write of both phases is on the new GPU
  for (const [rel, h] of Object.entries({ ...before, ...during })) assert.equal(sha(join(newGpu.workspace, rel)), h, `${rel} on the new GPU`);
  // so are the settings and the snippet made on the standby, in the new GPU's own code-server folder
  assert.notEqual(userDir(newGpu), userDir(w.standby));
  assert.equal(readFileSync(join(userDir(newGpu), 'settings.json'), 'utf8'), '{"editor.fontSize": 19}\n');
  assert.equal(sha(join(userDir(newGpu), 'snippets', 'py.json')), sha(join(userDir(w.standby), 'snippets', 'py.json')));

  // the new GPU pushes to the standby again: a write there reaches the standby
  writeFileSync(join(newGpu.workspace, 'src', 'after.txt'), 'written on the new GPU\n');
  await waitFor('the new GPU\'s write on the standby', () => existsSync(join(w.standby.workspace, 'src', 'after.txt')), { timeoutMs: 20_000 }).catch((err: Error) => assert.fail(err.message + why()));
  // and its agent, installed with the invitation, learned where the standby keeps code-server's folders
  writeFileSync(join(userDir(newGpu), 'keybindings.json'), '[{"key": "ctrl+k", "command": "workbench.action.terminal.clear"}]\n');
  await waitFor('the new GPU\'s keybindings on the standby', () => existsSync(join(userDir(w.standby), 'keybindings.json')), { timeoutMs: 20_000 }).catch((err: Error) => assert.fail(err.message + why()));

  // verify through the proxy: the new GPU's agent compares its workspace with the standby's
  const verified = (await (await w.api('verify', { method: 'POST' })).json()) as { match: boolean; total: number; differences: unknown[] };
  assert.equal(verified.match, true, `verify: ${JSON.stringify(verified.differences).slice(0, 500)}`);

  // the report accounts for the failover and its recovery
  const report = (await (await w.api('failover/report')).json()) as FailoverReport;
  assert.equal(report.failovers.total, 1);
  assert.deepEqual(report.recovery.gpusProvisioned, { done: 1, of: 1 });
  assert.deepEqual(report.recovery.dataRestored, { done: 1, of: 1 });
  const f = report.list[0]!;
  assert.equal(f.recovery?.outcome, 'done');
  for (const phase of ['detection', 'fence', 'route', 'gpu-search', 'provisioning', 'ssh-ready', 'agent-ready', 'restore', 'switch-back']) {
    assert.ok(f.phases.some((p) => p.name === phase && p.ms !== null), `phase ${phase} measured: ${JSON.stringify(f.phases)}`);
  }
  assert.ok(f.toNewGpuMs !== null && f.toNewGpuMs > 0);

  // the resume file ran once on the new GPU, and the report has its start and exit
  const resumed = await waitFor('the resume command\'s exit in the report', async () => {
    const r = ((await (await w.api('failover/report')).json()) as FailoverReport).list[0]?.resume;
    return r?.exited ? r : undefined;
  }, { timeoutMs: 20_000 }).catch((err: Error) => assert.fail(err.message + why()));
  assert.deepEqual(resumed, { hostId: rec.newGpu.id, epoch: last!.epoch, started: true, exited: true, exitCode: 7, signal: null, error: null });
});

test("the standby machine preempted (its processes SIGKILLed): the proxy's watch starts it again, logs the window without a standby copy, and the GPU's agent syncs to it again", BOUND, async (t) => {
  let text = '';
  const log = pino({ level: 'info' }, new Writable({ write(c: Buffer, _e, cb) { text += c.toString(); cb(); } }));
  const w = await startLocalWorld({ log, settings: { recovery: { standby: { provider: 'local', id: 'standby/standby-demo-e0', watchMs: 1_000 } } } });
  t.after(() => w.close());
  const why = () => `\nproxy log tail:\n${text.split('\n').slice(-30).join('\n')}`;
  await waitFor('the GPU to serve', async () => (await status(w)).phase === 'normal', { timeoutMs: 60_000 }).catch((err: Error) => assert.fail(err.message + why()));

  w.provider.kill(w.standby.id);
  const events = async () => ((await (await w.api('events')).json()) as { events: { type: string; kind?: string; windowMs?: number; recreated?: boolean }[] }).events.filter((e) => e.type === 'standby');
  await waitFor('the standby down, then up again', async () => (await events()).some((e) => e.kind === 'up'), { timeoutMs: 30_000 }).catch((err: Error) => assert.fail(err.message + why()));
  const [down, up] = await events();
  assert.equal(down?.kind, 'down');
  assert.equal(up?.recreated, false, 'started again on its own disk');
  assert.ok((up?.windowMs ?? 0) > 0);

  // the GPU's agent syncs to it again
  writeFileSync(join(w.gpu.workspace, 'after-preemption.txt'), 'still synced\n');
  await waitFor('a write on the standby after it came back', () => existsSync(join(w.standby.workspace, 'after-preemption.txt')), { timeoutMs: 30_000 }).catch((err: Error) => assert.fail(err.message + why()));
  const report = (await (await w.api('failover/report')).json()) as FailoverReport;
  assert.equal(report.standbyOutages.count, 1);
  assert.equal(report.failovers.total, 0, 'the standby going down is no failover');
});

test('standby drill on the local provider: a planned failover marked as a drill (final pass: RPO 0), a new GPU, the switch back; the report counts it as a drill', BOUND, async (t) => {
  let text = '';
  const log = pino({ level: 'info' }, new Writable({ write(c: Buffer, _e, cb) { text += c.toString(); cb(); } }));
  const w = await startLocalWorld({ log });
  t.after(() => w.close());
  const why = () => `\nproxy log tail:\n${text.split('\n').slice(-30).join('\n')}`;
  await waitFor('the GPU to serve with its first pass done', async () => {
    const s = await status(w);
    return s.phase === 'normal' && s.agents.some((a) => a.hostId === 'gpu-1' && a.sync?.ready);
  }, { timeoutMs: 60_000 }).catch((err: Error) => assert.fail(err.message + why()));
  writeFileSync(join(w.gpu.workspace, 'before-drill.txt'), 'written just before the drill\n');

  const answer = await w.api('drill', { method: 'POST' });
  assert.equal(answer.status, 202, await answer.text());
  // the GPU the drill leaves still runs: what it writes after the fence never reaches the standby's workspace,
  // but its agent (fenced, still connected) copies it into the conflicts folder before the host goes
  await waitFor('the standby to serve', async () => (await status(w)).active === 'standby', { timeoutMs: 30_000 }).catch((err: Error) => assert.fail(err.message + why()));
  writeFileSync(join(w.gpu.workspace, 'after-the-fence.txt'), 'written on the old GPU after the fence\n');
  rmSync(join(w.gpu.workspace, 'before-drill.txt'));
  await waitFor('the drill to end on a new GPU', async () => {
    const s = await status(w);
    if (s.recovery.configured && s.recovery.step === 'gave-up') throw new Error(`the recovery gave up: ${s.recovery.error}`);
    return s.active === 'primary' && s.recovery.configured && s.recovery.step === 'old-gpu';
  }, { timeoutMs: 120_000 }).catch((err: Error) => assert.fail(err.message + why()));

  const rec = (await status(w)).recovery;
  assert.ok(rec.configured && rec.newGpu);
  const newGpu = w.proxy.recovery?.local?.details(rec.newGpu.providerId);
  assert.equal(readFileSync(join(newGpu!.workspace, 'before-drill.txt'), 'utf8'), 'written just before the drill\n', "the final pass carried the GPU's last write");
  const report = (await (await w.api('failover/report')).json()) as FailoverReport;
  assert.equal(report.failovers.drills, 1);
  const f = report.list[0]!;
  assert.equal(f.drill, true);
  assert.equal(f.cause.kind, 'drill');
  assert.equal(f.planned, true);
  assert.equal(f.rpo?.rpoMs, 0, 'a planned failover: nothing above the watermark');
  assert.equal(f.recovery?.outcome, 'done');
  // the GPU the drill left was destroyed through its provider
  assert.equal(w.provider.details(w.gpu.id), undefined);
  // ...after its agent copied what it wrote after the fence beside the standby's workspace, never into it
  const retired = w.proxy.store.events().find((e): e is Extract<ProxyEvent, { type: 'recovery' }> => e.type === 'recovery' && e.step === 'old-gpu');
  const c = retired?.conflicts;
  assert.ok(c, `the old GPU's unsent changes were collected: ${JSON.stringify(retired)}`);
  assert.equal(dirname(c.folder), `${w.standby.workspace}.conflicts`);
  assert.match(basename(c.folder), /^\d{8}T\d{6}Z-gpu-1$/);
  assert.equal(readFileSync(join(c.folder, 'after-the-fence.txt'), 'utf8'), 'written on the old GPU after the fence\n');
  assert.deepEqual([c.files, c.deletions, c.complete, c.error], [1, 1, true, null]);
  assert.deepEqual(c.paths.sort(), ['after-the-fence.txt', 'before-drill.txt (deleted here)']);
  assert.ok(!existsSync(join(w.standby.workspace, 'after-the-fence.txt')) && !existsSync(join(newGpu!.workspace, 'after-the-fence.txt')), 'nothing in the workspaces');
  assert.ok(existsSync(join(newGpu!.workspace, 'before-drill.txt')), 'a deletion after the fence is listed, not applied');
  assert.match(f.recovery?.oldGpu ?? '', /gpu-1's unsent changes: 1 files \(\d+ bytes\) copied to .*\.conflicts\/.* on the standby, 1 deletions listed; gpu-1 destroyed/);
  assert.ok(humanReport(report).includes(`epoch 2: 1 files (${c.bytes} bytes) in ${c.folder}, 1 deletions listed (`), humanReport(report));
});
