// Finds and calls the proxy's admin API, for the commands that ask the proxy
// (status, failover): --proxy and --token, or the environment, or the proxy's
// own config file (its listen address and admin token).
import type { Argv } from 'yargs';
import { existsSync } from 'node:fs';
import { readConfigFile, requirePrivateFile } from '../../config/file.ts';
import { StandbyError } from '../../core/errors.ts';
import type { Problem } from '../../protocol/admin-api.ts';
import { configFile, layoutOf } from '../../installer/layout.ts';

export interface ProxyArgs {
  proxy?: string;
  token?: string;
  config?: string;
}

export interface ProxyEndpoint {
  url: string;
  token: string;
}

export function proxyOptions<T>(y: Argv<T>): Argv<T & ProxyArgs> {
  return y
    .option('proxy', { type: 'string', describe: 'the proxy URL (default $STANDBY_PROXY_URL, or from --config proxy.json)' })
    .option('token', { type: 'string', describe: 'the admin token (default $STANDBY_ADMIN_TOKEN, or from --config proxy.json)' })
    .option('config', { type: 'string', describe: "the proxy's proxy.json (its address and admin token; default /etc/standby/proxy.json when there)" }) as Argv<T & ProxyArgs>;
}

/** Where `standby install proxy` writes the proxy's config: read when nothing else says which proxy. */
const INSTALLED_PROXY_CONFIG = configFile(layoutOf('/'), 'proxy')!;

/** The message of the API's problem answer ({error: {message}}), or `fallback`. */
export function problemOf(body: unknown, status: number, fallback = `the proxy answered ${status}`): string {
  return (body as Partial<Problem> | null)?.error?.message ?? fallback;
}

export function proxyEndpoint(args: ProxyArgs): ProxyEndpoint {
  let url = args.proxy ?? process.env.STANDBY_PROXY_URL;
  let token = args.token ?? process.env.STANDBY_ADMIN_TOKEN;
  const config = args.config ?? (!url && !token && existsSync(INSTALLED_PROXY_CONFIG) ? INSTALLED_PROXY_CONFIG : undefined);
  if ((!url || !token) && config) {
    requirePrivateFile(config, 'the admin token');
    const settings = readConfigFile(config) as { listen?: { host?: string; port?: number }; adminToken?: string; tls?: unknown };
    if (!url && settings.listen) {
      const host = !settings.listen.host || settings.listen.host === '0.0.0.0' || settings.listen.host === '::' ? '127.0.0.1' : settings.listen.host;
      url = `${settings.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${settings.listen.port ?? 8888}`;
    }
    token ??= settings.adminToken;
  }
  if (!url) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'which proxy? pass --proxy URL, set STANDBY_PROXY_URL, or pass --config with the proxy\'s proxy.json (on the proxy machine /etc/standby/proxy.json is read by default)');
  if (!token) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'no admin token: pass --token, set STANDBY_ADMIN_TOKEN, or pass --config with the proxy\'s proxy.json');
  return { url: url.replace(/\/$/, ''), token };
}

export async function callProxy(endpoint: ProxyEndpoint, name: string, method: 'GET' | 'POST' | 'PATCH' = 'GET', body?: unknown, timeoutMs = 10_000): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetch(`${endpoint.url}/_standby/api/v1/${name}`, {
      method,
      headers: { authorization: `Bearer ${endpoint.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', `no proxy answers at ${endpoint.url}: is \`standby proxy\` running there? (${(err as Error).message})`, { url: endpoint.url }, { cause: err });
  }
  const answer: unknown = await res.json().catch(() => null);
  if (res.status === 401) throw new StandbyError('STANDBY_ERR_UNAUTHORIZED', `the proxy at ${endpoint.url} refused the admin token: use adminToken from its proxy.json`, { url: endpoint.url });
  return { status: res.status, body: answer };
}
