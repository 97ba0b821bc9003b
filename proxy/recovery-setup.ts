// Builds the recovery (proxy/recovery.ts) from proxy.json's `recovery`
// section: the GPU provider it names, the first-boot script a new GPU runs,
// and the SSH requests the proxy makes of a new GPU's receiver with its
// fencing key (fence at the epoch; authorize the standby agent's key).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { workspaceId } from '../config/recovery.ts';
import type { ProxyConfig } from '../config/proxy.ts';
import { StandbyError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { quoteWord } from '../protocol/command-words.ts';
import type { AgentHub } from './agent-hub.ts';
import type { Failover } from './failover.ts';
import { authorizeConflictsOnStandby, authorizeOnStandby, fenceStandby, type FenceTarget } from './fence.ts';
import type { HostAdmin } from './host-admin.ts';
import { gpuOnstart } from './provision/gpu-onstart.ts';
import { LOCAL_EDITOR_DIRS, LocalProvider, localBaseDir } from './provision/local.ts';
import { sshHandshake } from './provision/ssh-wait.ts';
import { GcpStandbyProvider } from './provision/gcp.ts';
import { parseHostName, type GpuProvider, type GpuRequirements, type HostName, type ProvisionedHost, type StandbyProvider, type StandbySpec } from './provision/provider.ts';
import { StandbyKeeper } from './provision/standby-keeper.ts';
import { VastProvider, vastRequirements } from './provision/vast.ts';
import { Recovery } from './recovery.ts';
import type { ConflictsCollected, GpuRecord, RecoveryHost } from './state.ts';
import type { StateStore } from './state-store.ts';

export interface RecoverySetup {
  recovery: Recovery;
  /** the local provider, when it is the one (the demo and tests reach its hosts) */
  local: LocalProvider | undefined;
  /** the standby's watch, when recovery.standby names its provider and id (started by watchStandby) */
  keeper: StandbyKeeper | undefined;
  /** starts watching the standby machine through its provider (recovery.standby.id): started again when preempted */
  watchStandby(): Promise<void>;
  close(): Promise<void>;
}

export interface RecoveryContext {
  /** the settings in force, read when they are needed: autoRecovery, the GPU search's and the next standby's may change live (proxy/live-settings.ts) */
  readonly config: ProxyConfig & { recovery: NonNullable<ProxyConfig['recovery']> };
  store: StateStore;
  hub: AgentHub;
  hosts: HostAdmin;
  failover: Failover;
  /** the URL hosts reach this proxy by (publicUrl, or the listen address) */
  publicUrl: () => string | undefined;
  log: Logger;
}

/**
 * The local provider's first-boot script: the agent installed under the host's folder through the real
 * installer, enrolled with the one-time invitation (its key goes onto the standby, its own token comes
 * back), then started in the foreground (the provider owns it; on a real host systemd would).
 */
export function localOnstart(proxyUrl: string, invitation: string, { editor = false }: { editor?: boolean } = {}): string {
  // with the provider's `editor`: code-server's folders under the host's (LocalProvider), synced to where the standby's receiver keeps its own
  const editorFlags = editor ? ` --editor-data-dir "$STANDBY_HOST_DIR/${LOCAL_EDITOR_DIRS.userDataDir}" --editor-extensions-dir "$STANDBY_HOST_DIR/${LOCAL_EDITOR_DIRS.extensionsDir}"` : '';
  return [
    'set -eu',
    'root="$STANDBY_HOST_DIR/root"',
    `STANDBY_TOKEN=${quoteWord(invitation)} "$STANDBY_PROGRAM" install agent --root "$root" --proxy ${quoteWord(proxyUrl)} --workspace "$STANDBY_HOST_DIR/workspace"${editorFlags} --no-start`,
    `exec "$STANDBY_PROGRAM" agent --config "$root/etc/standby/agent.json" --status.port 0 --runDir "$STANDBY_HOST_DIR/agent-run"`,
    '',
  ].join('\n');
}

/** The GPU provider the recovery section names. */
function gpuProvider(ctx: RecoveryContext, local: LocalProvider | undefined): { gpus: GpuProvider; image: string } {
  const r = ctx.config.recovery;
  if (r.gpu.provider === 'vast') return { gpus: new VastProvider(r.gpu.vast, ctx.log), image: r.gpu.vast.image };
  return { gpus: local!.gpu, image: 'local' };
}

/** What a GPU search asks for, from the settings in force when it starts (max price, min RAM, regions may change live). */
function gpuRequirements(r: RecoveryContext['config']['recovery']): GpuRequirements {
  return r.gpu.provider === 'vast' ? vastRequirements(r.gpu.vast) : { minGpuRamGb: 0, maxPricePerHour: 0, regions: [], diskGb: 1 };
}

export function setupRecovery(ctx: RecoveryContext): RecoverySetup {
  const { config, log } = ctx;
  const r = config.recovery;
  const fence = config.standby.ssh;
  // recovery.local as the provider takes it: the GPU side's and, without one, the standby watch's
  const newLocal = (): LocalProvider => new LocalProvider({
    baseDir: localBaseDir(r.local, config.stateDir),
    fenceKey: fencePublicKey(fence.identityFile),
    ...(r.local.program ? { program: r.local.program } : {}),
    startTimeoutMs: r.local.startTimeoutMs,
    ...(r.local.codeServer ? { codeServer: r.local.codeServer } : {}),
    ...(r.local.editor !== undefined ? { editor: r.local.editor } : {}),
    log,
  });
  const local = r.gpu.provider === 'local' ? newLocal() : undefined;
  const { gpus, image } = gpuProvider(ctx, local);
  const target = (host: ReceiverHost): FenceTarget => receiverTarget(config, host);
  const knownHostsOf = (h: ProvisionedHost): string[] => {
    if (!local) return [];
    const details = local.details(h.id);
    if (!details) return [];
    return readFileSync(details.knownHostsFile, 'utf8').split('\n').filter((l) => l.trim() !== '');
  };
  const configured: GpuRecord = { id: config.primary.id, url: config.primary.url, ...(config.primary.provider && config.primary.providerId ? { provider: config.primary.provider, providerId: config.primary.providerId } : {}) };
  const recovery = new Recovery({
    store: ctx.store,
    get settings() {
      return ctx.config.recovery;
    },
    workspace: workspaceId(r, config.primary.id),
    gpus,
    get requirements() {
      return gpuRequirements(ctx.config.recovery);
    },
    image,
    standbyId: config.standby.id,
    hub: ctx.hub,
    invite: (hostId, ttlMs) => ctx.hosts.invite(hostId, ttlMs).token,
    revoke: async (hostId, why) => {
      if (ctx.hosts.knows(hostId)) await ctx.hosts.revoke(hostId, why);
    },
    onstart: ({ hostId, invitation }: { hostId: string; invitation: string; name: HostName }) => {
      const url = ctx.publicUrl();
      if (url === undefined) throw new StandbyError('STANDBY_ERR_NO_PUBLIC_URL', 'a new GPU installs its agent from this proxy, which needs a URL hosts reach it by: set publicUrl in proxy.json', { field: 'publicUrl' });
      if (r.gpu.provider === 'local') return localOnstart(url, invitation, { editor: local!.editor });
      return gpuOnstart({ proxyUrl: url, invitation, hostId, workspace: '/workspace' });
    },
    reach: async (h, epoch) => {
      if (!h.ssh) throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `${h.id} has no SSH address yet`, { id: h.id });
      // the host key: the local host's own file, or the first one the handshake sees, pinned from then on
      const knownHosts = local ? knownHostsOf(h) : [(await sshHandshake(h.ssh, fence.timeoutMs)).knownHostsLine];
      await fenceStandby(target({ ssh: h.ssh, knownHosts }), epoch, { timeoutMs: fence.timeoutMs, waitMs: 0 });
      return { knownHosts };
    },
    authorize: (host: RecoveryHost, hostId, publicKey) => authorizeOnStandby(target(host), hostId, publicKey, { timeoutMs: fence.timeoutMs }),
    currentGpu: () => ctx.store.state.gpu ?? configured,
    switchBack: (gpu) => ctx.failover.recoverySwitchBack(gpu, { standbyId: config.standby.id, finalSyncMs: r.finalSyncMs, freezeMaxMs: r.freezeMaxMs, reason: 'recovery' }),
    retire: async (old) => {
      if (old.provider !== gpus.name || old.providerId === undefined) return `${old.id} was not made by the ${gpus.name} provider: stop it by hand if it still bills`;
      if (r.gpu.old === 'stop' && gpus.stop) {
        await gpus.stop(old.providerId);
        return `${old.id} stopped, its disk kept (${gpus.name} ${old.providerId})`;
      }
      await gpus.destroy(old.providerId);
      return `${old.id} destroyed (${gpus.name} ${old.providerId})${r.gpu.old === 'stop' ? `: the ${gpus.name} provider cannot stop a host` : ''}`;
    },
    collectConflicts: (old) => collectConflicts(ctx, old),
    log: log.child({ part: 'recovery' }),
  });
  const watch = new AbortController();
  let watching: Promise<void> | undefined;
  let ownLocal: LocalProvider | undefined;
  const setup: RecoverySetup = {
    recovery,
    local,
    keeper: undefined,
    async watchStandby() {
      const sb = r.standby;
      if (sb.provider === 'none' || sb.id === undefined) return;
      let provider: StandbyProvider;
      if (sb.provider === 'gcp') provider = await GcpStandbyProvider.create(sb.gcp, { log });
      else provider = (local ?? (ownLocal = newLocal())).standby;
      const parts = sb.id.split('/');
      const last = parts.pop() ?? '';
      const name = parseHostName(last) ?? { workspace: workspaceId(r, config.primary.id), epoch: 0 };
      const sshPublicKey = fencePublicKey(fence.identityFile);
      // read at each ensure: a standby made anew gets the machine settings in force then (they may change live);
      // its zone is the one its id names (gcp "zone/name"), so a changed zone never strands the stopped one
      const spec = (): StandbySpec => {
        const gcp = ctx.config.recovery.standby.gcp;
        return { name, zone: sb.provider === 'gcp' && parts.length > 0 ? parts.join('/') : gcp.zone, machineType: gcp.machineType, diskGb: gcp.diskGb, spot: gcp.spot, sshPublicKey, sshUser: fence.user };
      };
      const keeper = new StandbyKeeper({
        provider,
        spec,
        id: sb.id,
        intervalMs: sb.watchMs,
        log: log.child({ part: 'standby-keeper' }),
        onEvent: (e) => {
          if (e.kind === 'standby-down') ctx.store.append({ type: 'standby', kind: 'down', id: e.id, detail: e.detail, reason: `the standby is ${e.state}: no standby copy reachable until it runs again (${e.detail})` });
          else if (e.kind === 'standby-up') ctx.store.append({ type: 'standby', kind: 'up', id: e.id, detail: e.host.detail, downMs: e.downMs, windowMs: e.windowMs, recreated: e.recreated, reason: `the standby runs again after at most ${Math.round(e.windowMs / 1000)} s${e.recreated ? ': made anew, its copy empty until the GPU\'s agent resyncs it fully' : ''}` });
        },
      });
      setup.keeper = keeper;
      watching = keeper.run(watch.signal);
    },
    async close() {
      watch.abort();
      await watching;
      await recovery.close();
      await local?.close();
      await ownLocal?.close();
    },
  };
  return setup;
}

