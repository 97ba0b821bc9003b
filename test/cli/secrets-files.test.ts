// Secrets on disk: the daemons refuse to start on a config file
// (it holds tokens) or a private key that group or others can read, naming the
// file, its mode and the chmod that fixes it; nothing runs before that.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ErrorCodes } from '../../core/errors.ts';
import { NODE, run } from '../fixtures/cli-run.ts';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'standby-secrets-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: unknown, mode: number): string {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content), { mode });
  chmodSync(p, mode); // whatever the umask
  return p;
}

const EXIT = ErrorCodes.STANDBY_ERR_SECRETS_EXPOSED.exit;

describe('a daemon refuses secrets that group or others can read', { concurrency: 2 }, () => {
  test('standby agent --config agent.json at 0644', async () => {
    const config = write('agent.json', { hostId: 'gpu-1', standby: { host: '127.0.0.1', path: '/x' }, proxy: { url: 'ws://127.0.0.1:1/_standby/agent', token: 'agent-token-gpu-1' } }, 0o644);
    const r = await run(NODE, ['cli.ts', 'agent', '--config', config], {}, 20_000);
    assert.equal(r.code, EXIT, r.stderr);
    assert.equal(r.stderr.trim(), `standby: ${config} holds tokens and is mode 0644: group or others can read it. Nothing was started; run: chmod 600 ${config}`);
  });

  test("standby agent with its ssh key (standby.identityFile) at 0640", async () => {
    const key = write('id_agent', 'key\n', 0o640);
    const config = write('agent-key.json', { hostId: 'gpu-1', workspace: dir, standby: { host: '127.0.0.1', path: '/x', identityFile: key }, status: { port: 0 } }, 0o600);
    const r = await run(NODE, ['cli.ts', 'agent', '--config', config], {}, 20_000);
    assert.equal(r.code, EXIT, r.stderr);
    assert.match(r.stderr, new RegExp(`${key} holds the agent's private ssh key \\(standby\\.identityFile\\) and is mode 0640: .*chmod 600 ${key}$`, 'm'));
  });

  test("standby agent with no standby section and its key for granted targets (identityFile) at 0640", async () => {
    const key = write('id_target', 'key\n', 0o640);
    const config = write('agent-target-key.json', { hostId: 'cpu-1', workspace: dir, identityFile: key, proxy: { url: 'ws://127.0.0.1:1/_standby/agent', token: 'agent-token-cpu-1' }, status: { port: 0 } }, 0o600);
    const r = await run(NODE, ['cli.ts', 'agent', '--config', config], {}, 20_000);
    assert.equal(r.code, EXIT, r.stderr);
    assert.match(r.stderr, new RegExp(`${key} holds the agent's private ssh key for granted targets \\(identityFile\\) and is mode 0640: .*chmod 600 ${key}$`, 'm'));
  });

  test("standby proxy with its fencing key at 0644, and with proxy.json at 0604", async () => {
    const key = write('id_fence', 'key\n', 0o644);
    const settings = {
      listen: { host: '127.0.0.1', port: 0 },
      stateDir: join(dir, 'state'),
      adminToken: 'admin-token-for-tests',
      primary: { id: 'gpu-1', url: 'http://127.0.0.1:9', agentToken: 'agent-token-gpu-1' },
      standby: { id: 'cpu-1', url: 'http://127.0.0.1:9', ssh: { host: '127.0.0.1', identityFile: key } },
    };
    const config = write('proxy.json', settings, 0o600);
    const r = await run(NODE, ['cli.ts', 'proxy', '--config', config], {}, 20_000);
    assert.equal(r.code, EXIT, r.stderr);
    assert.match(r.stderr, new RegExp(`${key} holds the proxy's fencing key \\(standby\\.ssh\\.identityFile\\) and is mode 0644: .*chmod 600 ${key}$`, 'm'));
    const open = write('proxy-open.json', settings, 0o604);
    const r2 = await run(NODE, ['cli.ts', 'proxy', '--config', open], {}, 20_000);
    assert.equal(r2.code, EXIT, r2.stderr);
    assert.match(r2.stderr, new RegExp(`${open} holds tokens and is mode 0604`));
  });
});
