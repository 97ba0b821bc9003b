// The agent's settings schema: defaults for the minimal agent.json (the first version's),
// and a table of bad values, each stopping start-up with a StandbyError whose
// message names the field, the bad value and what was expected.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { agentConfigSchema, DEFAULT_EXCLUDES, localRoots, syncRoots, writeIdentityOf, type AgentConfig } from '../../config/agent.ts';
import { validateSettings } from '../../config/file.ts';
import { StandbyError } from '../../core/errors.ts';

const MINIMAL = {
  hostId: 'gpu-1',
  workspace: '/workspace',
  standby: {
    host: '127.0.0.1',
    port: 2222,
    user: 'root',
    identityFile: '/etc/standby/id_ed25519',
    path: '/standby/workspace',
    sshOptions: ['-o', 'StrictHostKeyChecking=accept-new'],
  },
  sync: { delayMs: 250, maxDelayMs: 1000, exclude: [] },
};

/** the smallest valid settings: everything else defaulted */
const BASE = { hostId: 'gpu-1', standby: { host: 'standby.example', path: '/standby/workspace' } };

function validate(raw: unknown): Readonly<AgentConfig> {
  return validateSettings(agentConfigSchema, raw, 'agent.json');
}

function configError(raw: unknown): StandbyError {
  try {
    validate(raw);
  } catch (err) {
    assert.ok(err instanceof StandbyError, `not a StandbyError: ${String(err)}`);
    return err;
  }
  assert.fail(`accepted ${JSON.stringify(raw)}`);
}

describe('agent config defaults', () => {
  test('the minimal agent.json of the first version is accepted and every other setting defaulted', () => {
    const config = validate(MINIMAL);
    assert.deepEqual(config, {
      hostId: 'gpu-1',
      workspace: '/workspace',
      standby: {
        host: '127.0.0.1',
        port: 2222,
        user: 'root',
        identityFile: '/etc/standby/id_ed25519',
        path: '/standby/workspace',
        sshOptions: ['-o', 'StrictHostKeyChecking=accept-new'],
      },
      sync: {
        delayMs: 250,
        maxDelayMs: 1000,
        exclude: [],
        defaultExcludes: true,
        paths: [],
        fullResyncS: 600,
        ioTimeoutS: 30,
        retryMinMs: 500,
        retryMaxMs: 30_000,
        deleteGuard: { fraction: 0.5, minFiles: 50 },
      },
      status: { host: '127.0.0.1', port: 7611 },
      notices: { gcpMetadata: 'auto', gcpMetadataUrl: 'http://metadata.google.internal/computeMetadata/v1/instance/preempted', stopSignal: false, stopGraceMs: 25_000 },
      resume: { file: '.standby/resume', timeoutS: 0 },
      logLevel: 'info',
    });
  });

  test('with only hostId and standby host/path, the documented defaults are filled', () => {
    const config = validate(BASE);
    assert.equal(config.workspace, '/workspace');
    assert.equal(config.standby!.port, 22);
    assert.equal(config.standby!.user, 'root');
    assert.deepEqual(config.standby!.sshOptions, []);
    assert.equal(config.standby!.identityFile, undefined);
    assert.equal(config.standby!.rsyncPath, undefined);
    assert.equal(config.runDir, undefined);
    assert.equal(config.sync.delayMs, 250);
    assert.equal(config.sync.maxDelayMs, 1000);
    assert.equal(config.sync.defaultExcludes, true);
    assert.deepEqual(config.status, { host: '127.0.0.1', port: 7611 });
    assert.equal(config.logLevel, 'info');
  });

  test('the result is deeply frozen', () => {
    const config = validate(MINIMAL);
    for (const obj of [config, config.standby!, config.standby!.sshOptions, config.sync, config.sync.exclude, config.sync.paths, config.sync.deleteGuard, config.status]) {
      assert.ok(Object.isFrozen(obj));
    }
    assert.throws(() => {
      (config.sync as { delayMs: number }).delayMs = 1;
    }, TypeError);
    assert.throws(() => {
      (config.sync.exclude as string[]).push('x');
    }, TypeError);
  });

  test('validating does not freeze or change the input', () => {
    const raw = structuredClone(MINIMAL);
    validate(raw);
    assert.ok(!Object.isFrozen(raw));
    assert.deepEqual(raw, MINIMAL);
  });

  test('valid edge values are accepted', () => {
    const config = validate({
      ...BASE,
      workspace: '/data/ws',
      standby: { host: '::1', port: 65535, user: 'u', path: '/s', rsyncPath: 'standby receive' },
      sync: {
        delayMs: 0, maxDelayMs: 0, exclude: ['*.log', 'build/'], defaultExcludes: false, fullResyncS: 0,
        paths: [{ local: '/home/u/.local/share/code-server/User', remote: '/standby/User' }],
        deleteGuard: { fraction: 1, minFiles: 0 },
      },
      status: { host: '::1', port: 0 },
      runDir: '/run/standby',
      logLevel: 'silent',
    });
    assert.equal(config.sync.delayMs, 0);
    assert.equal(config.status.port, 0);
    assert.equal(config.sync.paths.length, 1);
  });

  test('DEFAULT_EXCLUDES are caches and build output, not work', () => {
    assert.deepEqual([...DEFAULT_EXCLUDES], ['.cache/', '__pycache__/', '*.pyc', '.ipynb_checkpoints/', 'node_modules/.cache/', '.Trash-*/', '*.swp', '*.swx']);
  });
});