/** The fencing key's public line (identityFile.pub), which local hosts and a new standby authorize. */
function fencePublicKey(identityFile: string): string {
  try {
    return readFileSync(`${identityFile}.pub`, 'utf8').trim();
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `the proxy's fencing public key ${identityFile}.pub cannot be read (${(err as Error).message}); make it with ssh-keygen -y -f ${identityFile} > ${identityFile}.pub`, { file: `${identityFile}.pub` }, { cause: err });
  }
}

/** A new GPU's receiver as the proxy reaches it. */
interface ReceiverHost {
  ssh: { host: string; port: number; user: string };
  knownHosts: string[];
}

/** The fencing key's way into a new GPU's receiver, its host key pinned once seen (a known_hosts file under the state folder). */
function receiverTarget(config: ProxyConfig, host: ReceiverHost): FenceTarget {
  let knownHostsFile: string | undefined;
  if (host.knownHosts.length > 0) {
    const dir = join(config.stateDir, 'recovery-hosts');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    knownHostsFile = join(dir, `${host.ssh.host.replace(/[^A-Za-z0-9._-]/g, '_')}_${host.ssh.port}.known_hosts`);
    writeFileSync(knownHostsFile, host.knownHosts.join('\n') + '\n', { mode: 0o600 });
  }
  return { host: host.ssh.host, port: host.ssh.port, user: host.ssh.user, identityFile: config.standby.ssh.identityFile, ...(knownHostsFile ? { knownHostsFile } : {}) };
}

