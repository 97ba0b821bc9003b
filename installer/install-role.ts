// `standby install ROLE`: the program, the role's config and keys, its unit;
// a second run upgrades the program and keeps config, keys and tokens.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StandbyError } from '../errors.ts';
import { authorizeWriter, parsePublicKey, type PublicKey } from './authorized-keys.ts';
import { ensureAgentKey } from './keys.ts';
import { commandPath, configFile, layoutOf, SERVICE_USER, type Layout, type Role } from './layout.ts';
import { installProgram, PROGRAM_SOURCE } from './program.ts';
import { readRecord, writeRecord, type AuthorizedEntry, type InstallRecord } from './record.ts';
import { agentSettings, proxySettings, readExisting, writeRoleConfig, type RoleFlags } from './role-config.ts';
import { ensureServiceUser } from './system-user.ts';
import { howToRun, installUnit, startUnit } from './units.ts';

export interface InstallOptions extends RoleFlags {
  role: Role;
  /** prefix everything is installed under (default /) */
  root: string;
  /** skip systemctl */
  noStart: boolean;
  /** standby: the agent's public key line, or a file holding it */
  agentKey?: string;
  agentKeyFile?: string;
  /** standby: the proxy's public key, allowed to fence and nothing else */
  fenceKey?: string;
  fenceKeyFile?: string;
  /** where the program is copied from (default: the checkout or bundle this runs from) */
  source?: string;
}

function keyFrom(text: string | undefined, file: string | undefined, flag: string): PublicKey | undefined {
  if (text !== undefined) return parsePublicKey(text);
  if (file === undefined) return undefined;
  if (!existsSync(file)) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `${flag} ${file}: no such file; give the agent's .pub file (on the GPU: /etc/standby/keys/id_ed25519.pub)`, { file });
  return parsePublicKey(readFileSync(file, 'utf8'));
}

export function checkPrivileges(l: Layout): void {
  if (l.root === '/' && process.getuid?.() !== 0) {
    throw new StandbyError('STANDBY_ERR_INSTALL_FAILED', 'standby install writes /opt, /etc and /var/lib: run it as root (sudo), or give --root DIR to install under a prefix', {});
  }
}

