// config-file.ts: reading the --config file, merging flags over it, and the
// error format, with the agent's schema as the daemon schema under test.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { agentConfigSchema } from '../../config/agent.ts';
import { loadSettings, mergeSettings, readConfigFile, requirePrivateFile, validateSettings } from '../../config/file.ts';
import { StandbyError, type ErrorCode } from '../../core/errors.ts';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'standby-config-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
}

function thrown(fn: () => unknown): StandbyError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof StandbyError, `not a StandbyError: ${String(err)}`);
    return err;
  }
  assert.fail('did not throw');
}

const GOOD = { hostId: 'gpu-1', standby: { host: 'h', path: '/standby/workspace' }, sync: { delayMs: 250, maxDelayMs: 1000, exclude: ['*.log'] } };

describe('readConfigFile', () => {
  test('reads a JSON object', () => {
    assert.deepEqual(readConfigFile(file('good.json', JSON.stringify(GOOD))), GOOD);
  });

  const cases: { name: string; path: () => string; code: ErrorCode; message: RegExp }[] = [
    { name: 'a missing file is unreadable, with the path and ENOENT', path: () => join(dir, 'nope.json'), code: 'STANDBY_ERR_CONFIG_UNREADABLE', message: /cannot read config file .*nope\.json: ENOENT; pass an existing JSON file with --config/ },
    { name: 'a folder is unreadable (EISDIR)', path: () => dir, code: 'STANDBY_ERR_CONFIG_UNREADABLE', message: /cannot read config file .*: EISDIR/ },
    { name: 'invalid JSON names the file and the parse error', path: () => file('bad.json', '{ "hostId": "gpu-1", }'), code: 'STANDBY_ERR_CONFIG_INVALID', message: /config file .*bad\.json is not valid JSON: .+/ },
    { name: 'an empty file is not valid JSON', path: () => file('empty.json', ''), code: 'STANDBY_ERR_CONFIG_INVALID', message: /is not valid JSON/ },
    { name: 'a JSON array is not an object', path: () => file('array.json', '[1, 2]'), code: 'STANDBY_ERR_CONFIG_INVALID', message: /must hold a JSON object, got an array/ },
    { name: 'a JSON string is not an object', path: () => file('string.json', '"gpu-1"'), code: 'STANDBY_ERR_CONFIG_INVALID', message: /must hold a JSON object, got string/ },
    { name: 'a JSON number is not an object', path: () => file('number.json', '42'), code: 'STANDBY_ERR_CONFIG_INVALID', message: /must hold a JSON object, got number/ },
    { name: 'regression: a JSON null is reported as null, not as "object"', path: () => file('null.json', 'null'), code: 'STANDBY_ERR_CONFIG_INVALID', message: /must hold a JSON object, got null/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = c.path();
      const err = thrown(() => readConfigFile(p));
      assert.equal(err.code, c.code);
      assert.equal(err.exitCode, 78);
      assert.match(err.message, c.message);
      assert.equal(err.context['file'], p);
    });
  }
});

describe('mergeSettings', () => {
  const cases: { name: string; base: Record<string, unknown>; over: Record<string, unknown>; want: Record<string, unknown> }[] = [
    { name: 'no overrides keeps the base', base: { a: 1 }, over: {}, want: { a: 1 } },
    { name: 'a scalar replaces', base: { a: 1, b: 2 }, over: { a: 3 }, want: { a: 3, b: 2 } },
    { name: 'nested objects merge field by field', base: { sync: { delayMs: 250, maxDelayMs: 1000 } }, over: { sync: { delayMs: 1000 } }, want: { sync: { delayMs: 1000, maxDelayMs: 1000 } } },
    { name: 'arrays replace, they do not append', base: { sync: { exclude: ['a'] } }, over: { sync: { exclude: ['b', 'c'] } }, want: { sync: { exclude: ['b', 'c'] } } },
    { name: 'undefined in the overrides is skipped', base: { a: 1 }, over: { a: undefined }, want: { a: 1 } },
    { name: 'a new field is added', base: {}, over: { workspace: '/data' }, want: { workspace: '/data' } },
    { name: 'an object replaces a scalar', base: { sync: 5 }, over: { sync: { delayMs: 1 } }, want: { sync: { delayMs: 1 } } },
    { name: 'a scalar replaces an object', base: { sync: { delayMs: 1 } }, over: { sync: 'x' }, want: { sync: 'x' } },
    { name: 'null replaces (it is a value)', base: { a: { b: 1 } }, over: { a: null }, want: { a: null } },
    { name: 'three levels deep', base: { sync: { deleteGuard: { fraction: 0.5, minFiles: 50 } } }, over: { sync: { deleteGuard: { minFiles: 10 } } }, want: { sync: { deleteGuard: { fraction: 0.5, minFiles: 10 } } } },
  ];
  for (const c of cases) test(c.name, () => assert.deepEqual(mergeSettings(c.base, c.over), c.want));

  test('neither input is changed', () => {
    const base = { sync: { delayMs: 250, exclude: ['a'] } };
    const over = { sync: { delayMs: 1000 } };
    const baseCopy = structuredClone(base);
    const overCopy = structuredClone(over);
    mergeSettings(base, over);
    assert.deepEqual(base, baseCopy);
    assert.deepEqual(over, overCopy);
  });
});

