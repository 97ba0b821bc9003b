// Where the agent pushes: the configured standby, or a receiver the proxy
// granted (grant.target: a new GPU being restored from this host). A granted
// target is reached like the standby, as an ssh login whose forced command is
// `standby receive`, with this agent's write identity and only the host keys
// the grant lists (written to a known_hosts file in the run folder).
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeIdentityOf, type AgentConfig, type EditorDirs, type StandbyTarget } from '../config/agent.ts';
import type { PushTarget } from '../protocol/messages.ts';
import { StandbyError } from '../core/errors.ts';

export interface Destination {
  /** the granted target's id; null for the configured standby */
  target: string | null;
  /** how ssh reaches it and where root 0 lands there (`path`) */
  ssh: StandbyTarget;
  /** its code-server folders, where the editor's roots land, when the grant names them (else agent.json's editor.remote*) */
  editor?: EditorDirs;
  /** for logs and errors: "the standby root@cpu:22" or "target gpu-2 (root@10.0.0.9:22)" */
  label: string;
}

/** The configured standby as a destination, or undefined when agent.json has no standby section. */
export function standbyDestination(config: AgentConfig): Destination | undefined {
  const s = config.standby;
  if (!s) return undefined;
  return { target: null, ssh: s, label: `the standby ${s.user}@${s.host}:${s.port}` };
}

/** a host name, IPv4 or IPv6 address (no leading "-") */
const HOST = /^[A-Za-z0-9_:][A-Za-z0-9._:%-]*$/;
/** a POSIX-ish user name (no leading "-") */
const USER = /^[A-Za-z0-9_][A-Za-z0-9._-]*\$?$/;

/** Whether two grants name the same receiver (by id, address and folder): a change starts over with a full pass. */
export function sameTarget(a: PushTarget | undefined, b: PushTarget | undefined): boolean {
  if (!a || !b) return a === b;
  return a.id === b.id && a.host === b.host && a.port === b.port && a.user === b.user && a.path === b.path
    && a.editor?.userDataDir === b.editor?.userDataDir && a.editor?.extensionsDir === b.editor?.extensionsDir;
}

/** How known_hosts names host:port (ssh writes a plain host for port 22). */
function hostPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/**
 * The grant's known_hosts lines as a file's text. A line that is only a key
 * ("ssh-ed25519 AAAA...") is pinned to the target's address; lines are split
 * on newlines so one grant line cannot smuggle several.
 */
export function knownHostsText(target: PushTarget): string {
  const lines: string[] = [];
  for (const raw of target.knownHosts) {
    for (const line of raw.split(/[\r\n]+/)) {
      const l = line.trim();
      if (l === '' || l.startsWith('#')) continue;
      lines.push(/^(ssh-|ecdsa-|sk-)/.test(l) ? `${hostPattern(target.host, target.port)} ${l}` : l);
    }
  }
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

/** The run folder (ssh control sockets, targets' known_hosts), made 0700. */
export function runDirOf(config: AgentConfig): string {
  const dir = config.runDir ?? join(tmpdir(), 'standby-ssh');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** The known_hosts file of a target, in the run folder (one per target id and address). */
export function knownHostsFileOf(config: AgentConfig, target: PushTarget): string {
  const id = createHash('sha256').update(`${target.id}\0${target.host}\0${target.port}`).digest('hex').slice(0, 12);
  return join(runDirOf(config), `known_hosts-${id}`);
}

/**
 * A granted target as a destination. `fresh`: write its known_hosts anew
 * (a new target); otherwise only when the grant lists keys (a key learned on
 * first use, accept-new, stays for the rest of that target's life).
 */
export function targetDestination(config: AgentConfig, target: PushTarget, { fresh }: { fresh: boolean }): Destination {
  // the address and user go on ssh's command line: one starting with "-" would be read as an option (-oProxyCommand=...)
  if (!HOST.test(target.host) || !USER.test(target.user)) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `the proxy granted target ${JSON.stringify(target.id)} at ${JSON.stringify(`${target.user}@${target.host}`)}, which is not a host name or address and a user name ssh can be given safely: pushing nothing there`, { target: target.id });
  }
  const file = knownHostsFileOf(config, target);
  const text = knownHostsText(target);
  if (fresh || text !== '') writeFileSync(file, text, { mode: 0o600 });
  const identityFile = writeIdentityOf(config);
  return {
    target: target.id,
    ssh: {
      host: target.host,
      port: target.port,
      user: target.user,
      path: target.path,
      ...(identityFile ? { identityFile } : {}),
      // only the keys the grant lists (none: the first seen is trusted, and kept for this target)
      sshOptions: ['-o', `UserKnownHostsFile=${file}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', `StrictHostKeyChecking=${text === '' ? 'accept-new' : 'yes'}`],
    },
    ...(target.editor ? { editor: target.editor } : {}),
    label: `target ${target.id} (${target.user}@${target.host}:${target.port})`,
  };
}
