// code-server's settings, keybindings, snippets, tasks, unsaved-editor
// backups and extensions follow the developer (agent.json `editor`): the real
// agent pushes them through the standby's receiver (a real sshd whose forced
// command lists the editor's folders as roots), and never the live state
// databases (state.vscdb), logs or caches, which stay as each side has them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { startAgent, type Agent } from '../fixtures/agent-process.ts';
import { killMarked } from '../fixtures/process-tree.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import { waitFor } from '../fixtures/wait-for.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';

function put(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

function read(file: string): string | undefined {
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}

interface World {
  /** the standby's copy of the workspace */
  dst: string;
  gpuUd: string;
  cpuUd: string;
  agent: Agent;
}

async function world(t: import('node:test').TestContext, before: (gpuUd: string, cpuUd: string) => void, { editorRoots = true } = {}): Promise<World> {
  const top = mkdtempSync(join(tmpdir(), 'standby-editor-'));
  const src = join(top, 'ws');
  const dst = join(top, 'ws-copy');
  const gpuUd = join(top, 'gpu-code-server');
  const cpuUd = join(top, 'cpu-code-server');
  const state = join(top, 'receive-state');
  const runDir = join(top, 'run');
  for (const d of [src, dst, runDir, join(gpuUd, 'User'), join(gpuUd, 'extensions')]) mkdirSync(d, { recursive: true });
  writeFileSync(join(src, 'main.py'), 'print(1)\n');
  before(gpuUd, cpuUd);
  let sshd: Sshd | undefined;
  let agent: Agent | undefined;
  t.after(async () => {
    await agent?.stop();
    killMarked(runDir);
    await sshd?.close();
    rmSync(top, { recursive: true, force: true });
  });
  // the standby's receiver takes the workspace and code-server's User and extensions folders, nothing else
  const roots = [dst, ...(editorRoots ? [join(cpuUd, 'User'), join(cpuUd, 'extensions')] : [])].map((r) => `--root ${r}`).join(' ');
  sshd = await startSshd({ keyOptions: `command="${STANDBY_CLI} receive ${roots} --state-dir ${state}",restrict` });
  agent = await startAgent({
    src,
    dst,
    target: { host: sshd.host, port: sshd.port, user: sshd.user, identityFile: sshd.identityFile, sshOptions: sshd.sshOptions },
    dir: top,
    settings: { runDir, editor: { userDataDir: gpuUd, remoteUserDataDir: cpuUd } },
  });
  await agent.ready(30_000);
  await agent.settled(20_000);
  return { gpuUd, cpuUd, agent, dst };
}

test('settings, keybindings, snippets, tasks, backups and an extension reach the standby; state.vscdb, logs and caches do not', async (t) => {
  const { gpuUd, cpuUd, agent } = await world(t, (gpu, cpu) => {
    put(join(gpu, 'User/settings.json'), '{ "editor.fontSize": 15 }\n');
    put(join(gpu, 'User/keybindings.json'), '[]\n');
    put(join(gpu, 'User/snippets/python.json'), '{ "main": { "prefix": "main", "body": ["if __name__ == \\"__main__\\":"] } }\n');
    put(join(gpu, 'User/tasks.json'), '{ "version": "2.0.0", "tasks": [] }\n');
    put(join(gpu, 'User/Backups/62dd17cf/untitled/-7f9c1a2e'), 'untitled:Untitled-1 {"typeId":""}\nnot saved yet\n');
    put(join(gpu, 'User/globalStorage/state.vscdb'), 'SQLite format 3\0 the GPU\'s live database');
    put(join(gpu, 'User/workspaceStorage/62dd17cf/state.vscdb'), 'SQLite format 3\0 the GPU\'s workspace state');
    put(join(gpu, 'User/History/6cd9a5cd/entries.json'), '{}');
    put(join(gpu, 'User/machineid'), 'gpu-machine\n');
    put(join(gpu, 'logs/20261205T114516/remoteagent.log'), 'log\n');
    put(join(gpu, 'CachedProfilesData/__default__profile__/extensions.user.en.cache'), 'cache');
    put(join(gpu, 'extensions/ms-python.black-formatter-2024.2.0/package.json'), '{ "name": "black-formatter", "version": "2024.2.0" }\n');
    put(join(gpu, 'extensions/extensions.json'), '[{"identifier":{"id":"ms-python.black-formatter"},"version":"2024.2.0","relativeLocation":"ms-python.black-formatter-2024.2.0"}]');
    // the standby's own code-server state, which no pass may touch
    put(join(cpu, 'User/globalStorage/state.vscdb'), 'SQLite format 3\0 the standby\'s own');
    put(join(cpu, 'User/machineid'), 'cpu-machine\n');
  });
  // the first full pass
  assert.equal(read(join(cpuUd, 'User/settings.json')), '{ "editor.fontSize": 15 }\n');
  assert.equal(read(join(cpuUd, 'User/keybindings.json')), '[]\n');
  assert.match(read(join(cpuUd, 'User/snippets/python.json')) ?? '', /__main__/);
  assert.match(read(join(cpuUd, 'User/tasks.json')) ?? '', /2\.0\.0/);
  assert.match(read(join(cpuUd, 'User/Backups/62dd17cf/untitled/-7f9c1a2e')) ?? '', /not saved yet/);
  assert.match(read(join(cpuUd, 'extensions/ms-python.black-formatter-2024.2.0/package.json')) ?? '', /2024\.2\.0/);
  assert.match(read(join(cpuUd, 'extensions/extensions.json')) ?? '', /black-formatter/);
  assert.equal(read(join(cpuUd, 'User/globalStorage/state.vscdb')), 'SQLite format 3\0 the standby\'s own', "the standby's live database is neither replaced nor deleted");
  assert.equal(existsSync(join(cpuUd, 'User/workspaceStorage')), false, 'workspaceStorage (state.vscdb) is not copied');
  assert.equal(existsSync(join(cpuUd, 'User/History')), false);
  assert.equal(read(join(cpuUd, 'User/machineid')), 'cpu-machine\n', "the standby's machine id stays its own");
  assert.equal(existsSync(join(cpuUd, 'logs')), false, 'logs are not copied');
  assert.equal(existsSync(join(cpuUd, 'CachedProfilesData')), false, 'caches are not copied');

  // while the agent runs: a setting changed, a keybinding added, an extension installed, a backup dropped (saved), the live database written
  const passesBefore = (await agent.status()).passes;
  writeFileSync(join(gpuUd, 'User/settings.json'), '{ "editor.fontSize": 17, "files.autoSave": "off" }\n');
  writeFileSync(join(gpuUd, 'User/keybindings.json'), '[{ "key": "ctrl+k ctrl+t", "command": "workbench.action.terminal.toggleTerminal" }]\n');
  put(join(gpuUd, 'extensions/esbenp.prettier-vscode-11.0.0/package.json'), '{ "name": "prettier-vscode", "version": "11.0.0" }\n');
  put(join(gpuUd, 'extensions/esbenp.prettier-vscode-11.0.0/dist/extension.js'), 'exports.activate = () => {};\n');
  writeFileSync(join(gpuUd, 'extensions/extensions.json'), '[{"identifier":{"id":"ms-python.black-formatter"},"relativeLocation":"ms-python.black-formatter-2024.2.0"},{"identifier":{"id":"esbenp.prettier-vscode"},"relativeLocation":"esbenp.prettier-vscode-11.0.0"}]');
  rmSync(join(gpuUd, 'User/Backups/62dd17cf/untitled/-7f9c1a2e'));
  writeFileSync(join(gpuUd, 'User/globalStorage/state.vscdb'), 'SQLite format 3\0 written again on the GPU');
  await waitFor('the new extension on the standby', () => existsSync(join(cpuUd, 'extensions/esbenp.prettier-vscode-11.0.0/dist/extension.js')), { timeoutMs: 20_000 });
  await agent.settled(20_000, { quietMs: 500 });
  assert.ok((await agent.status()).passes > passesBefore, 'incremental passes carried them');
  assert.match(read(join(cpuUd, 'User/settings.json')) ?? '', /"editor\.fontSize": 17/);
  assert.match(read(join(cpuUd, 'User/keybindings.json')) ?? '', /toggleTerminal/);
  assert.match(read(join(cpuUd, 'extensions/extensions.json')) ?? '', /prettier-vscode/);
  assert.equal(existsSync(join(cpuUd, 'User/Backups/62dd17cf/untitled/-7f9c1a2e')), false, 'a backup code-server dropped (the editor saved or closed) goes on the standby too');
  assert.equal(read(join(cpuUd, 'User/globalStorage/state.vscdb')), 'SQLite format 3\0 the standby\'s own', 'a write to the live database is not pushed');

  // a full reconcile keeps to the same paths
  await fetch(`${agent.url}/resync`, { method: 'POST' });
  await agent.settled(20_000, { quietMs: 500 });
  assert.equal(read(join(cpuUd, 'User/globalStorage/state.vscdb')), 'SQLite format 3\0 the standby\'s own');
  assert.equal(read(join(cpuUd, 'User/machineid')), 'cpu-machine\n');
  assert.equal(existsSync(join(cpuUd, 'User/workspaceStorage')), false);
});

test("the editor's folders missing at the agent's start (code-server not started yet) are made, and sync once code-server writes there", async (t) => {
  let gpu = '';
  const { cpuUd } = await world(t, (gpuUd) => {
    gpu = gpuUd;
    rmSync(gpuUd, { recursive: true, force: true });
  });
  assert.ok(existsSync(join(gpu, 'User')) && existsSync(join(gpu, 'extensions')), 'the agent made User and extensions');
  put(join(gpu, 'User/settings.json'), '{ "workbench.colorTheme": "Default Light Modern" }\n');
  await waitFor('settings.json on the standby', () => /Light Modern/.test(read(join(cpuUd, 'User/settings.json')) ?? ''), { timeoutMs: 20_000 });
});

test("a standby whose receiver does not take code-server's folders (set up without them, or elsewhere): the workspace syncs all the same, and the status says why the editor's do not", async (t) => {
  const w = await world(t, (gpuUd) => put(join(gpuUd, 'User/settings.json'), '{}\n'), { editorRoots: false });
  assert.equal(read(join(w.dst, 'main.py')), 'print(1)\n', 'the first full pass synced the workspace');
  const s = await w.agent.status();
  assert.match(String(s['editorOff']), /outside the sync roots/);
  assert.equal(s.pending, 0);
  assert.match(w.agent.logTail(), /code-server's folders are not synced to .*--standby-editor-data-dir/);
  // a setting changed now is not pending for ever, and the workspace's next change goes through
  put(join(w.gpuUd, 'User/settings.json'), '{ "editor.fontSize": 15 }\n');
  put(join(w.dst, '..', 'ws', 'later.py'), 'print(2)\n');
  await waitFor('the workspace change on the standby', () => read(join(w.dst, 'later.py')) === 'print(2)\n', { timeoutMs: 20_000 });
  const after = await w.agent.settled(20_000);
  assert.equal(after.pending, 0);
  assert.equal(after.watermark, after.lastSeq);
  assert.equal(existsSync(join(w.cpuUd, 'User')), false, 'nothing went outside the receiver\'s roots');
  // verify compares what is synced: the workspace, equal
  const v = spawnSync(STANDBY_CLI, ['verify', '--config', join(dirname(w.dst), 'agent.json')], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(v.status, 0, v.stderr + v.stdout);
});
