// agent.json and proxy.json as the installer writes them: the flags given now
// merged over the file that is there (a second install keeps what it does not
// name), tokens generated only when there are none, validated against the
// daemon's own schema, written 0600 and atomically.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { account } from './accounts.ts';
import { agentConfigSchema } from '../config/agent.ts';
import { mergeSettings, readConfigFile, validateSettings } from '../config/file.ts';
import { writeFileDurably } from '../core/durable-file.ts';
import { StandbyError } from '../core/errors.ts';
import { proxyConfigSchema } from '../config/proxy.ts';
import type { Layout } from './layout.ts';
import type { EditorDirs } from '../protocol/receiver.ts';

/** The role flags of `standby install`; every one optional here, required ones checked against the existing file. */
export interface RoleFlags {
  proxy?: string;
  token?: string;
  hostId?: string;
  standbyHost?: string;
  standbyPort?: number;
  standbyUser?: string;
  standbyPath?: string;
  workspace?: string;
  listen?: string;
  publicUrl?: string;
  adminToken?: string;
  gpuId?: string;
  gpuUrl?: string;
  standbyId?: string;
  standbyUrl?: string;
  standbyKey?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** agent and standby: code-server's --user-data-dir on this host, whose settings, snippets, backups and extensions follow the developer (the same path on both hosts) */
  editorDataDir?: string;
  /** agent and standby: code-server's --extensions-dir (default <editorDataDir>/extensions) */
  editorExtensionsDir?: string;
  /** false (--no-editor): code-server's folders are not synced */
  editor?: boolean;
  /** agent: code-server's --user-data-dir on the standby, where it is not the same path as here (agent.json editor.remoteUserDataDir) */
  standbyEditorDataDir?: string;
  /** agent: code-server's --extensions-dir on the standby (default <standbyEditorDataDir>/extensions) */
  standbyEditorExtensionsDir?: string;
}

/** A user's home folder by uid, from /etc/passwd (undefined when not listed). */
function homeOfUid(uid: number): string | undefined {
  if (uid === process.getuid?.()) return homedir();
  const home = account(uid)?.home;
  return home?.startsWith('/') ? home : undefined; // no /etc/passwd, or no such user: no default
}

/**
 * code-server's folders whose safe part is synced between the hosts (agent.json `editor`, the
 * receiver's extra roots): --editor-data-dir, else on a real install code-server's own default for
 * the workspace folder's owner (the user code-server runs as); none under --root without the flag, or
 * with --no-editor.
 */
export function editorDirs(flags: RoleFlags, workspace: string, layout: Layout): EditorDirs | undefined {
  if (flags.editor === false) return undefined;
  let userDataDir = flags.editorDataDir;
  if (userDataDir === undefined && layout.root === '/') {
    const uid = existsSync(workspace) ? statSync(workspace).uid : (process.getuid?.() ?? 0);
    const home = homeOfUid(uid);
    if (home) userDataDir = join(home, '.local', 'share', 'code-server');
  }
  if (userDataDir === undefined) return undefined;
  for (const [flag, dir] of [['--editor-data-dir', userDataDir], ['--editor-extensions-dir', flags.editorExtensionsDir], ['--standby-editor-data-dir', flags.standbyEditorDataDir], ['--standby-editor-extensions-dir', flags.standbyEditorExtensionsDir]] as const) {
    if (dir !== undefined && !dir.startsWith('/')) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `${flag} ${dir}: expected an absolute path`, { flag });
  }
  return { userDataDir, extensionsDir: flags.editorExtensionsDir ?? join(userDataDir, 'extensions') };
}


function newToken(): string {
  return randomBytes(24).toString('base64url');
}

type Json = Record<string, unknown>;

function get(json: Json, ...path: string[]): unknown {
  let cur: unknown = json;
  for (const k of path) cur = cur && typeof cur === 'object' ? (cur as Json)[k] : undefined;
  return cur;
}

/** Only the keys whose value is given, so merging never blanks a field. */
function given(json: Json): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(json)) {
    if (v === undefined) continue;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const inner = given(v as Json);
      if (Object.keys(inner).length) out[k] = inner;
    } else out[k] = v;
  }
  return out;
}

function need(value: unknown, flag: string, what: string, role: string): void {
  if (value === undefined) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `standby install ${role} needs ${flag} (${what}) on the first install; give it and run again`, { flag });
  }
}

