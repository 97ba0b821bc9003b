// overridesFrom: yargs' parsed argv -> settings overrides. Checked on argv
// from a real yargs parse, as `standby agent` sees it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import yargs from 'yargs';
import { agentConfigSchema } from '../../../config/agent.ts';
import { overridesFrom } from '../../../cli/support/config-flags.ts';
import { loadSettings } from '../../../config/file.ts';

function parse(args: string[]): Record<string, unknown> {
  return yargs(args).option('config', { type: 'string' }).option('json', { type: 'boolean' }).help(false).version(false).parseSync() as Record<string, unknown>;
}

describe('overridesFrom', () => {
  const cases: { name: string; args: string[]; commandFlags?: string[]; want: Record<string, unknown> }[] = [
    { name: 'no flags, no overrides', args: ['agent'], want: {} },
    { name: '--config is the command\'s own, not a setting', args: ['agent', '--config', 'a.json'], want: {} },
    { name: 'a dotted flag becomes a nested override (number parsed)', args: ['agent', '--sync.delayMs', '1000'], want: { sync: { delayMs: 1000 } } },
    { name: 'a top-level string', args: ['agent', '--workspace', '/data'], want: { workspace: '/data' } },
    { name: 'several flags under one section merge', args: ['agent', '--standby.host', 'h', '--standby.port', '2200'], want: { standby: { host: 'h', port: 2200 } } },
    { name: 'a repeated flag is a list', args: ['agent', '--sync.exclude', '*.log', '--sync.exclude', 'x/'], want: { sync: { exclude: ['*.log', 'x/'] } } },
    { name: 'a kebab-case flag keeps only its camelCase twin', args: ['agent', '--log-level', 'debug'], want: { logLevel: 'debug' } },
    { name: 'the command\'s own flags are left out', args: ['verify', '--json', '--workspace', '/w'], commandFlags: ['json'], want: { workspace: '/w' } },
    { name: 'a boolean setting turned off with --no-', args: ['agent', '--no-sync.defaultExcludes'], want: { sync: { defaultExcludes: false } } },
    { name: 'a boolean setting turned on bare', args: ['agent', '--sync.defaultExcludes'], want: { sync: { defaultExcludes: true } } },
  ];
  for (const c of cases) test(c.name, () => assert.deepEqual(overridesFrom(parse(c.args), c.commandFlags), c.want));

  test('yargs bookkeeping (_ and $0) never becomes a setting', () => {
    const out = overridesFrom({ _: ['agent'], $0: 'standby', help: false, version: false, config: 'x' });
    assert.deepEqual(out, {});
  });

  test('--sync.delayMs 1000 overrides the file through loadSettings', () => {
    const overrides = overridesFrom(parse(['agent', '--sync.delayMs', '1000', '--hostId', 'gpu-2', '--standby.host', 'h', '--standby.path', '/s']));
    const config = loadSettings(agentConfigSchema, undefined, overrides);
    assert.equal(config.sync.delayMs, 1000);
    assert.equal(config.hostId, 'gpu-2');
  });
});
