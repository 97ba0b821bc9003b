// `standby hosts`: the hosts the proxy issued credentials to (the admin API's
// /hosts), `hosts add ID` to invite one (it prints the install line with a
// one-time token), `hosts revoke ID` to take a host's token and key away,
// `hosts rotate ID` to issue a new token while the old one stays valid for a
// grace window.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { StandbyError } from '../core/errors.ts';
import type { HostView } from '../protocol/admin-api.ts';
import { callProxy, problemOf, proxyEndpoint, proxyOptions, type ProxyArgs } from './support/proxy-endpoint.ts';
import { runCommand } from './support/run-command.ts';

interface Args extends ProxyArgs {
  action?: string;
  id?: string;
  ttl: string;
  grace?: string;
  json?: boolean;
}

const out = (text: string) => process.stdout.write(text.endsWith('\n') ? text : text + '\n');

/** "90s", "30m", "1h", "2d" -> seconds */
function parseTtl(ttl: string, flag = '--ttl'): number {
  const m = /^(\d+)\s*([smhd])$/.exec(ttl.trim());
  if (!m) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `${flag} ${ttl}: expected a number and a unit, e.g. 30m, 1h or 2d`, { ttl });
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

function since(iso: string | null): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}

function hostLines(hosts: HostView[]): string[] {
  if (hosts.length === 0) return ['no hosts yet: invite a GPU with `standby hosts add ID`'];
  const lines = [['HOST', 'ROLE', 'STATE', 'TOKEN', 'KEY', 'CONNECTED', 'SINCE'].join('\t')];
  for (const h of hosts) {
    const state = h.state === 'invited' && h.inviteExpiresAt ? `invited (until ${h.inviteExpiresAt})` : h.state;
    const key = h.key ? h.key.fingerprint : '-';
    const conn = h.connected ? `yes${h.heartbeatAgeMs !== null ? ` (heartbeat ${(h.heartbeatAgeMs / 1000).toFixed(1)} s ago)` : ''}` : 'no';
    const when = h.state === 'revoked' ? since(h.revokedAt) : h.state === 'active' ? since(h.enrolledAt) : since(h.invitedAt);
    lines.push([h.id, h.role, state, h.source, key, conn, when].join('\t'));
    if (h.previousTokenValidUntil) lines.push(`\ttwo tokens valid: the new one, and the one before until ${h.previousTokenValidUntil}`);
    if (h.state === 'revoked') {
      lines.push(`\trevoked: ${h.revokedWhy ?? '?'}; key on the standby: ${h.keyRevoked ? 'removed' : `not confirmed removed${h.keyRevokeError ? ` (${h.keyRevokeError})` : ''}`}`);
    }
  }
  return lines;
}

export const hostsCommand: CommandModule<object, Args> = {
  command: 'hosts [action] [id]',
  describe: 'the hosts with credentials from the proxy; `hosts add ID` invites one (the standby\'s id: its download-only install line), `hosts rotate ID` issues a new token, `hosts revoke ID` revokes its token and key',
  builder: (y: Argv) =>
    proxyOptions(y)
      .positional('action', { type: 'string', choices: ['list', 'add', 'rotate', 'revoke'], describe: 'list (default), add, rotate or revoke' })
      .positional('id', { type: 'string', describe: 'the host id (add, rotate, revoke)' })
      .option('ttl', { type: 'string', default: '1h', describe: 'add: how long the invitation may be used (e.g. 30m, 1h, 2d; at most 7d)' })
      .option('grace', { type: 'string', describe: "rotate: how long the old token stays valid (e.g. 30m, 24h, 2d; default the proxy's auth.rotationGraceMs, 24 h)" })
      .option('json', { type: 'boolean', describe: 'print JSON for machines' })
      .example('$0 hosts add gpu-1', 'invite a GPU: prints the line to run on it (one use)')
      .example('$0 hosts', 'list hosts: state, key fingerprint, connection')
      .example('$0 hosts rotate gpu-1', 'a new agent token for gpu-1; the old one stays valid 24 h')
      .example('$0 hosts revoke gpu-1', "revoke a host's token and its key on the standby")
      .strict() as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) =>
    runCommand(async () => {
      const action = argv.action ?? 'list';
      const endpoint = proxyEndpoint(argv);
      if (action !== 'list' && !argv.id) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `standby hosts ${action} needs a host id, e.g. standby hosts ${action} gpu-1`, {});
      if (action === 'list') {
        const { status, body } = await callProxy(endpoint, 'hosts');
        if (status !== 200) throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', problemOf(body, status), { status });
        out(argv.json ? JSON.stringify(body, null, 2) : hostLines((body as { hosts: HostView[] }).hosts).join('\n'));
        return 0;
      }
      if (action === 'add') {
        const { status, body } = await callProxy(endpoint, 'hosts', 'POST', { id: argv.id, ttlSeconds: parseTtl(argv.ttl) });
        if (status !== 201) throw new StandbyError(status === 400 ? 'STANDBY_ERR_CONFIG_INVALID' : 'STANDBY_ERR_CONFLICT', `the proxy did not invite ${argv.id}: ${problemOf(body, status)}`, { status });
        const b = body as { id: string; token: string; expiresAt: string; command: string; kind?: string };
        if (argv.json) out(JSON.stringify(body, null, 2));
        else if (b.kind === 'download') out([`the standby ${b.id}'s install line (download only, until ${b.expiresAt}). On ${b.id}, run:`, '', `  ${b.command}`, '', "It installs the program and authorizes this proxy's fencing key; the token downloads the program and does nothing else."].join('\n'));
        else out([`invited ${b.id} (one use, until ${b.expiresAt}). On ${b.id}, run:`, '', `  ${b.command}`, '', 'It enrolls the host (its own agent token and ssh key) and installs the agent.'].join('\n'));
        return 0;
      }
      if (action === 'rotate') {
        const { status, body } = await callProxy(endpoint, `hosts/${encodeURIComponent(argv.id!)}/rotate`, 'POST', argv.grace === undefined ? {} : { graceSeconds: parseTtl(argv.grace, '--grace') });
        if (status !== 200) throw new StandbyError(status === 400 || status === 404 ? 'STANDBY_ERR_CONFIG_INVALID' : 'STANDBY_ERR_CONFLICT', `the proxy did not rotate the token of ${argv.id}: ${problemOf(body, status)}`, { status });
        const b = body as { id: string; agentToken: string; previousValidUntil: string };
        if (argv.json) out(JSON.stringify(body, null, 2));
        else out([`new agent token for ${b.id} (shown once; the old one stays valid until ${b.previousValidUntil}):`, '', `  ${b.agentToken}`, '', `On ${b.id}, write it to the agent's token file (proxy.tokenFile; the agent reads it at its next connection) or to proxy.token in agent.json and restart the agent.`].join('\n'));
        return 0;
      }
      // revoke: the standby may take a while to answer (it waits for the host's writers)
      const { status, body } = await callProxy(endpoint, `hosts/${encodeURIComponent(argv.id!)}/revoke`, 'POST', {}, 60_000);
      if (status !== 200 && status !== 202) throw new StandbyError(status === 404 ? 'STANDBY_ERR_CONFIG_INVALID' : 'STANDBY_ERR_CONFLICT', problemOf(body, status), { status });
      out(argv.json ? JSON.stringify(body, null, 2) : (body as { message: string }).message);
      return status === 200 ? 0 : 1;
    }, 'hosts'),
};
