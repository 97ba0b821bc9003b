// `standby settings`: the settings that can change while everything runs
// (GET/PATCH /_standby/api/v1/settings; docs/configuration.md, "Settings
// changed live"): shown with where each value comes from and when a change
// takes effect; `--set path=value` changes them (the proxy validates, keeps
// the change across restarts and applies it), `--set path=null` goes back to
// proxy.json's value.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { StandbyError } from '../core/errors.ts';
import { LIVE_SETTING_PATHS, type LiveSettingsAnswer } from '../protocol/admin-api.ts';
import { callProxy, problemOf, proxyEndpoint, proxyOptions, type ProxyArgs } from './support/proxy-endpoint.ts';
import { runCommand } from './support/run-command.ts';

interface Args extends ProxyArgs {
  set?: string[];
  json?: boolean;
}

/** `path=value` as a PATCH body: the value as JSON when it reads as JSON (numbers, true, null, ["a"]), else as a string. */
export function patchOf(sets: readonly string[]): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const set of sets) {
    const eq = set.indexOf('=');
    if (eq <= 0) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `--set ${JSON.stringify(set)}: expected path=value, e.g. --set agentSync.delayMs=1000 (the paths: ${LIVE_SETTING_PATHS.join(', ')})`, {});
    const path = set.slice(0, eq);
    const text = set.slice(eq + 1);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = text;
    }
    const keys = path.split('.');
    let cur = body;
    for (const key of keys.slice(0, -1)) {
      const next = cur[key];
      cur = (typeof next === 'object' && next !== null ? next : (cur[key] = {})) as Record<string, unknown>;
    }
    cur[keys.at(-1)!] = value;
  }
  return body;
}

function valueAt(root: unknown, path: string): unknown {
  let cur = root;
  for (const key of path.split('.')) cur = typeof cur === 'object' && cur !== null ? (cur as Record<string, unknown>)[key] : undefined;
  return cur;
}

function human(a: LiveSettingsAnswer): string {
  const rows = LIVE_SETTING_PATHS.filter((p) => a.settings.recovery !== null || !p.startsWith('recovery.')).map((p) => {
    const v = valueAt(a.settings, p);
    return [p, v === null ? "(the agent's own)" : JSON.stringify(v), a.overridden.includes(p) ? 'live' : 'proxy.json', a.effect[p]];
  });
  const head = ['setting', 'value', 'from', 'takes effect'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const out = [line(head), ...rows.map(line)];
  if (a.settings.recovery === null) out.push('recovery    not configured (proxy.json has no recovery section)');
  out.push(a.agent ? `agent       ${a.agent.hostId} applies delayMs ${a.agent.applied.delayMs}, maxDelayMs ${a.agent.applied.maxDelayMs}, exclude ${JSON.stringify(a.agent.applied.exclude)}` : 'agent       none connected (or too old to report its settings)');
  return out.join('\n') + '\n';
}

export const settingsCommand: CommandModule<object, Args> = {
  command: 'settings',
  describe: 'the settings that change without a restart: show them, or change them with --set path=value',
  builder: (y: Argv) =>
    proxyOptions(y)
      .option('set', { type: 'string', array: true, describe: 'path=value (JSON, or a plain string); null goes back to proxy.json\'s value' })
      .option('json', { type: 'boolean', describe: "print the proxy's answer as JSON" })
      .example('$0 settings', 'show them')
      .example('$0 settings --set agentSync.delayMs=1000 --set autoFailover=false', 'change two')
      .example('$0 settings --set agentSync.delayMs=null', "back to proxy.json's") as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      const endpoint = proxyEndpoint(argv);
      const sets = argv.set ?? [];
      const r = sets.length > 0 ? await callProxy(endpoint, 'settings', 'PATCH', patchOf(sets)) : await callProxy(endpoint, 'settings');
      if (r.status === 400) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', problemOf(r.body, r.status));
      if (r.status !== 200) throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', `the proxy answered ${r.status}: ${problemOf(r.body, r.status, JSON.stringify(r.body))}`);
      const answer = r.body as LiveSettingsAnswer;
      process.stdout.write(argv.json ? JSON.stringify(answer, null, 2) + '\n' : human(answer));
      return 0;
    }),
};
