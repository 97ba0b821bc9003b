// The agent's settings (agent.json), with defaults and units. Messages in the
// schema are the "expected ..." half of a config error.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { StandbyError } from '../core/errors.ts';
import { absolutePath, flagBoolean, flagList, flagString, logLevel, ms, port, token, urlWith } from './fields.ts';
import type { EditorDirs } from '../protocol/receiver.ts';

/** GCP's metadata server: instance/preempted turns TRUE about 30 s before a spot VM stops (agent/notices/gcp-metadata.ts waits on it). */
export const GCP_PREEMPTED_URL = 'http://metadata.google.internal/computeMetadata/v1/instance/preempted';

/** Caches and build output: regenerated, not work. Documented in docs/configuration.md. */
export const DEFAULT_EXCLUDES: readonly string[] = [
  '.cache/',
  '__pycache__/',
  '*.pyc',
  '.ipynb_checkpoints/',
  'node_modules/.cache/',
  '.Trash-*/',
  '*.swp',
  '*.swx',
];

export const standbyTargetSchema = z.strictObject({
  /** standby host name or address */
  host: z.string({ error: 'a host name or IP address' }).min(1, { error: 'a host name or IP address' }),
  /** ssh port (default 22) */
  port: port.default(22),
  /** ssh user (default root) */
  user: z.string({ error: 'a user name' }).min(1, { error: 'a user name' }).default('root'),
  /** private key the agent logs in with (default: ssh's own choice) */
  identityFile: absolutePath.optional(),
  /** where the workspace copy lives on the standby */
  path: absolutePath,
  /** extra ssh options, e.g. ["-o", "StrictHostKeyChecking=accept-new"]; they win over the agent's own */
  sshOptions: flagList(z.array(z.string({ error: 'a list of ssh argument strings' }), { error: 'a list of ssh arguments' })).default([]),
  /** rsync program on the standby (default rsync on its PATH); under a proxy the agent puts STANDBY_EPOCH=<epoch> before it, for the receiver's forced command */
  rsyncPath: z.string({ error: 'a program name or path' }).min(1, { error: 'a program name or path' }).optional(),
}, { error: 'an object with at least host and path' });

export const extraRootSchema = z.strictObject({
  /** folder on this host, e.g. code-server's User settings folder */
  local: absolutePath,
  /** where it lives on the standby */
  remote: absolutePath,
}, { error: 'an object {local, remote}' });

/**
 * What of code-server's User folder follows the developer (docs/editor.md): the user's settings,
 * keybindings, tasks and snippets, and the hot-exit backups of unsaved editors (`Backups/`, on the
 * server). A trailing "/" is a folder and all it holds. Never the rest: `globalStorage/` and
 * `workspaceStorage/` hold live SQLite databases (state.vscdb) that rsync would tear under a running
 * code-server, and the rest is caches, logs, locks and per-machine ids.
 */
export const EDITOR_USER_FILES: readonly string[] = ['settings.json', 'keybindings.json', 'tasks.json', 'snippets/', 'Backups/'];

/** code-server's own default --user-data-dir for the user this runs as ($XDG_DATA_HOME/code-server, else ~/.local/share/code-server). */
export function defaultCodeServerDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_DATA_HOME'];
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.local', 'share'), 'code-server');
}

/** code-server's folders on this host whose safe part follows the developer to the other side (agent/editor-roots.ts). */
export const editorSchema = z.strictObject({
  /** code-server's --user-data-dir here (default: code-server's own, ~/.local/share/code-server of the user the agent runs as) */
  userDataDir: absolutePath.optional(),
  /** code-server's --extensions-dir here (default <userDataDir>/extensions, code-server's own) */
  extensionsDir: absolutePath.optional(),
  /** the user data dir on the other side (the standby, or a granted target; default: userDataDir) */
  remoteUserDataDir: absolutePath.optional(),
  /** the extensions dir on the other side (default: <remoteUserDataDir>/extensions) */
  remoteExtensionsDir: absolutePath.optional(),
}, { error: 'an object {userDataDir, extensionsDir, remoteUserDataDir, remoteExtensionsDir}' })
  .transform((e) => {
    const userDataDir = e.userDataDir ?? defaultCodeServerDataDir();
    const remoteUserDataDir = e.remoteUserDataDir ?? userDataDir;
    return {
      userDataDir,
      extensionsDir: e.extensionsDir ?? join(userDataDir, 'extensions'),
      remoteUserDataDir,
      remoteExtensionsDir: e.remoteExtensionsDir ?? join(remoteUserDataDir, 'extensions'),
    };
  });

