// `standby verify`: prove the standby holds what this host holds (checksums); list every difference.
import { existsSync } from 'node:fs';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { agentConfigSchema, type AgentConfig } from '../config/agent.ts';
import { verify } from '../agent/verify.ts';
import { loadSettings } from '../config/file.ts';
import { StandbyError } from '../core/errors.ts';
import { configFile, layoutOf } from '../installer/layout.ts';
import { overridesFrom } from './support/config-flags.ts';
import { callProxy, problemOf, proxyEndpoint } from './support/proxy-endpoint.ts';
import { runCommand } from './support/run-command.ts';

/** Where `standby install agent` writes the agent's settings: read when --config is not given. */
const INSTALLED_AGENT_CONFIG = configFile(layoutOf('/'), 'agent')!;

/** --config, else the installed agent.json; flags alone only when some are given. */
export function verifyConfigFile(given: string | undefined, overrides: Record<string, unknown>, installed = INSTALLED_AGENT_CONFIG): string | undefined {
  if (given) return given;
  if (existsSync(installed)) return installed;
  if (Object.keys(overrides).length > 0) return undefined;
  throw new StandbyError('STANDBY_ERR_CONFIG_UNREADABLE', `no agent settings: ${installed} does not exist (standby install agent writes it). Pass the agent's settings file with --config FILE`, { file: installed });
}

/**
 * The epoch the proxy granted this host, from the running agent's status
 * endpoint: the receiver refuses a writer (verify included) older than the
 * standby's epoch, so a primary at epoch 3 must say 3. Undefined when no
 * agent answers or it is not primary: the receiver then judges epoch 0, and a
 * fenced host hears that it was fenced.
 */
async function grantedEpoch(config: AgentConfig): Promise<number | undefined> {
  if (!config.proxy) return undefined;
  const host = config.status.host.includes(':') ? `[${config.status.host}]` : config.status.host;
  try {
    const res = await fetch(`http://${host}:${config.status.port}/status`, { signal: AbortSignal.timeout(2_000) });
    const body = (await res.json()) as { epoch?: unknown };
    return typeof body.epoch === 'number' ? body.epoch : undefined;
  } catch {
    return undefined; // no agent running here: verify as before
  }
}

interface Args {
  config?: string;
  json?: boolean;
  fromProxy?: string;
  adminToken?: string;
}

interface Report {
  match: boolean;
  total: number;
  differences: readonly { root: string; path: string; kind: string }[];
}

/** The proxy asks the GPU's agent (over its socket) to compare and report: for the admin, away from the GPU. */
async function verifyFromProxy(url: string, token: string | undefined): Promise<Report & { hostId: string }> {
  const endpoint = proxyEndpoint({ proxy: url, ...(token ? { token } : {}) });
  const { status, body } = await callProxy(endpoint, 'verify', 'POST', undefined, 310_000);
  const b = body as { hostId?: string; ok?: boolean; match?: boolean; total?: number; differences?: Report['differences']; error?: string | null } | null;
  if (status === 503) throw new StandbyError('STANDBY_ERR_AGENT_UNREACHABLE', problemOf(body, status), { url });
  if (status !== 200 || !b) throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', `the proxy at ${endpoint.url} answered ${status} to verify: ${problemOf(body, status)}`, { url });
  if (!b.ok) throw new StandbyError('STANDBY_ERR_VERIFY_DIFFERS', `the agent of ${b.hostId ?? '?'} could not compare: ${b.error ?? 'no reason given'}`, { hostId: b.hostId });
  return { hostId: b.hostId ?? '?', match: b.match === true, total: b.total ?? 0, differences: b.differences ?? [] };
}

export const verifyCommand: CommandModule<object, Args> = {
  command: 'verify',
  describe: 'compare the workspace and the standby copy by checksum; exit 0 only when they match',
  builder: (y: Argv) =>
    y
      .option('config', { type: 'string', describe: `the agent settings file (default ${INSTALLED_AGENT_CONFIG}, where standby install agent writes it)` })
      .option('json', { type: 'boolean', describe: 'print JSON' })
      .option('from-proxy', { type: 'string', describe: "ask this proxy (URL) to have the GPU's agent compare and report, instead of comparing from this host" })
      .option('admin-token', { type: 'string', describe: "the proxy's admin token, with --from-proxy (default $STANDBY_ADMIN_TOKEN)" })
      .example('$0 verify', 'on the GPU: reads /etc/standby/agent.json')
      .example('$0 verify --from-proxy https://proxy.example.com --admin-token TOKEN', 'anywhere: the GPU\'s agent compares') as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      let report: Report;
      if (argv.fromProxy) {
        report = await verifyFromProxy(argv.fromProxy, argv.adminToken);
      } else {
        const overrides = overridesFrom(argv, ['json', 'fromProxy', 'adminToken']);
        const config = loadSettings(agentConfigSchema, verifyConfigFile(argv.config, overrides), overrides);
        const diffs = await verify(config, await grantedEpoch(config));
        report = { match: diffs.length === 0, total: diffs.length, differences: diffs };
      }
      if (argv.json) process.stdout.write(JSON.stringify({ match: report.match, differences: report.differences }, null, 2) + '\n');
      else if (report.match) process.stdout.write('standby matches: no differences\n');
      else {
        for (const d of report.differences) process.stdout.write(`${d.kind.padEnd(18)} ${d.root}/${d.path}\n`);
        process.stdout.write(`${report.total} difference(s)${report.total > report.differences.length ? ` (the first ${report.differences.length} listed)` : ''}\n`);
      }
      return report.match ? 0 : 1;
    }),
};