/** A conflicts folder's name: when (UTC, to the second) and whose, e.g. 20261205T091503Z-gpu-1. */
function conflictsName(hostId: string, now = new Date()): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${hostId}`;
}

/**
 * The unsent changes of the GPU that was left: if its agent is connected (fenced since the failover, so it
 * kept them), the standby's receiver opens a conflicts folder beside the workspace to its key alone, the
 * agent copies them there, and the proxy reports what landed. The key's line goes with the host's
 * revocation that follows (recovery.ts #retire). Resolves with why nothing was collected otherwise.
 */
async function collectConflicts(ctx: RecoveryContext, old: GpuRecord): Promise<ConflictsCollected | string> {
  const agent = ctx.hub.agents.get(old.id);
  if (!agent?.connected) return `${old.id}'s agent is not connected: nothing to collect from it (what it never synced is the failover's RPO)`;
  if (agent.fenced === undefined) return `${old.id}'s agent is not fenced for good: nothing collected from it`;
  const key = agent.publicKey ?? ctx.hosts.registry.get(old.id)?.key?.publicKey;
  if (key === undefined) return `${old.id}'s agent gave no public key (an agent older than this proxy): its unsent changes were not collected`;
  const ssh = ctx.config.standby.ssh;
  const folder = await authorizeConflictsOnStandby(ssh, old.id, key, conflictsName(old.id), { command: ssh.command, stateDir: ssh.stateDir, timeoutMs: ssh.timeoutMs });
  ctx.log.warn({ part: 'recovery', hostId: old.id, folder }, `recovery: ${old.id} is connected: its unsent changes go to ${folder} on the standby`);
  const answer = await ctx.hub.requestConflicts(old.id, folder, ctx.config.recovery.conflictsWaitS * 1000);
  if (!answer) return `${old.id}'s agent did not copy its unsent changes within ${ctx.config.recovery.conflictsWaitS} s (or its connection closed): see ${folder} on the standby for what landed`;
  return { folder, files: answer.files, bytes: answer.bytes, deletions: answer.deletions, paths: answer.paths, complete: answer.complete, error: answer.ok ? null : answer.error ?? 'failed' };
}

/** A switch back's fence also fences the new GPU's receiver: the standby's agent may push there no more. */
export async function fenceNewGpu(store: StateStore, config: ProxyConfig, epoch: number): Promise<void> {
  const host = store.state.recovery?.host;
  if (!host) return;
  const ssh = config.standby.ssh;
  await fenceStandby(receiverTarget(config, host), epoch, { timeoutMs: ssh.timeoutMs, waitMs: ssh.waitMs });
}
