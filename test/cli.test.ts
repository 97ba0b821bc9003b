// The `standby` CLI in real child processes: the command list, "not built
// yet" commands, and start-up failures that must say what is wrong. Nothing
// here reaches a standby: every agent run stops at its config or its
// workspace check, before any ssh.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NODE, run, type Run } from './fixtures/cli-run.ts';
import { STANDBY_CLI } from './fixtures/program-paths.ts';

/** `standby ARGS` (cli.ts on the pinned Node), 20 s at most */
function standby(...args: string[]): Promise<Run> {
  return run(NODE, ['cli.ts', ...args], {}, 20_000);
}

let dir = '';
let good = '';
/** a workspace that does not exist, so an agent that gets past its config stops at the workspace check */
let noWorkspace = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'standby-cli-'));
  noWorkspace = join(dir, 'no-such-workspace');
  good = join(dir, 'agent.json');
  writeFileSync(good, JSON.stringify({
    hostId: 'gpu-1',
    workspace: noWorkspace,
    standby: { host: '127.0.0.1', port: 1, user: 'root', path: '/standby/workspace', sshOptions: ['-o', 'BatchMode=yes'] },
    sync: { delayMs: 250, maxDelayMs: 1000, exclude: [] },
    status: { port: 0 },
    logLevel: 'silent',
  }), { mode: 0o600 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content), { mode: 0o600 });
  return p;
}

describe('standby --help and the command list', { concurrency: 2 }, () => {
  test('--help lists every command of the CLI contract and exits 0', async () => {
    const r = await standby('--help');
    assert.equal(r.code, 0, r.stderr);
    for (const cmd of ['agent', 'status', 'sync', 'verify', 'demo', 'proxy', 'failover', 'report', 'receive', 'drill', 'install', 'uninstall', 'snapshots', 'restore']) {
      assert.match(r.stdout, new RegExp(`^  standby ${cmd}\\b`, 'm'), `--help does not list ${cmd}`);
    }
  });

  test('--version prints the package version', async () => {
    const r = await standby('--version');
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), '0.1.0');
  });

  test('no command: exit 2 and a hint', async () => {
    const r = await standby();
    assert.equal(r.code, 2);
    assert.match(r.stderr, /name a command; see --help/);
  });

  test('an unknown command: exit 2', async () => {
    const r = await standby('frobnicate');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Unknown command|frobnicate/i);
  });
});