export function installRole(o: InstallOptions, say: (line: string) => void): InstallRecord {
  const l = layoutOf(o.root);
  checkPrivileges(l);
  const source = o.source ?? PROGRAM_SOURCE;
  const before = readRecord(l, o.role);
  // check what can be checked before anything is written
  const agentKey = o.role === 'standby' ? keyFrom(o.agentKey, o.agentKeyFile, '--agent-key-file') : undefined;
  const fenceKey = o.role === 'standby' ? keyFrom(o.fenceKey, o.fenceKeyFile, '--fence-key-file') : undefined;
  if (o.role === 'standby' && !agentKey && !before?.authorized.length) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', "standby install standby needs --agent-key \"ssh-ed25519 AAAA...\" (or --agent-key-file FILE): the agent's public key, which standby install agent printed on the GPU", { flag: '--agent-key' });
  }

  const program = installProgram(l, source);
  say(`program ${program.version}: ${program.dir} (${l.current}, ${commandPath(l)})`);
  if (program.kept) say(`kept the previous version for running processes: ${program.kept}`);
  for (const r of program.removed) say(`removed an older version: ${r}`);

  mkdirSync(l.etcDir, { recursive: true, mode: 0o755 });
  mkdirSync(l.stateDir, { recursive: true, mode: 0o755 });
  const record: InstallRecord = {
    role: o.role,
    version: program.version,
    program: program.dir,
    keyFiles: before?.keyFiles ?? [],
    authorized: before?.authorized ?? [],
    userCreated: before?.userCreated ?? false,
    ...(before?.receiveDir ? { receiveDir: before.receiveDir } : {}),
  };
  const keep = (file: string) => {
    if (!record.keyFiles.includes(file)) record.keyFiles.push(file);
  };

  if (o.role === 'agent') {
    const key = ensureAgentKey(l.keyDir);
    keep(key.identityFile);
    say(`${key.created ? 'made' : 'kept'} the agent's ssh key ${key.identityFile}`);
    const file = configFile(l, 'agent')!;
    const existed = existsSync(file);
    writeRoleConfig(file, 'agent', agentSettings(readExisting(file), o, l, key.identityFile));
    record.configFile = file;
    say(`${existed ? 'updated' : 'wrote'} ${file} (0600; the agent runs as root: it reads the whole workspace)`);
    say(`the agent's public key; on the standby run: standby install standby --agent-key "${key.publicKey}"`);
  } else if (o.role === 'proxy') {
    const user = ensureServiceUser(l);
    if (user?.created) record.userCreated = true;
    if (!user) say(`note: under --root the system user ${SERVICE_USER} is not created (the proxy runs as ${SERVICE_USER} on a real install)`);
    else say(`${user.created ? 'created' : 'kept'} the system user ${SERVICE_USER} (the proxy runs as it)`);
    const key = ensureAgentKey(l.keyDir);
    keep(key.identityFile);
    say(`${key.created ? 'made' : 'kept'} the proxy's fencing key ${key.identityFile}`);
    const file = configFile(l, 'proxy')!;
    const existed = existsSync(file);
    const { settings, generated } = proxySettings(readExisting(file), o, l, key.identityFile);
    writeRoleConfig(file, 'proxy', settings, user);
    record.configFile = file;
    if (user) {
      chownSync(l.keyDir, user.uid, user.gid);
      for (const f of [key.identityFile, `${key.identityFile}.pub`]) chownSync(f, user.uid, user.gid);
      chownSync(l.stateDir, user.uid, user.gid);
    }
    say(`${existed ? 'updated' : 'wrote'} ${file} (0600)${generated.length ? `; generated ${generated.join(' and ')} (read them there)` : ''}`);
    say(`the proxy's fencing key; on the standby add it with: standby install standby --fence-key "${key.publicKey}"`);
  } else {
    const workspace = o.workspace ?? '/workspace';
    if (!workspace.startsWith('/')) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `--workspace ${workspace}: expected an absolute path`, { workspace });
    mkdirSync(workspace, { recursive: true });
    const receiveDir = join(l.stateDir, 'receive');
    mkdirSync(receiveDir, { recursive: true, mode: 0o700 });
    record.receiveDir = receiveDir;
    const add = (key: PublicKey, command: string, what: string) => {
      const changed = authorizeWriter(l.authorizedKeys, key, command);
      const entry: AuthorizedEntry = { file: l.authorizedKeys, type: key.type, blob: key.blob };
      if (!record.authorized.some((a) => a.blob === key.blob && a.file === entry.file)) record.authorized.push(entry);
      say(`${changed ? 'authorized' : 'kept'} ${what} in ${l.authorizedKeys}: command="${command}",restrict`);
    };
    if (agentKey) add(agentKey, `${commandPath(l)} receive --root ${workspace} --state-dir ${receiveDir}`, "the agent's key");
    if (fenceKey) add(fenceKey, `${commandPath(l)} receive --allow-fence --state-dir ${receiveDir}`, "the proxy's fencing key");
    say(`workspace ${workspace} (never removed by uninstall); the receiver runs as root under sshd, no unit`);
  }

  if (o.role !== 'standby') {
    const unitFile = installUnit(l, o.role, source, say);
    if (unitFile) record.unitFile = unitFile;
    else delete record.unitFile;
    writeRecord(l, record);
    startUnit(l, o.role, unitFile, o.noStart, say);
    if (!unitFile && !o.noStart && l.root === '/') say(`run it by hand: ${howToRun(l, o.role)}`);
  } else {
    writeRecord(l, record);
  }
  if (record.configFile) chmodSync(record.configFile, 0o600);
  return record;
}