describe('agent config bad values', () => {
  const cases: { name: string; raw: unknown; field: string; got: string; expected: RegExp }[] = [
    { name: 'hostId missing', raw: { standby: BASE.standby }, field: 'hostId', got: 'nothing', expected: /host id/ },
    { name: 'hostId empty', raw: { ...BASE, hostId: '' }, field: 'hostId', got: '""', expected: /non-empty host id/ },
    { name: 'workspace relative', raw: { ...BASE, workspace: 'rel/path' }, field: 'workspace', got: '"rel/path"', expected: /an absolute path/ },
    { name: 'workspace empty', raw: { ...BASE, workspace: '' }, field: 'workspace', got: '""', expected: /an absolute path/ },
    { name: 'workspace not a string', raw: { ...BASE, workspace: 42 }, field: 'workspace', got: '42', expected: /an absolute path/ },
    { name: 'standby.path relative', raw: { ...BASE, standby: { host: 'h', path: 'x' } }, field: 'standby.path', got: '"x"', expected: /an absolute path/ },
    { name: 'standby.identityFile relative', raw: { ...BASE, standby: { ...BASE.standby, identityFile: 'id_ed25519' } }, field: 'standby.identityFile', got: '"id_ed25519"', expected: /an absolute path/ },
    { name: 'standby.host empty', raw: { ...BASE, standby: { ...BASE.standby, host: '' } }, field: 'standby.host', got: '""', expected: /host name or IP address/ },
    { name: 'standby.port too big', raw: { ...BASE, standby: { ...BASE.standby, port: 70000 } }, field: 'standby.port', got: '70000', expected: /port number 1-65535/ },
    { name: 'standby.port a string', raw: { ...BASE, standby: { ...BASE.standby, port: '22' } }, field: 'standby.port', got: '"22"', expected: /port number 1-65535/ },
    { name: 'standby.port 0', raw: { ...BASE, standby: { ...BASE.standby, port: 0 } }, field: 'standby.port', got: '0', expected: /port number 1-65535/ },
    { name: 'standby.user empty', raw: { ...BASE, standby: { ...BASE.standby, user: '' } }, field: 'standby.user', got: '""', expected: /a user name/ },
    { name: 'sync.delayMs negative', raw: { ...BASE, sync: { delayMs: -5 } }, field: 'sync.delayMs', got: '-5', expected: /at least 0 ms/ },
    { name: 'sync.delayMs a string', raw: { ...BASE, sync: { delayMs: 'fast' } }, field: 'sync.delayMs', got: '"fast"', expected: /number of milliseconds 0-60000/ },
    { name: 'sync.delayMs fractional', raw: { ...BASE, sync: { delayMs: 1.5 } }, field: 'sync.delayMs', got: '1.5', expected: /whole milliseconds/ },
    { name: 'sync.delayMs above its maximum', raw: { ...BASE, sync: { delayMs: 70_000, maxDelayMs: 700_000 } }, field: 'sync.delayMs', got: '70000', expected: /at most 60000 ms/ },
    { name: 'sync.maxDelayMs negative', raw: { ...BASE, sync: { maxDelayMs: -1 } }, field: 'sync.maxDelayMs', got: '-1', expected: /at least 0 ms/ },
    { name: 'sync.maxDelayMs below sync.delayMs', raw: { ...BASE, sync: { delayMs: 500, maxDelayMs: 100 } }, field: 'sync.maxDelayMs', got: '100', expected: /at least sync\.delayMs/ },
    { name: 'sync.exclude holding a number', raw: { ...BASE, sync: { exclude: [1] } }, field: 'sync.exclude.0', got: '1', expected: /rsync pattern string/ },
    { name: 'sync.defaultExcludes a string', raw: { ...BASE, sync: { defaultExcludes: 'no' } }, field: 'sync.defaultExcludes', got: '"no"', expected: /true or false/ },
    { name: 'sync.paths not a list', raw: { ...BASE, sync: { paths: 'x' } }, field: 'sync.paths', got: '"x"', expected: /list of \{local, remote\} folders/ },
    { name: 'sync.paths with a relative local', raw: { ...BASE, sync: { paths: [{ local: 'rel', remote: '/r' }] } }, field: 'sync.paths.0.local', got: '"rel"', expected: /an absolute path/ },
    { name: 'sync.fullResyncS negative', raw: { ...BASE, sync: { fullResyncS: -1 } }, field: 'sync.fullResyncS', got: '-1', expected: /0 or more/ },
    { name: 'sync.retryMinMs below 10', raw: { ...BASE, sync: { retryMinMs: 5 } }, field: 'sync.retryMinMs', got: '5', expected: /at least 10 ms/ },
    { name: 'sync.deleteGuard.fraction 0', raw: { ...BASE, sync: { deleteGuard: { fraction: 0 } } }, field: 'sync.deleteGuard.fraction', got: '0', expected: /share above 0/ },
    { name: 'sync.deleteGuard.fraction above 1', raw: { ...BASE, sync: { deleteGuard: { fraction: 2 } } }, field: 'sync.deleteGuard.fraction', got: '2', expected: /at most 1/ },
    { name: 'sync.deleteGuard.minFiles negative', raw: { ...BASE, sync: { deleteGuard: { minFiles: -1 } } }, field: 'sync.deleteGuard.minFiles', got: '-1', expected: /0 or more/ },
    { name: 'status.host not loopback', raw: { ...BASE, status: { host: '0.0.0.0' } }, field: 'status.host', got: '"0.0.0.0"', expected: /loopback address/ },
    { name: 'status.port negative', raw: { ...BASE, status: { port: -1 } }, field: 'status.port', got: '-1', expected: /port number 0-65535/ },
    { name: 'logLevel unknown', raw: { ...BASE, logLevel: 'loud' }, field: 'logLevel', got: '"loud"', expected: /one of fatal, error, warn, info, debug, trace, silent/ },
    { name: 'runDir relative', raw: { ...BASE, runDir: 'run' }, field: 'runDir', got: '"run"', expected: /an absolute path/ },
    // fields whose schema gives no wording of its own: the message must still say what is expected, in words
    { name: 'sync.ioTimeoutS 0 names the allowed range', raw: { ...BASE, sync: { ioTimeoutS: 0 } }, field: 'sync.ioTimeoutS', got: '0', expected: /at least 1|1-3600/ },
    { name: 'standby.sshOptions holding a number', raw: { ...BASE, standby: { ...BASE.standby, sshOptions: [1] } }, field: 'standby.sshOptions.0', got: '1', expected: /ssh argument/ },
    { name: 'standby.rsyncPath empty', raw: { ...BASE, standby: { ...BASE.standby, rsyncPath: '' } }, field: 'standby.rsyncPath', got: '""', expected: /program|command|path/ },
    { name: 'standby section missing (and no proxy): the error names both', raw: { hostId: 'gpu-1' }, field: 'standby', got: 'nothing', expected: /a standby section .* or a proxy section .*neither standby nor proxy/ },
    { name: 'identityFile relative', raw: { ...BASE, identityFile: 'id_ed25519' }, field: 'identityFile', got: '"id_ed25519"', expected: /an absolute path/ },
    { name: 'sync section null', raw: { ...BASE, sync: null }, field: 'sync', got: 'null', expected: /object|settings/ },
    { name: 'status section a string', raw: { ...BASE, status: 'x' }, field: 'status', got: '"x"', expected: /object|host.*port/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const err = configError(c.raw);
      assert.equal(err.code, 'STANDBY_ERR_CONFIG_INVALID');
      assert.equal(err.exitCode, 78);
      const line = err.message.split('\n').find((l) => l.trim().startsWith(`${c.field}: `));
      assert.ok(line, `no line for ${c.field} in:\n${err.message}`);
      assert.ok(line.includes(`got ${c.got}`), `the line does not name the value ${c.got}: ${line}`);
      const expectedHalf = line.slice(line.indexOf(', expected ') + ', expected '.length);
      assert.ok(line.includes(', expected '), `the line does not say what was expected: ${line}`);
      assert.match(expectedHalf, c.expected);
      // the "expected" half is the schema's wording, not zod's internal phrasing
      assert.doesNotMatch(expectedHalf, /Invalid input|Too small|Too big|received/, `zod's own wording leaks into: ${line}`);
      assert.ok((err.context['fields'] as string[]).includes(c.field), `context.fields lacks ${c.field}`);
    });
  }

  const unknownCases: { name: string; raw: unknown; where: string; key: string }[] = [
    { name: 'a misspelt top-level field', raw: { ...BASE, hostID: 'x' }, where: '', key: 'hostID' },
    { name: 'a misspelt sync field', raw: { ...BASE, sync: { delaysMs: 500 } }, where: 'sync: ', key: 'delaysMs' },
    { name: 'an unknown standby field', raw: { ...BASE, standby: { ...BASE.standby, hostname: 'x' } }, where: 'standby: ', key: 'hostname' },
    { name: 'an unknown deleteGuard field', raw: { ...BASE, sync: { deleteGuard: { percent: 50 } } }, where: 'sync.deleteGuard: ', key: 'percent' },
  ];
  for (const c of unknownCases) {
    test(`unknown fields are errors: ${c.name}`, () => {
      const err = configError(c.raw);
      assert.equal(err.code, 'STANDBY_ERR_CONFIG_INVALID');
      assert.match(err.message, new RegExp(`\\n  ${c.where.replace('.', '\\.')}unknown field\\(s\\) ${c.key} \\(check the spelling`));
    });
  }

  test('every bad field is listed, one per line, after a header naming the source', () => {
    const err = configError({ ...BASE, workspace: 'x', sync: { delayMs: -1, exclude: [1] }, logLevel: 'loud' });
    const [header, ...lines] = err.message.split('\n');
    assert.equal(header, 'invalid settings in agent.json:');
    assert.deepEqual(lines.map((l) => l.trim().split(':')[0]).sort(), ['logLevel', 'sync.delayMs', 'sync.exclude.0', 'workspace']);
  });

  test('regression: sync.delayMs above the default maxDelayMs does not report maxDelayMs as "got nothing"', () => {
    // maxDelayMs is not in the file, so its default (1000) is what conflicts: either it follows delayMs,
    // or the message names the value in effect, not "nothing"
    let config: Readonly<AgentConfig> | undefined;
    let message = '';
    try {
      config = validate({ ...BASE, sync: { delayMs: 2000 } });
    } catch (err) {
      assert.ok(err instanceof StandbyError);
      message = err.message;
    }
    if (config) assert.ok(config.sync.maxDelayMs >= 2000, `maxDelayMs ${config.sync.maxDelayMs} < delayMs 2000`);
    else {
      assert.doesNotMatch(message, /sync\.maxDelayMs: got nothing/, message);
      assert.match(message, /1000/, message);
    }
  });
});