export const deleteGuardSchema = z.strictObject({
  /** hold a pass that would delete more than this share of the standby's files (default 0.5) */
  fraction: z.number({ error: 'a share between 0 and 1' }).gt(0, { error: 'a share above 0' }).max(1, { error: 'a share of at most 1' }).default(0.5),
  /** ...but never hold a pass deleting fewer than this many files (default 50) */
  minFiles: z.number({ error: 'a count of files' }).int({ error: 'a whole count of files' }).min(0, { error: 'a count of files, 0 or more' }).default(50),
}, { error: 'an object {fraction, minFiles}' });

export const syncSchema = z.strictObject({
  /** a pass starts once the tree has been quiet this long, in ms (default 250) */
  delayMs: ms('sync.delayMs', 0, 60_000).default(250),
  /** the longest a change waits for the standby under a busy stream, pass included, in ms (default 1000, or delayMs if larger) */
  maxDelayMs: ms('sync.maxDelayMs', 0, 600_000).optional(),
  /** rsync exclude patterns, added to the defaults unless defaultExcludes is false */
  exclude: flagList(z.array(z.string({ error: 'an rsync pattern string' }), { error: 'a list of rsync patterns' })).default([]),
  /** use DEFAULT_EXCLUDES too (default true) */
  defaultExcludes: flagBoolean(z.boolean({ error: 'true or false' })).default(true),
  /** extra roots synced beside the workspace */
  paths: z.array(extraRootSchema, { error: 'a list of {local, remote} folders' }).default([]),
  /** full reconcile period in seconds (default 600; 0 = only at start and after errors) */
  fullResyncS: z.number({ error: 'a number of seconds' }).min(0, { error: 'a number of seconds, 0 or more' }).default(600),
  /** rsync's I/O timeout in seconds: a stalled link fails the pass instead of hanging (default 30) */
  ioTimeoutS: z.number({ error: 'a number of seconds 1-3600' }).int({ error: 'whole seconds 1-3600' }).min(1, { error: 'a number of seconds 1-3600' }).max(3600, { error: 'a number of seconds 1-3600' }).default(30),
  /** retry backoff after a failed pass: first wait and cap, in ms (defaults 500 and 30000) */
  retryMinMs: ms('sync.retryMinMs', 10, 600_000).default(500),
  retryMaxMs: ms('sync.retryMaxMs', 10, 3_600_000).default(30_000),
  deleteGuard: deleteGuardSchema.default({ fraction: 0.5, minFiles: 50 }),
}, { error: 'an object of sync settings' })
  .refine((s) => s.maxDelayMs === undefined || s.maxDelayMs >= s.delayMs, { error: 'sync.maxDelayMs to be at least sync.delayMs', path: ['maxDelayMs'] })
  .transform((s) => ({ ...s, maxDelayMs: s.maxDelayMs ?? Math.max(1000, s.delayMs) }));

const agentProxySchema = z.strictObject({
  /** the proxy's agent socket, e.g. wss://proxy.example.com/_standby/agent */
  url: urlWith(['ws:', 'wss:'], 'a ws:// or wss:// URL'),
  /** this host's agent token, as the proxy's config gives it (or tokenFile) */
  token: token.optional(),
  /** a file holding the agent token (one line, mode 0600), read at every (re)connect: replacing it rotates the token without a restart */
  tokenFile: absolutePath.optional(),
  /** heartbeat period, ms (default 500; the proxy's detector.heartbeatIntervalMs should match) */
  heartbeatIntervalMs: ms('proxy.heartbeatIntervalMs', 50, 60_000).default(500),
  /** a CA file to trust for wss:// (e.g. a self-signed proxy certificate) */
  caFile: absolutePath.optional(),
}, { error: 'an object {url, token}' })
  .refine((p) => (p.token === undefined) !== (p.tokenFile === undefined), { error: 'either proxy.token or proxy.tokenFile (one of them)', path: ['token'] });

/** code-server on this host, probed for the heartbeat */
const codeServerSchema = z.strictObject({
  /** its health URL, e.g. http://127.0.0.1:8080/healthz */
  url: z.string({ error: 'an http:// URL' }).url({ error: 'an http:// URL' }),
}, { error: 'an object {url}' });

