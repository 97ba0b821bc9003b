// The installer writes both sides of the editor's sync: agent.json's `editor`
// (code-server's user data and extensions folders) and, on the standby, the
// receiver's roots for them in the forced commands, which the writer entries
// the proxy authorizes inherit. --no-editor leaves both out.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentConfigSchema } from '../../config/agent.ts';
import { validateSettings } from '../../config/file.ts';
import { layoutOf } from '../../installer/layout.ts';
import { agentSettings, editorDirs } from '../../installer/role-config.ts';
import { editorOfRoots, editorReceiveRoots, parseAuthorizeReport } from '../../protocol/receiver.ts';
import { run, standby } from '../fixtures/cli-run.ts';

const scratch = () => mkdtempSync(join(tmpdir(), 'standby-install-editor-'));

test("agent.json's editor: from --editor-data-dir on a first install; none under --root without it, or with --no-editor; an upgrade keeps it", () => {
  const layout = layoutOf('/tmp/standby-prefix');
  const base = { standbyHost: 'cpu-1.example', workspace: '/tmp/standby-prefix/ws' };
  const given = agentSettings({}, { ...base, editorDataDir: '/home/dev/.local/share/code-server' }, layout, '/k');
  const config = validateSettings(agentConfigSchema, given, 'test');
  assert.deepEqual(config.editor, {
    userDataDir: '/home/dev/.local/share/code-server',
    extensionsDir: '/home/dev/.local/share/code-server/extensions',
    remoteUserDataDir: '/home/dev/.local/share/code-server',
    remoteExtensionsDir: '/home/dev/.local/share/code-server/extensions',
  });
  assert.equal(agentSettings({}, base, layout, '/k')['editor'], undefined, 'under --root, nothing outside the prefix is named without the flag');
  assert.equal(agentSettings({}, { ...base, editorDataDir: '/d', editor: false }, layout, '/k')['editor'], undefined);
  const upgraded = agentSettings(given, {}, layout, '/k');
  assert.deepEqual(upgraded['editor'], given['editor'], 'a second install keeps it');
  assert.equal(agentSettings(given, { editor: false }, layout, '/k')['editor'], undefined, '--no-editor takes it out');
  assert.throws(() => editorDirs({ editorDataDir: 'relative' }, '/ws', layout), /--editor-data-dir relative: expected an absolute path/);
});

test('the editor roots a receiver lists read back as the folders they came from; a receiver without them, or roots in another shape, give none', () => {
  const dirs = { userDataDir: '/home/dev/.local/share/code-server', extensionsDir: '/opt/ext' };
  assert.deepEqual(editorOfRoots(['/ws', ...editorReceiveRoots(dirs)]), dirs);
  assert.equal(editorOfRoots(['/ws']), undefined);
  assert.equal(editorOfRoots(['/ws', '/home/dev/settings', '/opt/ext']), undefined);
  assert.equal(editorOfRoots(['/ws', '/User', '/opt/ext']), undefined);
});

test('--standby-editor-data-dir (or what enrollment says of the standby) is where the agent pushes the editor\'s folders', () => {
  const layout = layoutOf('/tmp/r');
  const s = agentSettings({}, { workspace: '/ws', standbyHost: 'cpu', editorDataDir: '/root/.local/share/code-server', standbyEditorDataDir: '/home/dev/.local/share/code-server', standbyEditorExtensionsDir: '/home/dev/ext' }, layout, '/k');
  assert.deepEqual(s['editor'], { userDataDir: '/root/.local/share/code-server', extensionsDir: '/root/.local/share/code-server/extensions', remoteUserDataDir: '/home/dev/.local/share/code-server', remoteExtensionsDir: '/home/dev/ext' });
  assert.throws(() => agentSettings({}, { workspace: '/ws', standbyHost: 'cpu', editorDataDir: '/d', standbyEditorDataDir: 'rel' }, layout, '/k'), /--standby-editor-data-dir rel: expected an absolute path/);
});

test("on a machine, the default is code-server's own folder for the workspace folder's owner", () => {
  const dirs = editorDirs({}, '/', layoutOf('/'));
  // "/" is root's: root's home from /etc/passwd (or this process's, when root runs the test)
  assert.match(dirs?.userDataDir ?? '', /\/\.local\/share\/code-server$/);
  assert.equal(dirs?.extensionsDir, join(dirs!.userDataDir, 'extensions'));
  assert.deepEqual(editorReceiveRoots(dirs), [join(dirs!.userDataDir, 'User'), dirs!.extensionsDir]);
});

test("standby install standby --editor-data-dir: the receiver's forced commands take code-server's User and extensions folders, and so do the writers the proxy authorizes", async () => {
  const root = scratch();
  try {
    const workspace = join(root, 'ws');
    const dataDir = join(root, 'home/dev/.local/share/code-server');
    const fenceKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFenceFenceFenceFenceFenceFenceFenceFenceF standby-agent@proxy';
    const r = await standby(['install', 'standby', '--root', root, '--no-start', '--workspace', workspace, '--fence-key', fenceKey, '--editor-data-dir', dataDir]);
    assert.equal(r.code, 0, r.stderr);
    const roots = `--root ${workspace} --root ${join(dataDir, 'User')} --root ${join(dataDir, 'extensions')}`;
    const ak = join(root, 'root/.ssh/authorized_keys');
    const program = join(root, 'opt/standby/bin/standby');
    const receiveDir = join(root, 'var/lib/standby/receive');
    assert.equal(readFileSync(ak, 'utf8'), `command="${program} receive --allow-fence --state-dir ${receiveDir} ${roots} --authorized-keys ${ak}",restrict ${fenceKey}\n`);
    assert.match(r.stdout, /code-server's settings, snippets, unsaved-editor backups and extensions land in/);

    // the proxy authorizes an enrolled GPU's key through that forced command: the writer's entry gets the same roots
    const writerKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIWriterWriterWriterWriterWriterWriterWri gpu-2';
    const a = await run(program, ['receive', '--allow-fence', '--state-dir', receiveDir, '--root', workspace, '--root', join(dataDir, 'User'), '--root', join(dataDir, 'extensions'), '--authorized-keys', ak], { SSH_ORIGINAL_COMMAND: `standby receive --authorize gpu-2 --key '${writerKey}'` });
    assert.equal(a.code, 0, a.stderr);
    const writerLine = readFileSync(ak, 'utf8').split('\n').find((l) => l.endsWith('gpu-2'));
    assert.ok(writerLine?.includes(`receive ${roots} --state-dir ${receiveDir} --host gpu-2`), writerLine);
    // ...and its answer lists them, which tells the proxy (and, through enrollment, the GPU's agent) where code-server's folders are there
    const report = parseAuthorizeReport(JSON.parse(a.stdout.trim().split('\n').at(-1)!));
    assert.deepEqual(editorOfRoots(report!.roots), { userDataDir: dataDir, extensionsDir: join(dataDir, 'extensions') });

    // --no-editor: the workspace alone
    const n = await standby(['install', 'standby', '--root', root, '--no-start', '--workspace', workspace, '--fence-key', fenceKey, '--no-editor']);
    assert.equal(n.code, 0, n.stderr);
    assert.ok(readFileSync(ak, 'utf8').includes(`receive --allow-fence --state-dir ${receiveDir} --root ${workspace} --authorized-keys`));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