describe('agent config leniency for values as flags deliver them', () => {
  test('a single string becomes a one-item list, "false" a boolean, a numeric host id a string', () => {
    const c = validateSettings(agentConfigSchema, { ...BASE, hostId: 5, standby: { ...BASE.standby, sshOptions: '-v' }, sync: { exclude: '*.log', defaultExcludes: 'false' } }, 'flags');
    assert.equal(c.hostId, '5');
    assert.deepEqual(c.standby!.sshOptions, ['-v']);
    assert.deepEqual(c.sync.exclude, ['*.log']);
    assert.equal(c.sync.defaultExcludes, false);
  });
});

describe('agent config without a standby section (a standby host restoring a new GPU under a proxy\'s grants)', () => {
  const PROXY = { url: 'wss://proxy.example/_standby/agent', token: 'agent-token-cpu-1' };

  test('standby is optional when proxy is set; identityFile is optional and defaults to none', () => {
    const c = validate({ hostId: 'cpu-1', proxy: PROXY });
    assert.equal(c.standby, undefined);
    assert.equal(c.identityFile, undefined);
    assert.equal(writeIdentityOf(c), undefined, "without either key, ssh's own choice");
  });

  test('identityFile is the key written to targets with; standby.identityFile is the fallback', () => {
    assert.equal(writeIdentityOf(validate({ hostId: 'cpu-1', proxy: PROXY, identityFile: '/etc/standby/id_ed25519' })), '/etc/standby/id_ed25519');
    assert.equal(writeIdentityOf(validate({ ...BASE, standby: { ...BASE.standby, identityFile: '/etc/standby/standby_key' } })), '/etc/standby/standby_key');
    assert.equal(writeIdentityOf(validate({ ...BASE, identityFile: '/k/top', standby: { ...BASE.standby, identityFile: '/k/standby' } })), '/k/top');
  });

  test('syncRoots: root 0 goes where it is told (a target\'s path), sync.paths keep their remote paths; without a standby and a path it is an error', () => {
    const c = validate({ hostId: 'cpu-1', proxy: PROXY, workspace: '/srv/ws', sync: { paths: [{ local: '/home/u/User', remote: '/standby/User' }] } });
    assert.deepEqual(syncRoots(c, '/workspace'), [{ local: '/srv/ws', remote: '/workspace' }, { local: '/home/u/User', remote: '/standby/User' }]);
    assert.deepEqual(localRoots(c), [{ local: '/srv/ws' }, { local: '/home/u/User' }]);
    assert.throws(() => syncRoots(c), (err: unknown) => err instanceof StandbyError && /no standby section/.test(err.message));
    assert.deepEqual(syncRoots(validate(BASE))[0], { local: '/workspace', remote: '/standby/workspace' });
  });
});

