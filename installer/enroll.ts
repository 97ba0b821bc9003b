// `standby install agent --token sbi_...`: the token is an invitation, not
// the agent's token. The installer makes (or keeps) the host's ssh key and
// trades the invitation at the proxy for the host's own agent token; the
// proxy puts the public key on the standby first. The private key never
// leaves the host; the invitation is used up. The install then goes on with
// what the proxy answered (host id, standby address, its host key), flags
// given on the command line winning.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { StandbyError } from '../core/errors.ts';
import { INVITE_PREFIX, type EnrollAnswer, type Problem } from '../protocol/admin-api.ts';
import { ensureAgentKey } from './keys.ts';
import type { Layout } from './layout.ts';
import { proxyHttpUrl, type RoleFlags } from './role-config.ts';

function isInvitation(token: string | undefined): token is string {
  return token !== undefined && token.startsWith(INVITE_PREFIX);
}

async function askProxy(url: string, invitation: string, publicKey: string): Promise<EnrollAnswer> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${invitation}`, 'content-type': 'application/json' },
      body: JSON.stringify({ publicKey, hostname: hostname() }),
      signal: AbortSignal.timeout(60_000),
    });
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', `cannot reach the proxy at ${url} to enroll this host: ${(err as Error).message} (is it up, and is --proxy its URL?)`, { url }, { cause: err });
  }
  const body = (await res.json().catch(() => null)) as (EnrollAnswer & Partial<Problem>) | null;
  if (!res.ok || !body || typeof body.agentToken !== 'string') {
    const said = body?.error?.message ?? `HTTP ${res.status}`;
    throw new StandbyError(res.status === 401 ? 'STANDBY_ERR_UNAUTHORIZED' : 'STANDBY_ERR_INSTALL_FAILED', `the proxy refused to enroll this host: ${said}. Nothing was installed`, { url, status: res.status });
  }
  return body;
}

/** Adds the standby's host key lines to the agent's known_hosts (kept lines stay). */
function addKnownHosts(file: string, lines: readonly string[]): number {
  if (lines.length === 0) return 0;
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  const have = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '') : [];
  const added = lines.filter((l) => !have.includes(l));
  if (added.length) writeFileSync(file, [...have, ...added].join('\n') + '\n', { mode: 0o644 });
  return added.length;
}

/**
 * When `flags.token` is an invitation: enrolls at the proxy and returns the flags with the issued
 * agent token and the proxy's answers filled in. Any other token is returned as it is.
 */
export async function enrollIfInvited<T extends RoleFlags>(flags: T, layout: Layout, say: (line: string) => void): Promise<T> {
  const token = flags.token ?? process.env['STANDBY_TOKEN'];
  if (!isInvitation(token)) return flags;
  if (flags.proxy === undefined) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'an invitation token needs --proxy https://PROXY (install.sh passes it)', { flag: '--proxy' });
  const key = ensureAgentKey(layout.keyDir);
  say(`${key.created ? 'made' : 'kept'} the agent's ssh key ${key.identityFile}`);
  const url = proxyHttpUrl(flags.proxy, '/_standby/enroll');
  const answer = await askProxy(url, token, key.publicKey);
  say(`enrolled at ${url} as ${answer.hostId}: this host's own agent token issued, its key authorized on the standby ${answer.standby.user}@${answer.standby.host}:${answer.standby.port}`);
  if (flags.hostId !== undefined && flags.hostId !== answer.hostId) say(`note: --host-id ${flags.hostId} ignored: the invitation was for ${answer.hostId}, and the token is that host's`);
  const known = addKnownHosts(join(layout.etcDir, 'known_hosts'), answer.knownHosts);
  if (known) say(`added the standby's host key to ${join(layout.etcDir, 'known_hosts')} (from the proxy)`);
  return {
    ...flags,
    token: answer.agentToken,
    hostId: answer.hostId,
    standbyHost: flags.standbyHost ?? answer.standby.host,
    standbyPort: flags.standbyPort ?? answer.standby.port,
    standbyUser: flags.standbyUser ?? answer.standby.user,
    standbyPath: flags.standbyPath ?? answer.standby.path ?? undefined,
    standbyEditorDataDir: flags.standbyEditorDataDir ?? answer.standby.editor?.userDataDir,
    standbyEditorExtensionsDir: flags.standbyEditorExtensionsDir ?? answer.standby.editor?.extensionsDir,
  };
}