describe('each command loads alone, and bin/standby keeps Node\'s compile cache', { concurrency: 2 }, () => {
  // cli.ts loads only the named command's module: every command must still parse its own flags and print its own help
  for (const cmd of ['demo', 'agent', 'proxy', 'failover', 'drill', 'switch-back', 'status', 'report', 'settings', 'hosts', 'sync', 'verify', 'receive', 'install', 'uninstall']) {
    test(`standby ${cmd} --help`, async () => {
      const r = await standby(cmd, '--help');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^standby ${cmd}\\b`, 'm'));
    });
  }

  test('the cache goes where systemd\'s CacheDirectory= says; an unusable one only means no cache', async () => {
    const cache = join(dir, 'cache');
    const r = await run(STANDBY_CLI, ['status', '--help'], { CACHE_DIRECTORY: cache, NODE_COMPILE_CACHE: '' });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readdirSync(join(cache, 'standby-node'), { recursive: true }).length > 0, 'nothing cached');
    const notAFolder = write('not-a-folder', 'x');
    const without = await run(STANDBY_CLI, ['status', '--help'], { CACHE_DIRECTORY: notAFolder, NODE_COMPILE_CACHE: '' });
    assert.equal(without.code, 0, without.stderr);
    assert.equal(without.stderr, '');
  });
});

describe('commands not built yet say so and exit 2', { concurrency: 2 }, () => {
  const cases: { name: string; args: string[] }[] = [
    { name: 'snapshots', args: ['snapshots'] },
    { name: 'restore', args: ['restore'] },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const r = await standby(...c.args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`standby ${c.args[0]}: not built yet`));
    });
  }

});

describe('proxy commands: clear errors before anything runs', { concurrency: 2 }, () => {
  test('proxy without a config: exit 78, names the fields it needs', async () => {
    const r = await standby('proxy');
    assert.equal(r.code, 78);
    assert.match(r.stderr, /adminToken/);
    assert.match(r.stderr, /primary/);
  });

  test('proxy with a bad value: exit 78, names the field, the value and what was expected', async () => {
    const bad = write('proxy-bad.json', {
      adminToken: 'long-enough-token',
      primary: { id: 'gpu-1', url: 'ftp://x', agentToken: 'secret-123' },
      standby: { id: 'cpu-1', url: 'http://127.0.0.1:9002', ssh: { host: '127.0.0.1', identityFile: '/k' } },
    });
    const r = await standby('proxy', '--config', bad);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /primary\.url: got "ftp:\/\/x", expected an http:\/\/ or https:\/\/ URL/);
  });

  test('status without --agent asks the proxy: which one, if nothing says', async () => {
    const r = await standby('status');
    assert.equal(r.code, 78);
    assert.match(r.stderr, /which proxy\? pass --proxy URL/);
  });

  test('failover against a proxy that is not there: exit 69, names the URL', async () => {
    const r = await standby('failover', '--proxy', 'http://127.0.0.1:1', '--token', 'whatever-token');
    assert.equal(r.code, 69);
    assert.match(r.stderr, /no proxy answers at http:\/\/127\.0\.0\.1:1/);
  });
});

describe('agent start-up failures', { concurrency: 2 }, () => {
  test('a missing --config file: exit 78, names the file', async () => {
    const r = await standby('agent', '--config', '/nonexistent.json');
    assert.equal(r.code, 78);
    assert.equal(r.stderr.trim(), 'standby: cannot read config file /nonexistent.json: ENOENT; pass an existing JSON file with --config');
  });

  test('a bad field: exit 78, names the field, the value and what was expected', async () => {
    const bad = write('bad.json', { hostId: 'gpu-1', standby: { host: 'h', path: '/s' }, sync: { delayMs: -5 } });
    const r = await standby('agent', '--config', bad);
    assert.equal(r.code, 78);
    assert.match(r.stderr, new RegExp(`invalid settings in ${bad.replaceAll('.', '\\.')}`));
    assert.match(r.stderr, /sync\.delayMs: got -5, expected sync\.delayMs: at least 0 ms/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace for a config error');
  });

  test('a misspelt field: exit 78, names it', async () => {
    const bad = write('typo.json', { hostId: 'gpu-1', standby: { host: 'h', path: '/s' }, sync: { delaysMs: 250 } });
    const r = await standby('agent', '--config', bad);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /sync: unknown field\(s\) delaysMs/);
  });

  test('a file that is not JSON: exit 78', async () => {
    const bad = write('notjson.json', 'hostId: gpu-1\n');
    const r = await standby('agent', '--config', bad);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /is not valid JSON/);
  });

  test('a bad flag over a good file: exit 78, the source says "(and flags)"', async () => {
    const r = await standby('agent', '--config', good, '--sync.delayMs', '-1');
    assert.equal(r.code, 78);
    assert.match(r.stderr, /\(and flags\):\n\s+sync\.delayMs: got -1/);
  });

  test('flags override the file: --workspace names the folder the agent then looks for', async () => {
    const other = join(dir, 'flag-workspace');
    const r = await standby('agent', '--config', good, '--workspace', other);
    assert.equal(r.code, 66, r.stderr);
    assert.match(r.stderr, new RegExp(`sync root ${other.replaceAll('.', '\\.')} is not a folder`));
  });

  test('--sync.delayMs 1000 over a file passes validation (stops at the workspace check)', async () => {
    const r = await standby('agent', '--config', good, '--sync.delayMs', '1000');
    assert.equal(r.code, 66, r.stderr);
    assert.match(r.stderr, /is not a folder/);
  });

  // yargs knows nothing of the schema, so these flags arrive as the wrong type unless the CLI converts them
  const flagCases: { name: string; args: string[] }[] = [
    { name: 'regression: --sync.defaultExcludes false is accepted as the boolean false', args: ['--sync.defaultExcludes', 'false'] },
    { name: 'regression: a single --sync.exclude is accepted as a one-pattern list', args: ['--sync.exclude', '*.log'] },
    { name: 'regression: a numeric-looking --hostId is accepted as a string (Vast ids are numbers)', args: ['--hostId', '123'] },
  ];
  for (const c of flagCases) {
    test(c.name, async () => {
      const r = await standby('agent', '--config', good, ...c.args);
      assert.doesNotMatch(r.stderr, /invalid settings/, r.stderr);
      assert.equal(r.code, 66, `got past the config to the workspace check; stderr: ${r.stderr}`);
    });
  }

  test('verify with a missing --config: exit 78', async () => {
    const r = await standby('verify', '--config', '/nonexistent.json');
    assert.equal(r.code, 78);
    assert.match(r.stderr, /cannot read config file \/nonexistent\.json/);
  });
});

describe('commands that talk to a running agent', { concurrency: 2 }, () => {
  test('status --agent with nothing listening says no agent answers', async () => {
    const r = await standby('status', '--agent', '--agent-url', 'http://127.0.0.1:1');
    assert.equal(r.code, 69);
    assert.match(r.stderr, /no agent answers at http:\/\/127\.0\.0\.1:1: is `standby agent` running\?/);
  });

  test('sync --full with nothing listening says no agent answers', async () => {
    const r = await standby('sync', '--full', '--agent-url', 'http://127.0.0.1:1');
    assert.equal(r.code, 69);
    assert.match(r.stderr, /no agent answers/);
  });

  test('regression: sync without an action is a usage error (exit 2), not an uncaught exception', async () => {
    const r = await standby('sync');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--confirm-deletes or --full/);
    assert.doesNotMatch(r.stderr, /triggerUncaughtException|node:internal/);
  });
});

describe('proxy config: tokens', { concurrency: 2 }, () => {
  test('an agent token shared by the GPU and the standby is refused: a token names its host', async () => {
    const bad = write('proxy-shared-token.json', {
      adminToken: 'admin-token-1',
      primary: { id: 'gpu-1', url: 'http://127.0.0.1:9001', agentToken: 'same-token-1' },
      standby: { id: 'cpu-1', url: 'http://127.0.0.1:9002', agentToken: 'same-token-1', ssh: { host: '127.0.0.1', identityFile: '/k' } },
    });
    const r = await standby('proxy', '--config', bad);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /standby\.agentToken: .*expected a token of its own, not primary\.agentToken/);
  });
});
