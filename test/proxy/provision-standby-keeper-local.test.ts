// The standby keeper (proxy/provision/standby-keeper.ts) over the `local`
// provider with real processes: a standby whose sshd and workspace server are
// killed (as a crash or a preempted machine) is started again on its folder,
// its data kept; one whose folder is gone is created anew (recreated: true).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { LocalProvider } from '../../proxy/provision/local.ts';
import type { StandbySpec } from '../../proxy/provision/provider.ts';
import { StandbyKeeper, type StandbyKeeperEvent } from '../../proxy/provision/standby-keeper.ts';
import { waitFor } from '../fixtures/wait-for.ts';

test('local standby: killed, it is started again on its data; its folder gone, it is created anew', { timeout: 120_000 }, async (t) => {
  const top = mkdtempSync(join(tmpdir(), 'standby-keeper-local-'));
  const fenceKey = join(top, 'fence');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fence', '-f', fenceKey]);
  const fencePub = readFileSync(`${fenceKey}.pub`, 'utf8').trim();
  const provider = new LocalProvider({ baseDir: join(top, 'hosts'), fenceKey: fencePub, startTimeoutMs: 15_000 });
  const abort = new AbortController();
  let running: Promise<void> | undefined;
  t.after(async () => {
    abort.abort();
    await running;
    await provider.close();
    rmSync(top, { recursive: true, force: true });
  });
  const spec: StandbySpec = { name: { workspace: 'keep-local', epoch: 1 }, zone: 'local', machineType: 'local', diskGb: 1, spot: false, sshPublicKey: fencePub, sshUser: 'root' };
  const host = await provider.standby.ensure(spec);
  const workspace = provider.details(host.id)!.workspace;
  writeFileSync(join(workspace, 'copy.txt'), 'the standby copy\n');

  const events: StandbyKeeperEvent[] = [];
  const keeper = new StandbyKeeper({ provider: provider.standby, spec, id: host.id, intervalMs: 50, log: pino({ level: 'silent' }), onEvent: (e) => events.push(e) });
  running = keeper.run(abort.signal);
  const ups = () => events.filter((e): e is Extract<StandbyKeeperEvent, { kind: 'standby-up' }> => e.kind === 'standby-up');

  provider.kill(host.id);
  await waitFor('standby-up after the kill', () => ups().length === 1, { timeoutMs: 30_000 });
  assert.deepEqual(events.map((e) => e.kind), ['standby-down', 'standby-up']);
  assert.equal((events[0] as { state: string }).state, 'failed');
  assert.equal(ups()[0]!.recreated, false);
  assert.equal(readFileSync(join(workspace, 'copy.txt'), 'utf8'), 'the standby copy\n', 'started on its own folder: the copy is there');
  assert.equal((await provider.standby.get(host.id))?.state, 'running');

  // its folder removed behind the keeper's back (the machine lost): created anew, empty
  provider.kill(host.id);
  rmSync(provider.details(host.id)!.dir, { recursive: true, force: true });
  await waitFor('standby-up after the loss', () => ups().length === 2, { timeoutMs: 30_000 });
  assert.deepEqual(events.map((e) => e.kind), ['standby-down', 'standby-up', 'standby-down', 'standby-up']);
  assert.equal((events[2] as { state: string }).state, 'gone');
  assert.equal(ups()[1]!.recreated, true, 'resync it fully');
  assert.equal(existsSync(join(provider.details(host.id)!.workspace, 'copy.txt')), false, 'a new, empty workspace');
});
