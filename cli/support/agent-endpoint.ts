// Finds and calls a running agent's loopback status endpoint, for the
// commands that talk to the daemon (status --agent, sync --confirm-deletes).
import type { Argv } from 'yargs';
import { agentConfigSchema } from '../../config/agent.ts';
import { loadSettings } from '../../config/file.ts';
import { StandbyError } from '../../core/errors.ts';

export interface EndpointArgs {
  config?: string;
  agentUrl?: string;
}

export function endpointOptions<T>(y: Argv<T>): Argv<T & EndpointArgs> {
  return y
    .option('config', { type: 'string', describe: 'the agent settings file, to find its status endpoint' })
    .option('agent-url', { type: 'string', describe: 'the agent status endpoint (default http://127.0.0.1:7611)' }) as Argv<T & EndpointArgs>;
}

export function agentUrl(args: EndpointArgs): string {
  if (args.agentUrl) return args.agentUrl.replace(/\/$/, '');
  if (args.config) {
    const { status } = loadSettings(agentConfigSchema, args.config, {});
    return `http://${status.host.includes(':') ? `[${status.host}]` : status.host}:${status.port}`;
  }
  return 'http://127.0.0.1:7611';
}

export async function callAgent(base: string, path: string, method: 'GET' | 'POST' = 'GET'): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { method, signal: AbortSignal.timeout(5000) });
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_AGENT_UNREACHABLE', `no agent answers at ${base}: is \`standby agent\` running? (pass --config or --agent-url to point at it)`, { url: base }, { cause: err });
  }
  if (!res.ok) throw new StandbyError('STANDBY_ERR_AGENT_UNREACHABLE', `agent at ${base} answered ${res.status} to ${method} ${path}`, { url: base });
  return res.json();
}