describe('agent config: freeze (what a switch back stops; agent/freeze.ts)', () => {
  test('absent by default; maxMs defaults to 30000; a pid file as a flag is a one-item list', () => {
    assert.equal(validate(BASE).freeze, undefined);
    assert.deepEqual(validate({ ...BASE, freeze: { cgroup: '/sys/fs/cgroup/system.slice/code-server@dev.service' } }).freeze, { cgroup: '/sys/fs/cgroup/system.slice/code-server@dev.service', pidFiles: [], maxMs: 30_000 });
    assert.deepEqual(validate({ ...BASE, freeze: { pidFiles: '/run/code-server.pid' } }).freeze, { pidFiles: ['/run/code-server.pid'], maxMs: 30_000 });
  });

  for (const [name, freeze, expected] of [
    ['nothing to freeze', {}, /freeze\.cgroup: .*freeze\.cgroup or freeze\.pidFiles/],
    ['a relative pid file', { pidFiles: ['code-server.pid'] }, /freeze\.pidFiles\.0: .*an absolute path/],
    ['a relative cgroup', { cgroup: 'code-server.service' }, /freeze\.cgroup: .*an absolute path/],
    ['maxMs too small', { pidFiles: ['/run/a.pid'], maxMs: 10 }, /freeze\.maxMs: at least 100 ms/],
    ['an unknown key', { pidFiles: ['/run/a.pid'], signal: 'SIGSTOP' }, /signal/],
  ] as const) {
    test(`refused: ${name}`, () => {
      assert.throws(() => validate({ ...BASE, freeze }), (err: unknown) => err instanceof StandbyError && expected.test(err.message));
    });
  }
});