/** --proxy read as a URL: http(s):// or ws(s)://, else a StandbyError naming the flag. */
function parseProxyUrl(proxy: string): URL {
  let u: URL;
  try {
    u = new URL(proxy);
  } catch {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `--proxy ${proxy}: expected the proxy's URL, e.g. https://proxy.example.com`, { proxy });
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `--proxy ${proxy}: expected the proxy's URL, http:// or https://, e.g. https://proxy.example.com`, { proxy });
  return u;
}

/** An endpoint of the proxy --proxy names, over http(s) (a ws(s):// URL is read as its http(s) twin), e.g. /_standby/enroll. */
export function proxyHttpUrl(proxy: string, path: string): string {
  const u = parseProxyUrl(proxy);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  u.pathname = path;
  u.search = '';
  return u.toString();
}

/** https://proxy.example -> wss://proxy.example/_standby/agent (a ws(s):// URL is kept as given). */
function agentSocketUrl(proxy: string): string {
  const u = parseProxyUrl(proxy);
  if (u.protocol === 'ws:' || u.protocol === 'wss:') return u.toString();
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = '/_standby/agent';
  u.search = '';
  return u.toString();
}

function parseListen(listen: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `--listen ${listen}: expected HOST:PORT, e.g. 0.0.0.0:443`, { listen });
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

/** The URL hosts reach a proxy listening on `listen` by, when it names one host (the config's default 127.0.0.1:8888 when absent); undefined for a wildcard. */
function publicUrlOf(listen: { host?: string; port?: number }, tls: boolean): string | undefined {
  const host = listen.host ?? '127.0.0.1';
  if (['', '0.0.0.0', '::', '::0'].includes(host)) return undefined;
  return `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${listen.port ?? 8888}`;
}

/**
 * The proxy's listen address and publicUrl from the flags: --public-url, else (first install) the
 * listen address when it names one host. Throws, naming --public-url, when a first install listens
 * on every address and gives no URL: called before anything is written.
 */
export function proxyAddress(existing: Json, flags: RoleFlags): { listen?: { host: string; port: number }; publicUrl?: string } {
  const listen = flags.listen === undefined ? undefined : parseListen(flags.listen);
  const publicUrl = flags.publicUrl !== undefined
    ? flags.publicUrl.replace(/\/+$/, '')
    : get(existing, 'publicUrl') === undefined ? publicUrlOf(listen ?? (get(existing, 'listen') as { host?: string; port?: number } | undefined) ?? {}, flags.tlsCert !== undefined || get(existing, 'tls') !== undefined) : undefined;
  if (Object.keys(existing).length === 0 && publicUrl === undefined) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `standby install proxy: the proxy listens on every address (${flags.listen}), so give --public-url https://NAME:PORT (publicUrl: the URL the GPU and the standby reach it by; install lines name it)`, { flag: '--public-url' });
  }
  return { ...(listen ? { listen } : {}), ...(publicUrl !== undefined ? { publicUrl } : {}) };
}

/** The agent's settings: existing file <- flags; the key the installer made is its identity. */
export function agentSettings(existing: Json, flags: RoleFlags, layout: Layout, identityFile: string): Json {
  const first = Object.keys(existing).length === 0;
  if (first) need(flags.standbyHost, '--standby-host', 'the CPU standby the workspace is mirrored to', 'agent');
  const token = flags.token ?? (process.env['STANDBY_TOKEN'] || undefined); // an empty variable is no token (an upgrade keeps the one in the file)
  if (flags.proxy !== undefined && token === undefined && get(existing, 'proxy', 'token') === undefined) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'standby install agent --proxy needs the agent token: set STANDBY_TOKEN in the environment (preferred) or give --token (primary.agentToken in the proxy\'s proxy.json)', { flag: '--token' });
  }
  // /workspace on a machine, ROOT/workspace under --root: like the standby's, inside the prefix
  const workspace = flags.workspace ?? (first ? join(layout.root, 'workspace') : undefined);
  const defaults: Json = first
    ? {
        hostId: hostname(),
        standby: {
          user: 'root',
          path: flags.standbyPath ?? workspace,
          sshOptions: ['-o', 'StrictHostKeyChecking=accept-new', '-o', `UserKnownHostsFile=${join(layout.etcDir, 'known_hosts')}`],
        },
      }
    : {};
  const overrides = given({
    hostId: flags.hostId,
    workspace,
    standby: { host: flags.standbyHost, port: flags.standbyPort, user: flags.standbyUser, path: flags.standbyPath, identityFile: get(existing, 'standby', 'identityFile') === undefined ? identityFile : undefined },
    proxy: flags.proxy !== undefined || token !== undefined ? { url: flags.proxy === undefined ? undefined : agentSocketUrl(flags.proxy), token } : undefined,
  });
  // code-server's folders: written on a first install, or when a flag names them (an upgrade keeps what agent.json says)
  const editorFlagged = [flags.editorDataDir, flags.editorExtensionsDir, flags.standbyEditorDataDir, flags.standbyEditorExtensionsDir].some((f) => f !== undefined);
  const editor = first || editorFlagged ? editorDirs(flags, String(workspace ?? get(existing, 'workspace') ?? '/workspace'), layout) : undefined;
  if (editor) {
    overrides['editor'] = {
      userDataDir: editor.userDataDir,
      extensionsDir: editor.extensionsDir,
      ...(flags.standbyEditorDataDir !== undefined ? { remoteUserDataDir: flags.standbyEditorDataDir } : {}),
      ...(flags.standbyEditorExtensionsDir !== undefined ? { remoteExtensionsDir: flags.standbyEditorExtensionsDir } : {}),
    };
  }
  const merged = mergeSettings(mergeSettings(defaults, existing), overrides);
  if (flags.editor === false) delete merged['editor'];
  if (get(merged, 'proxy') !== undefined && get(merged, 'proxy', 'url') === undefined) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'standby install agent: a token without --proxy: give --proxy https://PROXY too', { flag: '--proxy' });
  }
  return merged;
}