/** Where preemption notices come from on this host (the proxy turns one into a planned failover). */
const noticesSchema = z.strictObject({
  /** wait on GCP's metadata instance/preempted: true, false, or "auto" (when this host is a GCP VM; default) */
  gcpMetadata: z.union([z.boolean(), z.literal('auto')], { error: 'true, false or "auto"' }).default('auto'),
  /** the metadata URL (tests serve their own) */
  gcpMetadataUrl: z.string({ error: 'an http:// URL' }).url({ error: 'an http:// URL' }).default(GCP_PREEMPTED_URL),
  /** take SIGTERM as the notice a container runtime sends before it stops the GPU: report it and wait to be fenced before exiting (default false: under systemd SIGTERM is an ordinary stop) */
  stopSignal: flagBoolean(z.boolean({ error: 'true or false' })).default(false),
  /** how long SIGTERM waits for the proxy's planned failover, ms (default 25000; a runtime's grace period is often 30 s) */
  stopGraceMs: ms('notices.stopGraceMs', 0, 600_000).default(25_000),
}, { error: 'an object of notice settings' });

/** The host's user processes the proxy may freeze (a switch back's final pass: nothing writes during it); agent/freeze.ts. */
export const freezeSchema = z.strictObject({
  /** a cgroup v2 folder whose cgroup.freeze is written, e.g. /sys/fs/cgroup/system.slice/code-server@dev.service (the preferred way: the kernel stops the whole unit at once) */
  cgroup: absolutePath.optional(),
  /** files holding one pid each (code-server's, the workspace server's): that process and its descendants get SIGSTOP / SIGCONT */
  pidFiles: flagList(z.array(absolutePath, { error: 'a list of absolute paths' })).default([]),
  /** a freeze lifts itself after this long, ms, should the proxy never lift it (default 30000; a request may say less or more) */
  maxMs: ms('freeze.maxMs', 100, 600_000).default(30_000),
}, { error: 'an object {cgroup, pidFiles, maxMs}' })
  .refine((f) => f.cgroup !== undefined || f.pidFiles.length > 0, { error: 'freeze.cgroup or freeze.pidFiles (at least one): what to freeze', path: ['cgroup'] });

/**
 * What this host runs when a recovery switches back to it (agent/resume.ts): its own config or workspace
 * says, never the proxy. `command` (sh -c, in the workspace), else the executable `file` in the workspace
 * when present.
 */
export const resumeSchema = z.strictObject({
  /** a shell command, run with sh -c in the workspace, e.g. "python train.py --resume latest" */
  command: z.string({ error: 'a shell command string' }).min(1, { error: 'a non-empty shell command' }).max(16_384, { error: 'a shell command of at most 16384 characters' }).optional(),
  /** an executable file, relative to the workspace, run when `command` is absent and the file is there (default .standby/resume) */
  file: z.string({ error: 'a path relative to the workspace' }).min(1, { error: 'a path relative to the workspace' })
    .refine((f) => !f.startsWith('/') && !f.split('/').includes('..'), { error: 'a path inside the workspace (relative, no ..)' })
    .default('.standby/resume'),
  /** the command is killed (its process group, SIGTERM then SIGKILL) after this many seconds; 0 = no limit (default 0) */
  timeoutS: z.number({ error: 'a number of seconds' }).min(0, { error: 'a number of seconds, 0 or more' }).default(0),
  /** its output (stdout and stderr, appended, mode 0600); default <runDir>/resume.log */
  logFile: absolutePath.optional(),
}, { error: 'an object {command, file, timeoutS, logFile}' });

