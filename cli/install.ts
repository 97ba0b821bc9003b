// `standby install agent|standby|proxy` and `standby uninstall ROLE`: what
// install.sh runs after it unpacked the bundle. The work is in installer/.
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import type { RoleFlags } from '../installer/role-config.ts';
import type { CodeServerFlags } from '../installer/code-server-unit.ts';
import { CODE_SERVER_VERSION } from '../installer/code-server.ts';
import { ROLES, type Role } from '../installer/layout.ts';
import { runCommand } from './support/run-command.ts';

interface InstallArgs extends RoleFlags, CodeServerFlags {
  role: Role;
  root: string;
  start: boolean;
  agentKey?: string;
  agentKeyFile?: string;
  fenceKey?: string;
  fenceKeyFile?: string;
}

interface UninstallArgs {
  role: Role;
  root: string;
  purge: boolean;
}

const say = (line: string) => process.stdout.write(line + '\n');

const roleArg = { choices: ROLES, describe: 'agent (GPU host), standby (CPU standby) or proxy' } as const;
const rootOpt = { type: 'string', default: '/', describe: 'install under this prefix instead of / (tests use it; no user, no systemctl)' } as const;

export const installCommand: CommandModule<object, InstallArgs> = {
  command: 'install <role>',
  describe: 'install agent, standby or proxy on this machine (what install.sh runs); a second run upgrades and keeps config and keys',
  builder: (y: Argv) =>
    y
      .positional('role', roleArg)
      .option('root', rootOpt)
      .option('start', { type: 'boolean', default: true, describe: 'systemctl enable --now the unit (--no-start skips it)' })
      .group(['proxy', 'token', 'host-id', 'standby-host', 'standby-port', 'standby-user', 'standby-path', 'workspace', 'editor-data-dir', 'editor-extensions-dir', 'editor', 'standby-editor-data-dir', 'standby-editor-extensions-dir'], 'agent:')
      .option('proxy', { type: 'string', describe: "the proxy's URL, e.g. https://proxy.example.com (agent; standby: the fencing key is fetched from it unless --fence-key is given; install.sh passes it)" })
      .option('token', { type: 'string', describe: "this host's agent token; prefer STANDBY_TOKEN in the environment (agent; proxy: primary.agentToken, generated if absent)" })
      .option('host-id', { type: 'string', describe: "this host's id as the proxy knows it (default: the host name)" })
      .option('standby-host', { type: 'string', describe: 'the CPU standby host (agent: where to sync; proxy: where to fence)' })
      .option('standby-port', { type: 'number', describe: 'its ssh port (default 22)' })
      .option('standby-user', { type: 'string', describe: 'its ssh user (default root)' })
      .option('standby-path', { type: 'string', describe: 'the workspace copy on the standby (default: --workspace)' })
      .option('editor-data-dir', { type: 'string', describe: "agent and standby: code-server's --user-data-dir, whose settings, keybindings, snippets, unsaved-editor backups and extensions are synced (the same path on both hosts; default code-server's own for the workspace folder's owner, ~/.local/share/code-server; none under --root without it)" })
      .option('editor-extensions-dir', { type: 'string', describe: "agent and standby: code-server's --extensions-dir (default <editor-data-dir>/extensions)" })
      .option('editor', { type: 'boolean', describe: "agent and standby: sync code-server's folders (--no-editor: do not)" })
      .option('standby-editor-data-dir', { type: 'string', describe: "agent: code-server's --user-data-dir on the standby, where it is not the same path as here (default --editor-data-dir)" })
      .option('standby-editor-extensions-dir', { type: 'string', describe: "agent: code-server's --extensions-dir on the standby (default <standby-editor-data-dir>/extensions)" })
      .option('workspace', { type: 'string', describe: 'the workspace folder (default /workspace; standby: where the copy lands, ROOT/workspace by default under --root)' })
      .group(['code-server', 'code-server-from', 'code-server-listen', 'code-server-user'], 'agent and standby, code-server:')
      .option('code-server', { type: 'boolean', default: true, describe: `install code-server ${CODE_SERVER_VERSION} and its unit standby-code-server.service (--no-code-server: leave code-server to you); one already on PATH or answering on --code-server-listen is used as it is` })
      .option('code-server-from', { type: 'string', describe: `where code-server comes from: a folder (an unpacked release, or an npm install) or a release tarball URL (default the GitHub release of ${CODE_SERVER_VERSION}; under --root nothing is installed without it)` })
      .option('code-server-listen', { type: 'string', describe: 'HOST:PORT code-server listens on (default 127.0.0.1:8080; it has no auth of its own: an address only the proxy reaches)' })
      .option('code-server-user', { type: 'string', describe: "the user code-server runs as (default the workspace folder's owner)" })
      .group(['agent-key', 'agent-key-file', 'fence-key', 'fence-key-file'], 'standby:')
      .option('agent-key', { type: 'string', describe: "the agent's public key line, authorized by hand (optional: the proxy authorizes writers through its fencing key); it may only run `standby receive` into --workspace" })
      .option('agent-key-file', { type: 'string', describe: 'the same, from a file' })
      .option('fence-key', { type: 'string', describe: "the proxy's public key line (default: fetched from --proxy); it may only fence and add or remove writer entries" })
      .option('fence-key-file', { type: 'string', describe: 'the same, from a file' })
      .group(['listen', 'public-url', 'admin-token', 'gpu-id', 'gpu-url', 'standby-id', 'standby-url', 'standby-key', 'tls-cert', 'tls-key'], 'proxy:')
      .option('listen', { type: 'string', describe: 'HOST:PORT to listen on (default 127.0.0.1:8888)' })
      .option('public-url', { type: 'string', describe: 'the URL the GPU and the standby reach the proxy by, e.g. https://proxy.example.com (publicUrl; default: the --listen address, required when that is 0.0.0.0 or ::)' })
      .option('admin-token', { type: 'string', describe: 'the admin API token; prefer STANDBY_ADMIN_TOKEN (generated if absent)' })
      .option('gpu-id', { type: 'string', describe: "the GPU host's id (default gpu-1)" })
      .option('gpu-url', { type: 'string', describe: "the GPU's code-server URL as the proxy reaches it" })
      .option('standby-id', { type: 'string', describe: "the standby's id (default cpu-1)" })
      .option('standby-url', { type: 'string', describe: "the standby's code-server URL" })
      .option('standby-key', { type: 'string', describe: 'private key the proxy fences with (default: one made in /etc/standby/keys)' })
      .option('tls-cert', { type: 'string', describe: 'PEM certificate for https' })
      .option('tls-key', { type: 'string', describe: 'PEM key for https' })
      .example('STANDBY_TOKEN=... $0 install agent --proxy https://proxy.example.com --standby-host cpu-1.example', 'on the GPU host')
      .example('$0 install standby --proxy https://proxy.example.com', "on the CPU standby (authorizes the proxy's fencing key)")
      .example('$0 install proxy --listen 0.0.0.0:8888 --public-url https://proxy.example.com:8888 --gpu-url http://10.0.0.5:8080 --standby-url http://10.0.0.6:8080 --standby-host 10.0.0.6', 'on the proxy machine')
      .strict() as unknown as Argv<InstallArgs>,
  handler: (argv: ArgumentsCamelCase<InstallArgs>) =>
    runCommand(async () => {
      const { installRole } = await import('../installer/install-role.ts');
      const { role, root, start, _: _rest, $0: _script, ...flags } = argv;
      const pick = Object.fromEntries(Object.entries(flags).filter(([k, v]) => !k.includes('-') && v !== undefined));
      await installRole({ ...pick, role, root, noStart: !start }, say);
      say(`standby install ${role}: done`);
    }, 'install'),
};

export const uninstallCommand: CommandModule<object, UninstallArgs> = {
  command: 'uninstall <role>',
  describe: 'remove what install laid down for a role (config and keys only with --purge; never the workspace)',
  builder: (y: Argv) =>
    y
      .positional('role', roleArg)
      .option('root', rootOpt)
      .option('purge', { type: 'boolean', default: false, describe: "also remove the role's config, keys and authorized_keys entries" })
      .strict() as unknown as Argv<UninstallArgs>,
  handler: (argv: ArgumentsCamelCase<UninstallArgs>) =>
    runCommand(async () => {
      const { uninstallRole } = await import('../installer/uninstall-role.ts');
      const removed = uninstallRole({ role: argv.role, root: argv.root, purge: argv.purge }, say);
      say(`standby uninstall ${argv.role}: removed ${removed.length} path(s)`);
    }, 'uninstall'),
};
