// `standby install ROLE`: the program, the role's config and keys, its unit;
// a second run upgrades the program and keeps config, keys and tokens.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StandbyError } from '../core/errors.ts';
import { authorizeWriter, fencingKeys, fingerprintOf, parsePublicKey, revokeWriter, type PublicKey } from '../core/authorized-keys.ts';
import { enrollIfInvited } from './enroll.ts';
import { ensureAgentKey, ensureFenceKey, FENCE_KEY_FILE } from './keys.ts';
import { checkPrivileges, commandPath, configFile, layoutOf, SERVICE_USER, type Layout, type Role } from './layout.ts';
import { PROGRAM_SOURCE } from '../core/program-files.ts';
import { installProgram } from './program.ts';
import { otherRoles, readRecord, writeRecord, type AuthorizedEntry, type InstallRecord } from './record.ts';
import { editorReceiveRoots } from '../protocol/receiver.ts';
import { agentSettings, editorDirs, proxyAddress, proxyHttpUrl, proxySettings, readExisting, writeRoleConfig, type RoleFlags } from './role-config.ts';
import { FENCE_KEY_PATH } from '../protocol/admin-api.ts';
import { ensureServiceUser } from './system-user.ts';
import { howToRun, installUnit, startUnit } from './units.ts';
import { CODE_SERVER_CGROUP, setUpCodeServer, startCodeServerUnit, writeFreezeDropIn, type CodeServerFlags, type CodeServerRecord } from './code-server-unit.ts';

export interface InstallOptions extends RoleFlags, CodeServerFlags {
  role: Role;
  /** prefix everything is installed under (default /) */
  root: string;
  /** skip systemctl */
  noStart: boolean;
  /** standby: the agent's public key line, or a file holding it */
  agentKey?: string;
  agentKeyFile?: string;
  /** standby: the proxy's public key, allowed to fence and to add/remove per-host writer entries; fetched from --proxy when not given */
  fenceKey?: string;
  fenceKeyFile?: string;
  /** standby: how long fetching PROXY/_standby/fence-key.pub may take (default 10 s) */
  fetchTimeoutMs?: number;
  /** where the program is copied from (default: the checkout or bundle this runs from) */
  source?: string;
}

function keyFrom(text: string | undefined, file: string | undefined, flag: string): PublicKey | undefined {
  if (text !== undefined) return parsePublicKey(text);
  if (file === undefined) return undefined;
  const where = flag === '--fence-key-file' ? `the proxy's .pub file (on the proxy: /etc/standby/keys/${FENCE_KEY_FILE}.pub)` : "the agent's .pub file (on the GPU: /etc/standby/keys/id_ed25519.pub)";
  if (!existsSync(file)) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `${flag} ${file}: no such file; give ${where}`, { file });
  return parsePublicKey(readFileSync(file, 'utf8'));
}

/** The proxy's fencing public key, fetched from the proxy itself (what install.sh's --proxy points at). */
export async function fetchFenceKey(proxy: string, timeoutMs = 10_000): Promise<PublicKey> {
  const url = proxyHttpUrl(proxy, FENCE_KEY_PATH);
  const instead = `or give the proxy's public key by hand: --fence-key-file FILE (on the proxy: /etc/standby/keys/${FENCE_KEY_FILE}.pub)`;
  let status: number;
  let body: string;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    status = res.status;
    body = await res.text();
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const cause = e.cause?.code ?? e.cause?.message ?? e.message;
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : cause === 'bad port' ? `Node's fetch refuses port ${new URL(url).port} (a port the fetch standard blocks; move the proxy to another port)` : cause;
    const tls = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|TLS|SSL/i.test(why) ? " (the proxy's certificate is not trusted here: give the proxy a real certificate, or run install.sh with --insecure)" : '';
    throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', `could not fetch the proxy's fencing key from ${url}: ${why}${tls}; check that --proxy names the proxy and that it is up and reachable from here, ${instead}`, { url }, { cause: err });
  }
  const line = body.trim().split('\n')[0]?.trim().slice(0, 300) ?? '';
  if (status !== 200) {
    throw new StandbyError('STANDBY_ERR_PROXY_UNREACHABLE', `could not fetch the proxy's fencing key from ${url}: HTTP ${status}${line ? ` (${line})` : ''}; ${status === 404 ? 'is --proxy the Standby proxy, and is its standby.ssh.identityFile set? ' : ''}${instead}`, { url, status });
  }
  try {
    return parsePublicKey(line);
  } catch {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `${url} did not answer with an ssh public key line (got ${JSON.stringify(line.slice(0, 60))}): is --proxy the Standby proxy? ${instead}`, { url });
  }
}