test('resume: a command, or a file inside the workspace (relative, no ..); a timeout of 0 or more seconds', () => {
  assert.deepEqual(validate({ ...BASE, resume: { command: 'python train.py --resume latest', timeoutS: 3600, logFile: '/var/log/standby-resume.log' } }).resume, { command: 'python train.py --resume latest', file: '.standby/resume', timeoutS: 3600, logFile: '/var/log/standby-resume.log' });
  assert.equal(validate({ ...BASE, resume: { file: 'scripts/resume.sh' } }).resume.file, 'scripts/resume.sh');
  for (const [resume, words] of [
    [{ file: '/etc/passwd' }, /resume\.file.*inside the workspace/],
    [{ file: '../outside' }, /resume\.file.*inside the workspace/],
    [{ file: 'a/../../b' }, /resume\.file.*inside the workspace/],
    [{ command: '' }, /resume\.command.*non-empty/],
    [{ timeoutS: -1 }, /resume\.timeoutS.*0 or more/],
    [{ logFile: 'relative.log' }, /resume\.logFile.*absolute path/],
    [{ commands: 'x' }, /resume/],
  ] as const) assert.match(configError({ ...BASE, resume }).message, words, JSON.stringify(resume));
});

test("editor: absent, nothing of code-server's is synced; present, code-server's own folders by default, the same on the other side; two roots after sync.paths, the User one limited to what is safe", () => {
  assert.equal(validate(BASE).editor, undefined);
  assert.equal(syncRoots(validate(BASE)).length, 1);
  const home = process.env['HOME'];
  const xdg = process.env['XDG_DATA_HOME'];
  try {
    process.env['HOME'] = '/home/dev';
    delete process.env['XDG_DATA_HOME'];
    const e = validate({ ...BASE, editor: {} }).editor;
    assert.deepEqual(e, { userDataDir: '/home/dev/.local/share/code-server', extensionsDir: '/home/dev/.local/share/code-server/extensions', remoteUserDataDir: '/home/dev/.local/share/code-server', remoteExtensionsDir: '/home/dev/.local/share/code-server/extensions' });
    process.env['XDG_DATA_HOME'] = '/data/xdg';
    assert.equal(validate({ ...BASE, editor: {} }).editor?.userDataDir, '/data/xdg/code-server', "code-server's own rule");
  } finally {
    if (home === undefined) delete process.env['HOME'];
    else process.env['HOME'] = home;
    if (xdg === undefined) delete process.env['XDG_DATA_HOME'];
    else process.env['XDG_DATA_HOME'] = xdg;
  }
  const c = validate({ ...BASE, sync: { paths: [{ local: '/data', remote: '/standby/data' }] }, editor: { userDataDir: '/u', extensionsDir: '/x', remoteUserDataDir: '/ru' } });
  assert.deepEqual(syncRoots(c), [
    { local: '/workspace', remote: '/standby/workspace' },
    { local: '/data', remote: '/standby/data' },
    { local: '/u/User', remote: '/ru/User', include: ['settings.json', 'keybindings.json', 'tasks.json', 'snippets/', 'Backups/'] },
    { local: '/x', remote: '/ru/extensions' },
  ]);
  assert.deepEqual(localRoots(c).map((r) => r.local), ['/workspace', '/data', '/u/User', '/x']);
  // a restore: the standby's agent pushes to a granted target's path; the editor's roots keep their remote paths there
  assert.deepEqual(syncRoots(c, '/new-gpu/workspace').slice(2).map((r) => r.remote), ['/ru/User', '/ru/extensions']);
  assert.throws(() => validate({ ...BASE, editor: { userDataDir: 'relative' } }), /editor\.userDataDir/);
  assert.throws(() => validate({ ...BASE, editor: { stateDb: true } }), StandbyError);
});
