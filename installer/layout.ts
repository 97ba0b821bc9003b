// Where an installed Standby lives, under a prefix (`--root`, "/" on a real
// machine): the program, its config, its state, its units.
import { join, resolve } from 'node:path';
import { StandbyError } from '../core/errors.ts';

export const ROLES = ['agent', 'standby', 'proxy'] as const;
export type Role = (typeof ROLES)[number];

/** The unit each role runs (the standby role runs nothing: sshd starts `standby receive`). */
export const UNIT_OF: Record<Role, string | undefined> = {
  agent: 'standby-agent.service',
  standby: undefined,
  proxy: 'standby-proxy.service',
};

/** The system user the proxy runs as; agent and standby run as root (they read and write the workspace). */
export const SERVICE_USER = 'standby';

export interface Layout {
  /** the prefix, absolute ("/" on a real machine) */
  root: string;
  /** /opt/standby: versions, `current` and `bin` */
  programDir: string;
  /** /opt/standby/current -> <version folder> */
  current: string;
  /** /opt/standby/bin -> current/bin; /opt/standby/bin/standby is the command units and authorized_keys name */
  bin: string;
  /** /usr/local/bin/standby -> /opt/standby/bin/standby, so `standby` is on PATH */
  pathLink: string;
  /** /etc/standby: agent.json, proxy.json, keys/ */
  etcDir: string;
  /** /etc/standby/keys (0700): the agent's ssh key */
  keyDir: string;
  /** /var/lib/standby: state, the install records, receive/ on the standby */
  stateDir: string;
  /** /etc/systemd/system */
  unitDir: string;
  /** /root/.ssh/authorized_keys (the standby's writer key lands here) */
  authorizedKeys: string;
}

export function layoutOf(rootArg: string): Layout {
  const root = resolve(rootArg);
  const at = (...p: string[]) => join(root, ...p);
  return {
    root,
    programDir: at('opt/standby'),
    current: at('opt/standby/current'),
    bin: at('opt/standby/bin'),
    pathLink: at('usr/local/bin/standby'),
    etcDir: at('etc/standby'),
    keyDir: at('etc/standby/keys'),
    stateDir: at('var/lib/standby'),
    unitDir: at('etc/systemd/system'),
    authorizedKeys: at('root/.ssh/authorized_keys'),
  };
}

/** The standby command as units and authorized_keys name it. */
export function commandPath(layout: Layout): string {
  return join(layout.bin, 'standby');
}

export function configFile(layout: Layout, role: Role): string | undefined {
  return role === 'agent' ? join(layout.etcDir, 'agent.json') : role === 'proxy' ? join(layout.etcDir, 'proxy.json') : undefined;
}

/** What install laid down for a role, so uninstall removes exactly that. */
export function recordFile(layout: Layout, role: Role): string {
  return join(layout.stateDir, `installed-${role}.json`);
}

/** Installing or uninstalling on the machine itself (no --root) needs root. */
export function checkPrivileges(layout: Layout): void {
  if (layout.root === '/' && process.getuid?.() !== 0) {
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', 'standby install writes /opt, /etc and /var/lib: run it as root (sudo), or give --root DIR to install under a prefix', {});
  }
}
