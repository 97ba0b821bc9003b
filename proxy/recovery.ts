// Recovery: after a failover, a new GPU through the configured provider, the
// standby's copy restored to it, and the switch back (DESIGN.md, "Switching
// back"; SPEC.md section 5). One try runs these steps, each logged durably
// (a `recovery` event, proxy/state.ts) before the next begins, each timed on
// the monotonic clock:
//   search      offers meeting the requirements (the provider retries 429/5xx, and says why none qualify)
//   intent      written BEFORE the create: a proxy restarted after it looks for the host by name (list)
//               instead of renting a second one
//   created     the provider's host runs
//   ssh-ready   its receiver answers over SSH, fenced at the failover's epoch
//   agent-ready its agent enrolled with a one-time invitation and heartbeats (granted fenced)
//   restore     the standby's agent is granted to push to it (route.ts), straight, no relay through here
//   restored    the standby's agent reports the new GPU level with the standby (its first full pass landed,
//               what the developer wrote since at most levelLagMs behind)
//   done        switched back (failover.ts recoverySwitchBack): freeze, final pass, new epoch, fence, route
//   old-gpu     the GPU that was left is destroyed (or kept, by config)
// A try that fails is rolled back (its host destroyed, its invitation or token revoked) and tried again
// after a pause, up to `attempts`; then `gave-up`, and the standby serves on. Nothing is left half made.
import type { RecoveryConfig } from '../config/recovery.ts';
import { StandbyError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { RecoveryStatus } from '../protocol/admin-api.ts';
import type { AgentHub } from './agent-hub.ts';
import type { Answer } from './failover.ts';
import { hostNameText, type GpuOffer, type GpuProvider, type GpuRequirements, type HostName, type ProvisionedHost } from './provision/provider.ts';
import type { ConflictsCollected, GpuRecord, NewEvent, RecoveryHost, RecoveryState, RecoveryStep } from './state.ts';
import type { StateStore } from './state-store.ts';
import { editorOfRoots } from '../protocol/receiver.ts';

export interface RecoveryDeps {
  store: StateStore;
  settings: RecoveryConfig;
  /** the workspace id hosts are named for (config/recovery.ts workspaceId) */
  workspace: string;
  gpus: GpuProvider;
  requirements: GpuRequirements;
  /** what a new GPU runs (the provider's image) */
  image: string;
  /** the standby's agent: it restores the new GPU */
  standbyId: string;
  hub: Pick<AgentHub, 'agents' | 'regrant'>;
  /** a one-time invitation for `hostId`, valid `ttlMs` */
  invite(hostId: string, ttlMs: number): string;
  /** takes back what `hostId` was given (an unused invitation, its token, its key on the standby) */
  revoke(hostId: string, why: string): Promise<void>;
  /** the first-boot script of a new GPU: installs its agent with the invitation and starts it (fenced) */
  onstart(o: { hostId: string; invitation: string; name: HostName }): string;
  /** fences the new GPU's receiver at `epoch` over SSH (the proxy's fencing key); resolves with its host key lines; rejects while it does not answer */
  reach(host: ProvisionedHost, epoch: number): Promise<{ knownHosts: string[] }>;
  /** authorizes the standby agent's key on the new GPU's receiver; resolves with the roots it takes */
  authorize(host: RecoveryHost, hostId: string, publicKey: string): Promise<{ roots: string[] }>;
  /** the GPU in service now (before the switch back: the one that was left) */
  currentGpu(): GpuRecord;
  /** the switch back to the new GPU (failover.ts recoverySwitchBack) */
  switchBack(gpu: GpuRecord): Promise<Answer>;
  /** the GPU that was left, once the new one serves: destroyed through its provider; resolves with what was done */
  retire(gpu: GpuRecord): Promise<string>;
  /**
   * before it goes: the unsent changes of the GPU that was left, copied by its agent (if it is connected) into
   * a conflicts folder beside the standby's workspace; resolves with what landed, or with why nothing was collected
   */
  collectConflicts(gpu: GpuRecord): Promise<ConflictsCollected | string>;
  log: Logger;
  /** how often the waits look again, ms (default 200) */
  pollMs?: number;
}


/** A try stops: the proxy closes (not a failure of the try). */
class Closing extends Error {
  override name = 'Closing';
}

const TERMINAL: ReadonlySet<RecoveryStep> = new Set(['gave-up', 'done', 'old-gpu']);

function msSince(t: number): number {
  return Math.round(performance.now() - t);
}

export class Recovery {
  #deps: RecoveryDeps;
  #abort = new AbortController();
  #running: Promise<void> | undefined;
  /** performance.now() when this process began the recovery it runs; undefined when it resumed one */
  #began: number | undefined;

  constructor(deps: RecoveryDeps) {
    this.#deps = deps;
  }

  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Starts a recovery for the standby that serves now (idempotent: one runs at a time); resumes one a previous run left. */
  begin(why: string): { accepted: boolean; why: string } {
    const s = this.#deps.store.state;
    if (this.#running) return { accepted: false, why: 'a recovery is already running' };
    if (s.active !== 'standby' || (s.phase !== 'failed_over' && s.phase !== 'recovering')) return { accepted: false, why: `the standby does not serve (phase ${s.phase}): nothing to recover from` };
    const resume = s.recovery && s.recovery.epoch === s.epoch && !TERMINAL.has(s.recovery.step) ? s.recovery : undefined;
    this.#deps.log.warn({ epoch: s.epoch, resume: resume?.step ?? null, why }, resume ? 'resuming the recovery a previous run left' : 'recovery: bringing a new GPU up');
    this.#began = resume ? undefined : performance.now();
    const run = this.#run(s.epoch, resume).catch((err: unknown) => {
      if (err instanceof Closing) this.#deps.log.info('recovery stopped: the proxy closes (a restarted proxy resumes it)');
      else this.#deps.log.error({ err }, 'recovery failed unexpectedly');
    }).finally(() => {
      if (this.#running === run) this.#running = undefined;
    });
    this.#running = run;
    return { accepted: true, why: resume ? `resuming (step ${resume.step})` : 'started' };
  }

  /**
   * A switch back a previous run left mid-way and the state machine finished at start (its fence and route
   * resumed from the log): the recovery's last steps, `done` and the old GPU's retirement, are logged now.
   */
  async finishSwitchedBack(): Promise<void> {
    const s = this.#deps.store.state;
    const r = s.recovery;
    if (!r?.host || r.step !== 'restored' || s.active !== 'primary' || s.gpu?.id !== r.host.id) return;
    this.#event({ epoch: r.epoch, attempt: r.attempt, provider: r.provider, name: r.name, step: 'done', host: r.host }, `switched back (finished by a restarted proxy): ${r.host.id} serves`);
    if (r.old) await this.#retire(r.old);
  }

  /** Where the recovery is: for status, the API and `standby status`. */
  view(): RecoveryStatus {
    const s = this.#deps.store.state;
    const r = s.recovery;
    const standby = this.#deps.hub.agents.get(this.#deps.standbyId)?.last?.sync;
    const restoring = r?.host && (r.step === 'restore' || r.step === 'restored') && standby?.target === r.host.id;
    return {
      configured: true,
      autoRecovery: this.#deps.settings.autoRecovery,
      provider: this.#deps.gpus.name,
      running: this.running,
      epoch: r?.epoch ?? null,
      attempt: r?.attempt ?? null,
      step: r?.step ?? null,
      newGpu: r?.host ? { id: r.host.id, url: r.host.url, providerId: r.host.providerId, ssh: `${r.host.ssh.user}@${r.host.ssh.host}:${r.host.ssh.port}`, pricePerHour: r.host.pricePerHour } : null,
      error: r?.error ?? null,
      restore: restoring && standby
        ? { files: standby.progress?.files ?? 0, bytes: standby.progress?.bytes ?? 0, totalFiles: standby.progress?.totalFiles ?? null, rateBps: standby.progress?.rateBps ?? 0, elapsedMs: standby.progress?.elapsedMs ?? 0, pending: standby.pending, ready: standby.ready }
        : null,
    };
  }

  /** Stops the running try where it is (the durable log keeps its place: a restarted proxy resumes it). */
  async close(): Promise<void> {
    this.#abort.abort(new Closing('the proxy closes'));
    await this.#running;
  }

  #event(e: Omit<Extract<NewEvent, { type: 'recovery' }>, 'type' | 'reason'>, reason: string): void {
    this.#deps.store.append({ type: 'recovery', ...e, ...(this.#began === undefined ? {} : { elapsedMs: msSince(this.#began) }), reason });
    this.#deps.log.info({ step: e.step, epoch: e.epoch, attempt: e.attempt, ...(e.ms !== undefined ? { ms: e.ms } : {}), ...(e.error ? { error: e.error } : {}) }, `recovery: ${reason}`);
  }

  #check(): void {
    if (this.#abort.signal.aborted) throw new Closing('the proxy closes');
  }

  async #pause(ms: number): Promise<void> {
    this.#check();
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#abort.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
    this.#check();
  }

  /** Polls `test` until it gives a value, or fails after `timeoutMs` with `what`. */
  async #until<T>(what: string, timeoutMs: number, test: () => Promise<T | undefined> | T | undefined): Promise<T> {
    const started = performance.now();
    let last: unknown;
    for (let i = 0; ; i++) {
      this.#check();
      try {
        const v = await test();
        if (v !== undefined) return v;
      } catch (err) {
        last = err;
      }
      if (performance.now() - started >= timeoutMs) {
        const why = last instanceof Error ? `: ${last.message}` : '';
        throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `${what} within ${Math.round(timeoutMs / 1000)} s${why}`, { timeoutMs });
      }
      await this.#pause(Math.min(this.#deps.pollMs ?? 200, 50 * 2 ** Math.min(i, 5)));
    }
  }

  async #run(epoch: number, resume: RecoveryState | undefined): Promise<void> {
    const { settings } = this.#deps;
    const first = resume?.attempt ?? 1;
    for (let attempt = first; attempt <= settings.attempts; attempt++) {
      const name: HostName = { workspace: this.#deps.workspace, epoch };
      const base = { epoch, attempt, provider: this.#deps.gpus.name, name: hostNameText(name) };
      const hostId = `${hostNameText(name)}-a${attempt}`;
      if (!(resume && attempt === first)) this.#event({ ...base, step: 'started' }, `try ${attempt} of ${settings.attempts}: a new GPU for epoch ${epoch} from ${this.#deps.gpus.name}`);
      try {
        await this.#attempt(base, name, hostId, attempt === first ? resume : undefined);
        return;
      } catch (err) {
        if (err instanceof Closing) throw err;
        const error = err instanceof Error ? err.message : String(err);
        await this.#rollback(name, hostId, error);
        this.#event({ ...base, step: 'failed', error }, `try ${attempt} failed: ${error}; rolled back`);
        if (this.#deps.store.state.active !== 'standby') return; // someone switched by hand meanwhile
        if (attempt < settings.attempts) await this.#pause(settings.retryDelayS * 1000);
      }
    }
    const last = this.#deps.store.state.recovery;
    this.#event({ epoch, attempt: settings.attempts, provider: this.#deps.gpus.name, name: hostNameText({ workspace: this.#deps.workspace, epoch }), step: 'gave-up', error: last?.error ?? 'every try failed' }, `gave up after ${settings.attempts} tries: the standby serves on (standby recover tries again)`);
  }

  /** One try, from its first step, or from where a previous run left it (`resume`). */
  async #attempt(base: { epoch: number; attempt: number; provider: string; name: string }, name: HostName, hostId: string, resume: RecoveryState | undefined): Promise<void> {
    const { settings, gpus } = this.#deps;
    // a host of this name already asked for (the intent was logged, then the proxy stopped): adopt it
    let host: ProvisionedHost | undefined;
    // provisioning: from the create call (or the adoption) to the host running with its addresses
    let provisionFrom = performance.now();
    if (resume && resume.step !== 'started' && resume.step !== 'search') {
      host = (await gpus.list(name.workspace, this.#abort.signal)).find((h) => h.name?.epoch === name.epoch && h.state !== 'gone');
      if (host) this.#deps.log.warn({ id: host.id, state: host.state }, 'recovery: found the GPU a previous run created: adopting it, not creating a second');
    }
    if (!host) {
      let t = performance.now();
      const found = await gpus.search(this.#deps.requirements, this.#abort.signal);
      this.#check();
      if (!found.ok) {
        this.#event({ ...base, step: 'search', ms: msSince(t), error: found.reason }, `no GPU: ${found.reason}`);
        throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', found.reason, { attempts: found.attempts });
      }
      const offer = found.offers[0] as GpuOffer;
      this.#event({ ...base, step: 'search', ms: msSince(t), offer: { id: offer.id, pricePerHour: offer.pricePerHour, gpuName: offer.gpuName, location: offer.location } }, `offer ${offer.id}: ${offer.gpuName} in ${offer.location} at $${offer.pricePerHour.toFixed(3)}/h`);
      const invitation = this.#deps.invite(hostId, (settings.provisionS + settings.sshWaitS + settings.agentWaitS) * 1000);
      this.#event({ ...base, step: 'intent' }, `creating ${hostNameText(name)} (its agent: ${hostId})`);
      t = performance.now();
      provisionFrom = t;
      host = await gpus.create(offer, { name, image: this.#deps.image, onstart: this.#deps.onstart({ hostId, invitation, name }), diskGb: this.#deps.requirements.diskGb }, this.#abort.signal);
      this.#deps.log.info({ id: host.id, ms: msSince(t) }, 'recovery: the provider accepted the create');
    }
    const id = host.id;
    const running = await this.#until(`${id} did not run`, settings.provisionS * 1000, async () => {
      const h = await gpus.get(id, this.#abort.signal);
      if (!h || h.state === 'gone' || h.state === 'failed') throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `${id} is ${h?.state ?? 'gone'} (${h?.detail ?? 'the provider no longer has it'})`, { id });
      return h.state === 'running' && h.ssh && h.url ? h : undefined;
    });
    const ssh = running.ssh!;
    const partial = { id: hostId, url: running.url!, provider: gpus.name, providerId: id, ssh, workspace: running.workspace ?? '/workspace', knownHosts: [] as string[], pricePerHour: running.pricePerHour ?? null };
    this.#event({ ...base, step: 'created', ms: msSince(provisionFrom), host: partial }, `${id} runs (ssh ${ssh.user}@${ssh.host}:${ssh.port})`);

    let t = performance.now();
    const reached = await this.#until(`${id}'s receiver did not answer over SSH`, settings.sshWaitS * 1000, () => this.#deps.reach(running, base.epoch));
    let newHost: RecoveryHost = { ...partial, knownHosts: reached.knownHosts };
    this.#event({ ...base, step: 'ssh-ready', ms: msSince(t), host: newHost }, `${id}'s receiver answers over SSH, fenced at epoch ${base.epoch}`);

    t = performance.now();
    await this.#until(`${hostId}'s agent did not enroll and connect`, settings.agentWaitS * 1000, () => {
      const a = this.#deps.hub.agents.get(hostId);
      return a?.connected && a.heartbeats > 0 ? true : undefined;
    });
    this.#event({ ...base, step: 'agent-ready', ms: msSince(t), host: newHost }, `${hostId}'s agent heartbeats (fenced until the switch back)`);

    t = performance.now();
    const publicKey = await this.#until(`the standby's agent (${this.#deps.standbyId}) did not connect with its key`, settings.agentWaitS * 1000, () => {
      const a = this.#deps.hub.agents.get(this.#deps.standbyId);
      return a?.connected ? a.publicKey : undefined;
    });
    const editor = editorOfRoots((await this.#deps.authorize(newHost, this.#deps.standbyId, publicKey)).roots);
    if (editor) newHost = { ...newHost, editor };
    this.#event({ ...base, step: 'restore', host: newHost }, `the standby's agent restores ${hostId}`);
    this.#deps.hub.regrant(this.#deps.standbyId);
    const restored = await this.#until(`the restore of ${hostId} did not finish`, settings.restoreS * 1000, () => {
      const a = this.#deps.hub.agents.get(this.#deps.standbyId);
      const sync = a?.connected ? a.last?.sync : undefined;
      if (sync?.target !== hostId) return undefined;
      if (sync.lastError && !sync.ready) this.#deps.log.debug({ error: sync.lastError }, 'recovery: the restore retries');
      // level: the first full pass landed and what the developer wrote since is at most levelLagMs behind (the final pass carries it)
      const behindMs = sync.pending === 0 ? 0 : sync.oldestPendingAgeMs ?? Infinity;
      return sync.ready && sync.lastError === null && behindMs <= settings.levelLagMs ? sync : undefined;
    });
    const old = this.#deps.currentGpu();
    this.#event({ ...base, step: 'restored', ms: msSince(t), host: newHost, old }, `${hostId} holds the standby's copy (watermark ${restored.watermark})`);

    const answer = await this.#deps.switchBack({ id: hostId, url: newHost.url, provider: gpus.name, providerId: id });
    if (!answer.accepted) throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `the switch back to ${hostId} failed: ${answer.why}`, { hostId });
    this.#event({ ...base, step: 'done', host: newHost }, `switched back: ${hostId} serves`);
    await this.#retire(old);
  }

  /** Undoes a failed try: the host of its name destroyed, its agent's credentials revoked. Errors are logged, not thrown (the try failed already). */
  async #rollback(name: HostName, hostId: string, error: string): Promise<void> {
    try {
      for (const h of await this.#deps.gpus.list(name.workspace, this.#abort.signal)) {
        if (h.name?.epoch === name.epoch && h.state !== 'gone') await this.#deps.gpus.destroy(h.id, this.#abort.signal);
      }
    } catch (err) {
      this.#deps.log.error({ err, name: hostNameText(name) }, 'recovery: rolling back, the half-made GPU could not be destroyed: destroy it by hand');
    }
    await this.#deps.revoke(hostId, `recovery try failed: ${error}`).catch((err: unknown) => this.#deps.log.error({ err, hostId }, 'recovery: rolling back, the new host\'s credentials could not be revoked'));
  }

  /**
   * After the switch back: what the GPU that was left never got onto the standby is copied beside the
   * standby's workspace (its agent, if connected, fenced since the failover), then the host goes
   * (destroyed, or kept by config) and its credentials for good; logged as `old-gpu`.
   */
  async #retire(old: GpuRecord): Promise<void> {
    const s = this.#deps.store.state;
    const r = s.recovery;
    if (!r || r.step !== 'done') return;
    let conflicts: ConflictsCollected | undefined;
    let found: string;
    try {
      const c = await this.#deps.collectConflicts(old);
      if (typeof c === 'string') found = c;
      else {
        conflicts = c;
        const unknown = c.complete ? '' : ` (its agent restarted since its last pass to the standby: what it changed before that restart is not known; look at ${old.id} itself)`;
        found = c.files + c.deletions === 0 && c.error === null
          ? `${old.id} had nothing unsent${unknown}`
          : `${old.id}'s unsent changes: ${c.files} files (${c.bytes} bytes) copied to ${c.folder} on the standby, ${c.deletions} deletions listed${c.error ? `; the copy failed part way: ${c.error}` : ''}${unknown}`;
      }
    } catch (err) {
      found = `${old.id}'s unsent changes could not be collected: ${(err as Error).message}`;
      this.#deps.log.error({ err, id: old.id }, 'recovery: the unsent changes of the GPU that was left could not be collected');
    }
    let what: string;
    try {
      what = this.#deps.settings.gpu.old === 'keep' ? `${old.id} kept (recovery.gpu.old is keep)` : await this.#deps.retire(old);
    } catch (err) {
      what = `${old.id} could not be destroyed: ${(err as Error).message}; destroy it by hand`;
      this.#deps.log.error({ err, id: old.id }, 'recovery: the GPU that was left could not be destroyed');
    }
    // its agent's connection (fenced since the failover) closes; its key's lines go from the standby
    await this.#deps.revoke(old.id, `retired after the recovery from epoch ${r.epoch}`).catch((err: unknown) => this.#deps.log.error({ err, id: old.id }, "recovery: the retired GPU's credentials could not be revoked: standby hosts revoke it"));
    this.#event({ epoch: r.epoch, attempt: r.attempt, provider: r.provider, name: r.name, step: 'old-gpu', ...(conflicts ? { conflicts } : {}) }, `${found}; ${what}`);
  }
}