/** What to do after installing the proxy, with this install's real URL and commands. */
function nextForProxy(layout: Layout, file: string, settings: Record<string, unknown>): string {
  const gpu = (settings['primary'] as { id?: string } | undefined)?.id ?? 'gpu-1';
  const cpu = (settings['standby'] as { id?: string } | undefined)?.id ?? 'cpu-1';
  const url = settings['publicUrl'] as string | undefined;
  const cmd = layout.root === '/' ? 'standby' : `${commandPath(layout)}`;
  const config = layout.root === '/' ? '' : ` --config ${file}`;
  return `next: with the proxy running, on this machine: \`${cmd} hosts add ${cpu}${config}\` prints the standby's install line, then \`${cmd} hosts add ${gpu}${config}\` the GPU's (one use each); both fetch from ${url ?? 'publicUrl (not set: set it in proxy.json)'}`;
}

export async function installRole(given: InstallOptions, say: (line: string) => void): Promise<InstallRecord> {
  const layout = layoutOf(given.root);
  checkPrivileges(layout);
  // an agent with an invitation enrolls first: nothing is installed unless the proxy took it
  const options = given.role === 'agent' ? await enrollIfInvited(given, layout, say) : given;
  const enrolled = options !== given;
  const source = options.source ?? PROGRAM_SOURCE;
  const before = readRecord(layout, options.role);
  // check what can be checked before anything is written
  const agentKey = options.role === 'standby' ? keyFrom(options.agentKey, options.agentKeyFile, '--agent-key-file') : undefined;
  let fenceKey = options.role === 'standby' ? keyFrom(options.fenceKey, options.fenceKeyFile, '--fence-key-file') : undefined;
  let fenceKeyFrom = fenceKey ? 'given' : undefined;
  if (options.role === 'standby' && !fenceKey && options.proxy !== undefined) {
    fenceKey = await fetchFenceKey(options.proxy, options.fetchTimeoutMs);
    fenceKeyFrom = proxyHttpUrl(options.proxy, FENCE_KEY_PATH);
  }
  if (options.role === 'proxy') proxyAddress(readExisting(configFile(layout, 'proxy')!), options);
  if (options.role === 'standby' && !agentKey && !fenceKey && !before?.authorized.length) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', "standby install standby needs --proxy https://PROXY (it fetches the proxy's fencing key from there; install.sh passes it) or --fence-key \"ssh-ed25519 AAAA...\" (or --fence-key-file FILE): the key the proxy fences with and authorizes writers through", { flag: '--proxy' });
  }

  const program = installProgram(layout, source, new Date(), options.role === 'proxy');
  say(`program ${program.version}: ${program.dir} (${layout.current}, ${commandPath(layout)})`);
  if (program.kept) say(`kept the previous version for running processes: ${program.kept}`);
  for (const r of program.removed) say(`removed an older version: ${r}`);

  mkdirSync(layout.etcDir, { recursive: true, mode: 0o755 });
  mkdirSync(layout.stateDir, { recursive: true, mode: 0o755 });
  // the proxy's event log, host list and bundle: its own (0700), under --root too
  if (options.role === 'proxy') chmodSync(layout.stateDir, 0o700);
  const record: InstallRecord = {
    role: options.role,
    version: program.version,
    program: program.dir,
    keyFiles: before?.keyFiles ?? [],
    authorized: before?.authorized ?? [],
    userCreated: before?.userCreated ?? false,
    ...(before?.receiveDir ? { receiveDir: before.receiveDir } : {}),
  };
  /** code-server for the workspace (agent and standby): the unit, or the user's own; `sharedUnit`: another role's, not restarted here */
  let sharedUnit = false;
  const codeServerFor = async (workspace: string): Promise<CodeServerRecord | undefined> => {
    // one unit per machine: a GPU's onstart installs the agent and then the receiver (the standby role) on the same host
    const shared = before?.codeServer ? undefined : otherRoles(layout, options.role).map((r) => ({ role: r, cs: readRecord(layout, r)?.codeServer })).find((o) => o.cs?.mode === 'unit');
    if (shared?.cs && options.codeServer !== false) {
      say(`code-server: the unit the ${shared.role} role laid down serves this machine (${shared.cs.unitFile}, on ${shared.cs.listen}); kept as it is`);
      const { dropIn: _dropIn, ...rest } = shared.cs;
      record.codeServer = options.role === 'agent' ? { ...rest, dropIn: writeFreezeDropIn(layout) } : rest;
      sharedUnit = true;
      return record.codeServer;
    }
    const cs = await setUpCodeServer({ layout, role: options.role as 'agent' | 'standby', flags: options, workspace, before: before?.codeServer }, say);
    if (cs) record.codeServer = cs;
    else delete record.codeServer;
    return cs;
  };
  const keep = (file: string) => {
    if (!record.keyFiles.includes(file)) record.keyFiles.push(file);
  };

  if (options.role === 'agent') {
    const key = ensureAgentKey(layout.keyDir);
    keep(key.identityFile);
    say(`${key.created ? 'made' : 'kept'} the agent's ssh key ${key.identityFile}`);
    const file = configFile(layout, 'agent')!;
    const existed = existsSync(file);
    const settings = agentSettings(readExisting(file), options, layout, key.identityFile);
    const cs = await codeServerFor(String(settings['workspace'] ?? '/workspace'));
    // the switch back's freeze stops code-server's unit (agent/freeze.ts), unless agent.json says what to freeze
    if (cs?.mode === 'unit' && settings['freeze'] === undefined) {
      settings['freeze'] = { cgroup: CODE_SERVER_CGROUP };
      say(`agent.json freeze.cgroup: ${CODE_SERVER_CGROUP} (a switch back stops code-server during its final pass; the agent's unit may write it: ${cs.dropIn})`);
    }
    writeRoleConfig(file, 'agent', settings);
    // ssh pins the standby's host key here (accept-new); the unit can make only an existing file writable
    const knownHosts = join(layout.etcDir, 'known_hosts');
    if (!existsSync(knownHosts)) writeFileSync(knownHosts, '', { mode: 0o644 });
    record.configFile = file;
    say(`${existed ? 'updated' : 'wrote'} ${file} (0600; the agent runs as root: it reads the whole workspace)`);
    if (enrolled) say("this host's key is on the standby already: the proxy authorized it at enrollment (nothing to copy)");
    else say(`the agent's public key, for a standby set up without a proxy (with a proxy, invite the host instead: standby hosts add ID): standby install standby --agent-key "${key.publicKey}"`);
  } else if (options.role === 'proxy') {
    const user = ensureServiceUser(layout);
    if (user?.created) record.userCreated = true;
    if (!user) say(`note: under --root the system user ${SERVICE_USER} is not created (the proxy runs as ${SERVICE_USER} on a real install)`);
    else say(`${user.created ? 'created' : 'kept'} the system user ${SERVICE_USER} (the proxy runs as it)`);
    const file = configFile(layout, 'proxy')!;
    const existed = existsSync(file);
    // a proxy installed before the fencing key had a name of its own keeps the key it has
    const oldKey = join(layout.keyDir, 'id_ed25519');
    const key = ensureFenceKey(layout.keyDir, (readExisting(file)['standby'] as { ssh?: { identityFile?: string } } | undefined)?.ssh?.identityFile === oldKey ? 'id_ed25519' : FENCE_KEY_FILE);
    keep(key.identityFile);
    say(`${key.created ? 'made' : 'kept'} the proxy's fencing key ${key.identityFile}`);
    const { settings, generated } = proxySettings(readExisting(file), options, layout, key.identityFile);
    writeRoleConfig(file, 'proxy', settings, user);
    record.configFile = file;
    if (user) {
      chownSync(layout.keyDir, user.uid, user.gid);
      for (const f of [key.identityFile, `${key.identityFile}.pub`]) chownSync(f, user.uid, user.gid);
      chownSync(layout.stateDir, user.uid, user.gid);
    }
    say(`${existed ? 'updated' : 'wrote'} ${file} (0600)${generated.length ? `; generated ${generated.join(' and ')} (read them there)` : ''}`);
    say(`the proxy's fencing key; on the standby add it with: standby install standby --fence-key "${key.publicKey}"`);
    say(nextForProxy(layout, file, settings));
  } else {
    // under --root the default workspace is inside the prefix too: a test install creates nothing outside it
    const workspace = options.workspace ?? join(layout.root, 'workspace');
    if (!workspace.startsWith('/')) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `--workspace ${workspace}: expected an absolute path`, { workspace });
    mkdirSync(workspace, { recursive: true });
    const receiveDir = join(layout.stateDir, 'receive');
    mkdirSync(receiveDir, { recursive: true, mode: 0o700 });
    record.receiveDir = receiveDir;
    const add = (key: PublicKey, command: string, what: string) => {
      const changed = authorizeWriter(layout.authorizedKeys, key, command);
      const entry: AuthorizedEntry = { file: layout.authorizedKeys, type: key.type, blob: key.blob };
      if (!record.authorized.some((a) => a.blob === key.blob && a.file === entry.file)) record.authorized.push(entry);
      say(`${changed ? 'authorized' : 'kept'} ${what} in ${layout.authorizedKeys}: command="${command}",restrict`);
    };
    // code-server's User folder and extensions folder, when synced: roots of their own beside the workspace (the workspace stays the first)
    const editorRoots = editorReceiveRoots(editorDirs(options, workspace, layout));
    const roots = [workspace, ...editorRoots].map((r) => `--root ${r}`).join(' ');
    if (agentKey) add(agentKey, `${commandPath(layout)} receive ${roots} --state-dir ${receiveDir}`, "the agent's key");
    // the proxy's key fences, and adds or removes each writer's entry in authorized_keys (a writer key per host, authorized at enrollment)
    if (fenceKey) {
      // one proxy fences: a key this installer authorized for an earlier proxy (reinstalled, or moved) would keep its power to fence and authorize writers
      for (const old of fencingKeys(layout.authorizedKeys)) {
        if (old.blob === fenceKey.blob || !record.authorized.some((a) => a.blob === old.blob && a.file === layout.authorizedKeys)) continue;
        revokeWriter(layout.authorizedKeys, old);
        record.authorized = record.authorized.filter((a) => !(a.blob === old.blob && a.file === layout.authorizedKeys));
        say(`removed the previous proxy's fencing key ${fingerprintOf(old.blob)} from ${layout.authorizedKeys}: it may no longer fence or authorize writers`);
      }
      add(fenceKey, `${commandPath(layout)} receive --allow-fence --state-dir ${receiveDir} ${roots} --authorized-keys ${layout.authorizedKeys}`, `the proxy's fencing key ${fingerprintOf(fenceKey.blob)} (${fenceKeyFrom === 'given' ? 'as given' : `from ${fenceKeyFrom}`})`);
    }
    say(`workspace ${workspace} (never removed by uninstall); the receiver runs as root under sshd, no unit`);
    if (editorRoots.length) say(`code-server's settings, snippets, unsaved-editor backups and extensions land in ${editorRoots.join(' and ')} (--no-editor: not accepted)`);
    await codeServerFor(workspace);
  }

  if (options.role !== 'standby') {
    const unitFile = installUnit(layout, options.role, source, say);
    if (unitFile) record.unitFile = unitFile;
    else delete record.unitFile;
    writeRecord(layout, record);
    if (!sharedUnit) startCodeServerUnit(layout, record.codeServer, options.noStart, say);
    startUnit(layout, options.role, unitFile, options.noStart, say);
    if (!unitFile && !options.noStart && layout.root === '/') say(`run it by hand: ${howToRun(layout, options.role)}`);
  } else {
    writeRecord(layout, record);
    if (!sharedUnit) startCodeServerUnit(layout, record.codeServer, options.noStart, say);
  }
  if (record.configFile) chmodSync(record.configFile, 0o600);
  return record;
}
