// A fenced GPU's unsent changes copied aside (agent/conflicts.ts): through a
// real sshd and the real receiver, into the conflicts folder the proxy's key
// opened to this host's key: the files it lists land there (a path deleted
// since is skipped), deletions are only listed, the workspace is not touched;
// a key with no conflicts line is refused, and the outcome says why.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { copyConflicts } from '../../agent/conflicts.ts';
import type { Change } from '../../agent/change-set.ts';
import { agentConfigSchema, type AgentConfig } from '../../config/agent.ts';
import { validateSettings } from '../../config/file.ts';
import { authorizeConflictsOnStandby, revokeOnStandby } from '../../proxy/fence.ts';
import { startManagedStandby, type HostKey, type ManagedStandby } from '../fixtures/managed-standby.ts';

const log = pino({ level: 'silent' });

function change(path: string, kind: Change['kind'], seq: number): Change {
  return { root: 0, path, kind, seq, firstAt: 0 };
}

describe("a fenced host's unsent changes, into the standby's conflicts folder", () => {
  let m: ManagedStandby;
  let key: HostKey;
  let workspace = '';
  const config = (identityFile: string): AgentConfig => validateSettings(agentConfigSchema, {
    hostId: 'gpu-1',
    workspace,
    identityFile,
    standby: { host: m.sshd.host, port: m.sshd.port, user: m.sshd.user, path: m.root, identityFile, sshOptions: m.sshd.sshOptions },
    runDir: join(m.top, 'run'),
  }, 'test');

  before(async () => {
    m = await startManagedStandby('conflicts');
    key = m.newKey('gpu-1');
    workspace = join(m.top, 'gpu-workspace');
    mkdirSync(join(workspace, 'notes'), { recursive: true });
    writeFileSync(join(workspace, 'train.log'), 'epoch 7 done\n');
    writeFileSync(join(workspace, 'notes', 'idea.md'), 'try a smaller lr\n');
    writeFileSync(join(m.root, 'kept.txt'), 'the standby\'s own\n');
  });
  after(async () => {
    await m?.close();
  });

  test('the listed files land in the folder; a path gone since is skipped; deletions are listed, not applied; the workspace is untouched', async () => {
    const folder = await authorizeConflictsOnStandby(m.target, 'gpu-1', key.pub, '20261205T090000Z-gpu-1');
    const changes = [change('train.log', 'change', 1), change('notes', 'addDir', 2), change('notes/idea.md', 'add', 3), change('vanished.tmp', 'add', 4), change('kept.txt', 'unlink', 5)];
    const out = await copyConflicts(config(key.file), changes, folder, log);
    assert.equal(out.ok, true, out.error ?? '');
    assert.equal(out.error, null);
    assert.equal(readFileSync(join(folder, 'train.log'), 'utf8'), 'epoch 7 done\n');
    assert.equal(readFileSync(join(folder, 'notes', 'idea.md'), 'utf8'), 'try a smaller lr\n');
    assert.equal(out.files, 2);
    assert.equal(out.bytes, 'epoch 7 done\n'.length + 'try a smaller lr\n'.length);
    assert.equal(out.deletions, 1);
    assert.equal(out.complete, true);
    assert.deepEqual(out.paths.sort(), ['kept.txt (deleted here)', 'notes', 'train.log']);
    assert.ok(!existsSync(join(folder, 'vanished.tmp')));
    assert.equal(readFileSync(join(m.root, 'kept.txt'), 'utf8'), 'the standby\'s own\n', 'nothing deleted in the workspace');
    assert.ok(!existsSync(join(m.root, 'train.log')), 'nothing written into the workspace');
  });

  test('with its conflicts line gone (revoked), the copy is refused and the outcome says so; an agent that never completed a pass says its list is not all', async () => {
    await revokeOnStandby(m.target, ['gpu-1'], { waitMs: 2_000 });
    const out = await copyConflicts(config(key.file), [change('train.log', 'change', 1)], `${m.root}.conflicts/20261205T090500Z-gpu-1`, log, false);
    assert.equal(out.ok, false);
    assert.equal(out.complete, false);
    assert.match(out.error ?? '', /Permission denied|failed/);
    assert.equal(out.files, 0);
  });
});