/** The proxy's settings: existing file <- flags; tokens generated when neither flag, env nor file has one. */
export function proxySettings(existing: Json, flags: RoleFlags, layout: Layout, fenceKey: string | undefined): { settings: Json; generated: string[] } {
  const first = Object.keys(existing).length === 0;
  if (first) {
    need(flags.gpuUrl, '--gpu-url', "the GPU's code-server URL as the proxy reaches it, e.g. http://10.0.0.5:8080", 'proxy');
    need(flags.standbyUrl, '--standby-url', "the standby's code-server URL, e.g. http://10.0.0.6:8080", 'proxy');
    need(flags.standbyHost, '--standby-host', 'the standby host the proxy fences over ssh', 'proxy');
  }
  const { listen, publicUrl } = proxyAddress(existing, flags);
  const generated: string[] = [];
  const token = (flag: string | undefined, env: string, path: string[], name: string): string | undefined => {
    const v = flag ?? process.env[env];
    if (v !== undefined) return v;
    if (get(existing, ...path) !== undefined) return undefined;
    generated.push(name);
    return newToken();
  };
  const overrides = given({
    listen,
    publicUrl,
    tls: flags.tlsCert !== undefined || flags.tlsKey !== undefined ? { cert: flags.tlsCert, key: flags.tlsKey } : undefined,
    stateDir: get(existing, 'stateDir') === undefined ? layout.stateDir : undefined,
    adminToken: token(flags.adminToken, 'STANDBY_ADMIN_TOKEN', ['adminToken'], 'adminToken'),
    // no GPU token is made up here: the GPU gets its own at enrollment (`standby hosts add`); one given is kept
    primary: { id: flags.gpuId ?? (first ? 'gpu-1' : undefined), url: flags.gpuUrl, agentToken: flags.token ?? (process.env['STANDBY_TOKEN'] || undefined) },
    standby: {
      id: flags.standbyId ?? (first ? 'cpu-1' : undefined),
      url: flags.standbyUrl,
      ssh: {
        host: flags.standbyHost,
        port: flags.standbyPort,
        user: flags.standbyUser,
        identityFile: flags.standbyKey ?? (get(existing, 'standby', 'ssh', 'identityFile') === undefined ? fenceKey : undefined),
        // the standby role's receiver state under the same prefix (its fencing key's forced command names it)
        stateDir: first ? join(layout.stateDir, 'receive') : undefined,
      },
    },
  });
  return { settings: mergeSettings(existing, overrides), generated };
}

export function readExisting(file: string): Json {
  return existsSync(file) ? readConfigFile(file) : {};
}

/** Validates with the daemon's schema, then writes 0600 (owned by `owner` when given) atomically. */
export function writeRoleConfig(file: string, role: 'agent' | 'proxy', settings: Json, owner?: { uid: number; gid: number }): void {
  validateSettings(role === 'agent' ? agentConfigSchema : proxyConfigSchema, settings, `${file} (as the installer would write it; fix the flag named)`);
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  writeFileDurably(file, JSON.stringify(settings, null, 2) + '\n', 0o600, owner);
}