export const agentConfigSchema = z.strictObject({
  /** this host's id, as the proxy knows it */
  hostId: flagString(z.string({ error: 'a host id string' }).min(1, { error: 'a non-empty host id' })),
  /** the folder mirrored to the standby (default /workspace) */
  workspace: absolutePath.default('/workspace'),
  /** the configured standby the copy goes to; optional under a proxy, whose grants may name a target instead (a restore to a new GPU) */
  standby: standbyTargetSchema.optional(),
  /** the private key the agent writes to a granted target with (default: standby.identityFile; without either, ssh's own choice) */
  identityFile: absolutePath.optional(),
  sync: syncSchema.default(() => syncSchema.parse({})),
  /** local status endpoint, loopback only (default 127.0.0.1:7611; port 0 picks a free one) */
  status: z.strictObject({
    host: z.enum(['127.0.0.1', '::1', 'localhost'], { error: 'a loopback address (127.0.0.1, ::1 or localhost)' }).default('127.0.0.1'),
    port: z.number({ error: 'a port number 0-65535' }).int({ error: 'a port number 0-65535' }).min(0, { error: 'a port number 0-65535' }).max(65535, { error: 'a port number 0-65535' }).default(7611),
  }, { error: 'an object {host, port}' }).default({ host: '127.0.0.1', port: 7611 }),
  /** where the agent keeps its ssh control socket (default: the temp folder's standby-ssh/) */
  runDir: absolutePath.optional(),
  /** the failover proxy: heartbeats, and nothing is pushed until it grants primary */
  proxy: agentProxySchema.optional(),
  codeServer: codeServerSchema.optional(),
  /** code-server's settings, keybindings, snippets, tasks, unsaved-editor backups and extensions synced beside the workspace (none: not synced) */
  editor: editorSchema.optional(),
  notices: noticesSchema.default(() => noticesSchema.parse({})),
  /** what a freeze request stops (none: the agent answers that it has nothing to freeze) */
  freeze: freezeSchema.optional(),
  /** what runs here after a recovery switches back to this host (default: the workspace's .standby/resume, if any) */
  resume: resumeSchema.default(() => resumeSchema.parse({})),
  logLevel,
}).refine((c) => c.standby !== undefined || c.proxy !== undefined, {
  error: 'a standby section (where the copy goes) or a proxy section (whose grants name where it goes): an agent with neither standby nor proxy has nowhere to sync',
  path: ['standby'],
});

export type AgentConfig = z.output<typeof agentConfigSchema>;
/** How the agent reaches a receiver over ssh, and where root 0 lands there: the configured standby, or a granted target in the same shape (agent/push-destination.ts). */
export type StandbyTarget = NonNullable<AgentConfig['standby']>;
export type SyncSettings = AgentConfig['sync'];
export type FreezeSettings = NonNullable<AgentConfig['freeze']>;
export type ResumeSettings = AgentConfig['resume'];

/** A folder synced to the standby: the workspace is root 0, then sync.paths, then the editor's (editor section). */
export interface SyncRoot {
  local: string;
  remote: string;
  /** only these paths of the root are synced (names at its top; a trailing "/" is a folder and all it holds); undefined: all of it */
  include?: readonly string[];
}

export type { EditorDirs };

/**
 * The editor's roots, when agent.json has an editor section: code-server's User folder (only
 * EDITOR_USER_FILES) and its extensions folder. `remote`: the destination's folders, when it names
 * them (a granted target); default the editor section's remote ones.
 */
export function editorRoots(config: AgentConfig, remote?: EditorDirs): SyncRoot[] {
  const e = config.editor;
  if (!e) return [];
  const there = remote ?? { userDataDir: e.remoteUserDataDir, extensionsDir: e.remoteExtensionsDir };
  return [
    { local: join(e.userDataDir, 'User'), remote: join(there.userDataDir, 'User'), include: EDITOR_USER_FILES },
    { local: e.extensionsDir, remote: there.extensionsDir },
  ];
}

/**
 * The roots as one destination takes them: the workspace lands in
 * `workspaceRemote` (a granted target's path; default standby.path), sync.paths
 * keep their remote paths on any destination, the editor's go to
 * `editorRemote` when the destination names its code-server folders. Without a
 * standby section the caller names where root 0 goes (there is no default).
 */
export function syncRoots(config: AgentConfig, workspaceRemote: string | undefined = config.standby?.path, editorRemote?: EditorDirs): SyncRoot[] {
  if (workspaceRemote === undefined) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'this agent has no standby section, and no target was named: there is nowhere to sync the workspace to. Add a standby section to agent.json, or let the proxy grant a target', {});
  }
  return [{ local: config.workspace, remote: workspaceRemote }, ...config.sync.paths, ...editorRoots(config, editorRemote)];
}

/** The folders synced from this host (what is watched): the workspace, then sync.paths' local folders, then the editor's. */
export function localRoots(config: AgentConfig): Pick<SyncRoot, 'local' | 'include'>[] {
  return [{ local: config.workspace }, ...config.sync.paths.map((p) => ({ local: p.local })), ...editorRoots(config).map(({ local, include }) => (include ? { local, include } : { local }))];
}

/** The private key the agent writes to a granted target with: identityFile, else standby.identityFile (undefined: ssh's own choice). */
export function writeIdentityOf(config: AgentConfig): string | undefined {
  return config.identityFile ?? config.standby?.identityFile;
}

/** The rsync exclude patterns in force: the defaults (unless turned off), then the user's. */
export function excludesOf(config: AgentConfig): string[] {
  return [...(config.sync.defaultExcludes ? DEFAULT_EXCLUDES : []), ...config.sync.exclude];
}