describe('validateSettings and loadSettings', () => {
  test('file + flags: flags override the file, the rest of the file stays', () => {
    const p = file('agent.json', JSON.stringify(GOOD));
    const config = loadSettings(agentConfigSchema, p, { sync: { delayMs: 1000 }, workspace: '/data' });
    assert.equal(config.sync.delayMs, 1000);
    assert.equal(config.sync.maxDelayMs, 1000);
    assert.deepEqual(config.sync.exclude, ['*.log']);
    assert.equal(config.workspace, '/data');
    assert.equal(config.hostId, 'gpu-1');
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.sync));
  });

  test('flags alone, without a file', () => {
    const config = loadSettings(agentConfigSchema, undefined, { hostId: 'h', standby: { host: 'x', path: '/p' } });
    assert.equal(config.hostId, 'h');
  });

  test('a bad flag is named with its source "(and flags)"', () => {
    const p = file('agent2.json', JSON.stringify(GOOD));
    const err = thrown(() => loadSettings(agentConfigSchema, p, { sync: { delayMs: -1 } }));
    assert.equal(err.code, 'STANDBY_ERR_CONFIG_INVALID');
    assert.match(err.message, new RegExp(`^invalid settings in ${p.replaceAll('.', '\\.')} \\(and flags\\):\\n  sync\\.delayMs: got -1, expected sync\\.delayMs: at least 0 ms$`));
  });

  test('flags only: the source is "flags"', () => {
    const err = thrown(() => loadSettings(agentConfigSchema, undefined, {}));
    assert.match(err.message, /^invalid settings in flags:\n/);
  });

  test('a missing --config file is unreadable before anything is validated', () => {
    const err = thrown(() => loadSettings(agentConfigSchema, join(dir, 'missing.json'), {}));
    assert.equal(err.code, 'STANDBY_ERR_CONFIG_UNREADABLE');
  });

  test('a long bad value is shortened in the message', () => {
    const long = `relative/${'x'.repeat(300)}`;
    const err = thrown(() => validateSettings(agentConfigSchema, { ...GOOD, workspace: long }, 'x.json'));
    const line = err.message.split('\n').find((l) => l.includes('workspace:'))!;
    assert.match(line, /got "relative\/x+\.\.\., expected an absolute path/);
    assert.ok(line.length < 160, `line is ${line.length} characters`);
  });

  test('the error keeps the source and the failing fields for logs', () => {
    const err = thrown(() => validateSettings(agentConfigSchema, { ...GOOD, workspace: 'x', logLevel: 1 }, 'src.json'));
    assert.equal(err.context['source'], 'src.json');
    assert.deepEqual((err.context['fields'] as string[]).sort(), ['logLevel', 'workspace']);
  });
});

describe('secrets files: refused when group or others may read or write them', () => {
  const cases: { name: string; mode: number; refused?: RegExp }[] = [
    { name: '0600 is accepted', mode: 0o600 },
    { name: '0400 is accepted', mode: 0o400 },
    { name: '0700 is accepted (owner bits only)', mode: 0o700 },
    { name: '0644 (the umask default) is refused', mode: 0o644, refused: /is mode 0644: group or others can read it\. Nothing was started; run: chmod 600 / },
    { name: '0640 (group may read) is refused', mode: 0o640, refused: /is mode 0640: group or others can read it/ },
    { name: '0604 (others may read) is refused', mode: 0o604, refused: /is mode 0604: group or others can read it/ },
    { name: '0620 (group may write) is refused', mode: 0o620, refused: /is mode 0620: group or others can write it/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = file(`secret-${c.mode.toString(8)}.json`, JSON.stringify(GOOD));
      chmodSync(p, c.mode);
      if (!c.refused) {
        assert.equal(loadSettings(agentConfigSchema, p, {}).hostId, 'gpu-1');
        return;
      }
      const err = thrown(() => loadSettings(agentConfigSchema, p, {}));
      assert.equal(err.code, 'STANDBY_ERR_SECRETS_EXPOSED');
      assert.match(err.message, c.refused);
      assert.ok(err.message.startsWith(`${p} holds tokens`), err.message);
      assert.ok(err.message.endsWith(`chmod 600 ${p}`), err.message);
    });
  }

  test('a key file names what it holds; a missing one is left to whoever opens it', () => {
    const key = file('id_ed25519', 'not really a key\n');
    chmodSync(key, 0o644);
    const err = thrown(() => requirePrivateFile(key, "the proxy's fencing key (standby.ssh.identityFile)"));
    assert.match(err.message, /id_ed25519 holds the proxy's fencing key \(standby\.ssh\.identityFile\) and is mode 0644/);
    requirePrivateFile(join(dir, 'no-such-key'), 'a key');
  });
});
