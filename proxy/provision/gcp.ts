// The `gcp` standby provider: the CPU standby as a Compute Engine VM (a spot
// e2-medium by default), through the official @google-cloud/compute client
// over its REST transport. Every call is idempotent: the VM is named for the
// workspace and epoch (hostNameText) and labelled with both; a create carries
// a requestId so a retry after a lost answer gets the same operation, and a
// create that finds the name taken adopts the VM if it is ours. A spot VM's
// termination action is STOP, so a preemption stops it with its disk (the
// workspace copy) kept, and ensure() starts it again; the boot disk is
// auto-deleted with the VM, so destroy() leaves nothing billing.
//
// The client library is the proxy's alone (package.json optionalDependencies,
// left out of the hosts' bundle): it is loaded on first use, and its types are
// described here rather than imported (its protos.d.ts is 33 MB).
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Backoff } from '../../core/backoff.ts';
import { StandbyError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { requirePrivateFile } from '../../config/file.ts';
import type { GcpStandbyConfig } from '../../config/gcp-standby.ts';
import { standbyMonthlyCost } from './gcp-cost.ts';
import { hostNameText, parseHostName, type HostState, type ProvisionedHost, type StandbyProvider, type StandbySpec } from './provider.ts';

export { gcpStandbySchema, type GcpStandbyConfig } from '../../config/gcp-standby.ts';

/** What the provider needs beyond the config: where the API is (tests: the fake), the environment, timings. */
export interface GcpProviderOptions {
  /** the process environment to read credentials and project from (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** another API endpoint (tests: a loopback fake), e.g. { apiEndpoint: '127.0.0.1', port: 8123, protocol: 'http' } */
  endpoint?: { apiEndpoint: string; port: number; protocol: 'http' | 'https' };
  /** the retry backoff, ms (default 1000 doubling to 30000, jittered) */
  backoffMs?: { min: number; max: number };
  /** how often to look at a VM that is changing state, ms (default 2000) */
  pollMs?: number;
  log?: Logger;
}

// The parts of the client's shapes this file reads (google.cloud.compute.v1).
interface GAccessConfig { natIP?: string | null }
interface GInstance {
  name?: string | null;
  id?: string | null;
  status?: string | null;
  statusMessage?: string | null;
  machineType?: string | null;
  labels?: Record<string, string> | null;
  metadata?: { items?: { key?: string | null; value?: string | null }[] | null } | null;
  disks?: { boot?: boolean | null; diskSizeGb?: string | number | null }[] | null;
  networkInterfaces?: { accessConfigs?: GAccessConfig[] | null }[] | null;
  scheduling?: { provisioningModel?: string | null; instanceTerminationAction?: string | null } | null;
}
interface GOperation {
  name?: string | null;
  status?: string | null;
  operationType?: string | null;
  error?: { errors?: { code?: string | null; message?: string | null }[] | null } | null;
  httpErrorStatusCode?: number | null;
}
interface CallOptions { retry: null; timeout: number; signal?: AbortSignal; autoPaginate?: boolean }
type Lro = [{ latestResponse: GOperation }, ...unknown[]];
interface InstancesApi {
  get(req: { project: string; zone: string; instance: string }, o: CallOptions): Promise<[GInstance, ...unknown[]]>;
  list(req: { project: string; zone: string; filter?: string }, o: CallOptions): Promise<[GInstance[], ...unknown[]]>;
  insert(req: { project: string; zone: string; requestId: string; instanceResource: object }, o: CallOptions): Promise<Lro>;
  start(req: { project: string; zone: string; instance: string; requestId: string }, o: CallOptions): Promise<Lro>;
  stop(req: { project: string; zone: string; instance: string; requestId: string }, o: CallOptions): Promise<Lro>;
  delete(req: { project: string; zone: string; instance: string; requestId: string }, o: CallOptions): Promise<Lro>;
  close(): Promise<void>;
}
interface ZoneOperationsApi {
  wait(req: { project: string; zone: string; operation: string }, o: CallOptions): Promise<[GOperation, ...unknown[]]>;
  close(): Promise<void>;
}
type ClientClass<T> = new (opts: Record<string, unknown>) => T;
interface GoogleApiError extends Error { code?: number; httpStatusCode?: number }

const LABEL_WORKSPACE = 'standby_workspace';
const LABEL_EPOCH = 'standby_epoch';
const SPOT_SCHEDULING = { provisioningModel: 'SPOT', instanceTerminationAction: 'STOP', automaticRestart: false, onHostMaintenance: 'TERMINATE' };
const STANDARD_SCHEDULING = { provisioningModel: 'STANDARD', automaticRestart: true, onHostMaintenance: 'MIGRATE' };
// gRPC codes the REST transport reports without an HTTP status: the request never got an answer
const UNAVAILABLE = 14;
const DEADLINE_EXCEEDED = 4;
/** the longest one operations/wait call may hold (the API answers within 2 min) */
const WAIT_CALL_MS = 130_000;

/** What an operation error code means for the operator. */
const OPERATION_HINTS: Record<string, string> = {
  ZONE_RESOURCE_POOL_EXHAUSTED: 'the zone has no capacity for this machine now (common for spot VMs): retry later, or set another zone or spot: false',
  ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS: 'the zone has no capacity for this machine now (common for spot VMs): retry later, or set another zone or spot: false',
  QUOTA_EXCEEDED: "the project's quota is used up: raise it (IAM & Admin > Quotas) or choose a smaller machine type",
  RESOURCE_NOT_FOUND: 'a resource it names (image, network, machine or disk type) does not exist in this project or zone',
};

/** A service-account key or an authorized-user (gcloud ADC) file's JSON. */
interface CredentialsJson {
  type?: string;
  client_email?: string;
  private_key?: string;
  private_key_id?: string;
  client_id?: string;
  client_secret?: string;
  refresh_token?: string;
}

/**
 * The credentials from the environment: GOOGLE_APPLICATION_CREDENTIALS (a key
 * file, refused when group or others may read it) or else GCP_CREDENTIALS (the
 * JSON itself). Errors name the variable and never quote its content.
 */
export function gcpCredentialsFromEnv(env: NodeJS.ProcessEnv = process.env): { json: CredentialsJson; from: string } {
  const file = env['GOOGLE_APPLICATION_CREDENTIALS'];
  const inline = env['GCP_CREDENTIALS'];
  let text: string;
  let from: string;
  if (file) {
    from = `GOOGLE_APPLICATION_CREDENTIALS (${file})`;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new StandbyError('STANDBY_ERR_PROVIDER_AUTH', `GOOGLE_APPLICATION_CREDENTIALS names ${file}, which cannot be read (${code}): set it to the path of a service-account key file (JSON) the proxy's user can read`, { variable: 'GOOGLE_APPLICATION_CREDENTIALS', file });
    }
    requirePrivateFile(file, 'a GCP service-account key');
  } else if (inline) {
    from = 'GCP_CREDENTIALS';
    text = inline;
  } else {
    throw new StandbyError('STANDBY_ERR_PROVIDER_AUTH', 'no GCP credentials: set GOOGLE_APPLICATION_CREDENTIALS to the path of a service-account key file (JSON), or GCP_CREDENTIALS to the key itself; the account needs roles/compute.instanceAdmin.v1 in the project', { variable: 'GOOGLE_APPLICATION_CREDENTIALS' });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // no cause, no parser message: both quote the text, which is a private key
    throw new StandbyError('STANDBY_ERR_PROVIDER_AUTH', `${from} is not JSON: it must hold a service-account key as downloaded from IAM & Admin > Service accounts > Keys`, { variable: from.split(' ')[0] });
  }
  const c = (typeof json === 'object' && json !== null ? json : {}) as CredentialsJson;
  const ok = (c.type === 'service_account' && typeof c.client_email === 'string' && typeof c.private_key === 'string') || (c.type === 'authorized_user' && typeof c.client_id === 'string' && typeof c.client_secret === 'string' && typeof c.refresh_token === 'string');
  if (!ok) {
    throw new StandbyError('STANDBY_ERR_PROVIDER_AUTH', `${from} holds no usable credentials (type ${typeof c.type === 'string' ? JSON.stringify(c.type.slice(0, 40)) : 'missing'}): use a service-account key (type service_account, with client_email and private_key) or gcloud's application-default credentials (type authorized_user)`, { variable: from.split(' ')[0] });
  }
  return { json: c, from };
}

/** The project: the config's, else GCP_PROJECT_ID. */
export function gcpProjectFrom(config: { project?: string | undefined }, env: NodeJS.ProcessEnv = process.env): string {
  const project = config.project ?? env['GCP_PROJECT_ID'];
  if (!project) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'no GCP project: set GCP_PROJECT_ID (or recovery.standby.project) to the id of the project the standby runs in', { variable: 'GCP_PROJECT_ID' });
  if (!/^[a-z][-a-z0-9.:]{3,61}[a-z0-9]$/.test(project)) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `GCP_PROJECT_ID ${JSON.stringify(project.slice(0, 80))} is not a project id (lowercase letters, digits and "-", 6-63 characters)`, { variable: 'GCP_PROJECT_ID' });
  return project;
}

const COMPUTE = '@google-cloud/compute/build/src/v1/';

/** The client classes, loaded on first use (the package is the proxy's only; the deep paths load the two clients, not all ~100). */
async function loadLibrary(): Promise<{ Instances: ClientClass<InstancesApi>; ZoneOperations: ClientClass<ZoneOperationsApi>; auth: Record<string, new (o: Record<string, unknown>) => object> }> {
  try {
    const [i, z, a] = await Promise.all([import(`${COMPUTE}instances_client.js`), import(`${COMPUTE}zone_operations_client.js`), import('google-auth-library' as string)]);
    return { Instances: i.InstancesClient as ClientClass<InstancesApi>, ZoneOperations: z.ZoneOperationsClient as ClientClass<ZoneOperationsApi>, auth: a as Record<string, new (o: Record<string, unknown>) => object> };
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `the gcp provider needs @google-cloud/compute and google-auth-library, which only the proxy's install carries (the hosts' bundle leaves them out): run npm install in the proxy's checkout, or install the proxy role from it (${(err as Error).message})`, { provider: 'gcp' }, { cause: err });
  }
}

/** The auth client for the credentials, making no network call of its own for a service account (a self-signed JWT for Compute, as the client libraries do by default). */
function authClientFor(auth: Record<string, new (o: Record<string, unknown>) => object>, c: CredentialsJson): object {
  if (c.type === 'service_account') {
    const jwt = new auth['JWT']!({ email: c.client_email, key: c.private_key, keyId: c.private_key_id });
    // the audience of the self-signed token; what GoogleAuth sets for a GAPIC client
    (jwt as { defaultServicePath?: string }).defaultServicePath = 'compute.googleapis.com';
    return jwt;
  }
  const user = new auth['UserRefreshClient']!({ clientId: c.client_id, clientSecret: c.client_secret, refreshToken: c.refresh_token });
  return user;
}

export class GcpStandbyProvider implements StandbyProvider {
  readonly name = 'gcp';
  readonly project: string;
  #config: GcpStandbyConfig;
  #instances: InstancesApi;
  #operations: ZoneOperationsApi;
  #backoffMs: { min: number; max: number };
  #pollMs: number;
  #log: Logger | undefined;

  private constructor(config: GcpStandbyConfig, project: string, instances: InstancesApi, operations: ZoneOperationsApi, options: GcpProviderOptions) {
    this.#config = config;
    this.project = project;
    this.#instances = instances;
    this.#operations = operations;
    this.#backoffMs = options.backoffMs ?? { min: 1_000, max: 30_000 };
    this.#pollMs = options.pollMs ?? 2_000;
    this.#log = options.log;
  }

  /** Reads credentials and project (throwing a StandbyError that names the variable to set), loads the client; no API call yet. */
  static async create(config: GcpStandbyConfig, options: GcpProviderOptions = {}): Promise<GcpStandbyProvider> {
    const env = options.env ?? process.env;
    const project = gcpProjectFrom(config, env);
    const { json } = gcpCredentialsFromEnv(env);
    const lib = await loadLibrary();
    const authClient = authClientFor(lib.auth, json);
    const clientOptions: Record<string, unknown> = { fallback: true, authClient, projectId: project, ...(options.endpoint ?? {}) };
    return new GcpStandbyProvider(config, project, new lib.Instances({ ...clientOptions }), new lib.ZoneOperations({ ...clientOptions }), options);
  }

  async ensure(spec: StandbySpec, signal?: AbortSignal): Promise<ProvisionedHost> {
    const name = hostNameText(spec.name);
    const zone = spec.zone;
    checkSpec(spec);
    const deadline = performance.now() + this.#config.operationTimeoutMs;
    // bounded: a VM created, then gone again (its create failed after a lost answer), is tried once more
    for (let round = 0; round < 3; round++) {
      const inst = await this.#get(zone, name, signal);
      if (!inst) {
        await this.#insert(spec, name, signal);
        continue;
      }
      this.#checkOurs(zone, name, inst, spec);
      const status = inst.status ?? '';
      if (status === 'RUNNING' && natIp(inst)) return this.#host(zone, inst);
      if (status === 'SUSPENDED' || status === 'SUSPENDING') {
        throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `standby VM ${name} in ${zone} is ${status}: resume it (gcloud compute instances resume ${name} --zone ${zone}) or destroy it`, { provider: 'gcp', instance: name, zone, status });
      }
      if (status === 'TERMINATED' || status === 'STOPPED' || status === 'STOPPING') {
        // a preempted spot VM (or one stopped by hand): its disk holds the copy; start it again
        if (status === 'STOPPING') await this.#waitFor(zone, name, (i) => i !== undefined && (i.status === 'TERMINATED' || i.status === 'STOPPED'), 'to stop before it is started again', deadline, signal);
        this.#log?.info({ provider: 'gcp', instance: name, zone, status }, 'standby VM is stopped (a spot preemption?): starting it');
        await this.#operation('start', zone, name, (requestId, o) => this.#instances.start({ project: this.project, zone, instance: name, requestId }, o), signal);
      }
      const running = await this.#waitFor(zone, name, (i) => i === undefined || (i.status === 'RUNNING' && natIp(i) !== undefined), 'to run with an external IP', deadline, signal);
      if (running) return this.#host(zone, running);
    }
    throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `standby VM ${name} in ${zone} disappeared each time it was created: look at the project's activity log for what deletes it`, { provider: 'gcp', instance: name, zone });
  }

  async get(id: string, signal?: AbortSignal): Promise<ProvisionedHost | undefined> {
    const { zone, name } = this.#parseId(id);
    const inst = await this.#get(zone, name, signal);
    return inst ? this.#host(zone, inst) : undefined;
  }

  /** Every standby VM of `workspace` in `zone` (default the configured one), whatever its epoch: for reconciling after a restart. */
  async list(workspace: string, zone = this.#config.zone, signal?: AbortSignal): Promise<ProvisionedHost[]> {
    const label = workspace.toLowerCase();
    const [items] = await this.#call('list', () => this.#instances.list({ project: this.project, zone, filter: `labels.${LABEL_WORKSPACE} = "${label}"` }, this.#options(signal, { autoPaginate: true })), signal);
    return items.filter((i) => i.labels?.[LABEL_WORKSPACE] === label).map((i) => this.#host(zone, i));
  }

  async stop(id: string, signal?: AbortSignal): Promise<void> {
    const { zone, name } = this.#parseId(id);
    const deadline = performance.now() + this.#config.operationTimeoutMs;
    const inst = await this.#get(zone, name, signal);
    if (!inst || inst.status === 'TERMINATED' || inst.status === 'STOPPED') return;
    if (inst.status !== 'STOPPING') {
      const done = await this.#operation('stop', zone, name, (requestId, o) => this.#instances.stop({ project: this.project, zone, instance: name, requestId }, o), signal, true);
      if (done === 'gone') return;
    }
    await this.#waitFor(zone, name, (i) => i === undefined || i.status === 'TERMINATED' || i.status === 'STOPPED', 'to stop', deadline, signal);
  }

  async destroy(id: string, signal?: AbortSignal): Promise<void> {
    const { zone, name } = this.#parseId(id);
    const deadline = performance.now() + this.#config.operationTimeoutMs;
    const done = await this.#operation('delete', zone, name, (requestId, o) => this.#instances.delete({ project: this.project, zone, instance: name, requestId }, o), signal, true);
    if (done === 'gone') return;
    await this.#waitFor(zone, name, (i) => i === undefined, 'to be deleted', deadline, signal);
  }

  async close(): Promise<void> {
    await Promise.all([this.#instances.close(), this.#operations.close()]);
  }

  /** A host id: `zone/name` (a GCP instance name is unique per zone only); a bare name is in the configured zone. */
  #parseId(id: string): { zone: string; name: string } {
    const m = /^(?:([a-z][-a-z0-9]{0,62})\/)?([a-z][-a-z0-9]{0,62})$/.exec(id);
    if (!m) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `${JSON.stringify(id.slice(0, 100))} is not a gcp standby id (zone/instance-name)`, { provider: 'gcp' });
    return { zone: m[1] ?? this.#config.zone, name: m[2]! };
  }

  #options(signal: AbortSignal | undefined, extra: Partial<CallOptions> = {}, timeout = this.#config.callTimeoutMs): CallOptions {
    // retries are ours (#call), for every method alike, with the config's count
    return { retry: null, timeout, ...(signal ? { signal } : {}), ...extra };
  }

  /** One API call, retried on 429, 5xx and no answer, with backoff; 401/403 become STANDBY_ERR_PROVIDER_AUTH. */
  async #call<T>(what: string, fn: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    const backoff = new Backoff(this.#backoffMs.min, this.#backoffMs.max);
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      try {
        return await fn();
      } catch (err) {
        signal?.throwIfAborted();
        const e = err as GoogleApiError;
        const http = e.httpStatusCode;
        if (http === 401 || http === 403) {
          throw new StandbyError('STANDBY_ERR_PROVIDER_AUTH', `GCP refused ${what} (${http}): ${clip(e.message)}; check that GOOGLE_APPLICATION_CREDENTIALS or GCP_CREDENTIALS holds a valid key of an account with roles/compute.instanceAdmin.v1 in project ${this.project}`, { provider: 'gcp', call: what, httpStatus: http }, { cause: err });
        }
        const retryable = http === 429 || (http !== undefined && http >= 500) || (http === undefined && (e.code === UNAVAILABLE || e.code === DEADLINE_EXCEEDED));
        if (!retryable) throw err;
        if (attempt >= this.#config.apiRetries) {
          throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `GCP Compute ${what} failed ${attempt + 1} times, last: ${http ?? 'no answer'} ${clip(e.message)}; it is retried with backoff ${this.#config.apiRetries} times (recovery.standby.apiRetries)`, { provider: 'gcp', call: what, httpStatus: http, attempts: attempt + 1 }, { cause: err });
        }
        const wait = backoff.next();
        this.#log?.warn({ provider: 'gcp', call: what, httpStatus: http, attempt: attempt + 1, retryInMs: wait }, 'GCP Compute call failed; retrying');
        await sleep(wait, undefined, signal ? { signal } : {});
      }
    }
  }

  async #get(zone: string, name: string, signal: AbortSignal | undefined): Promise<GInstance | undefined> {
    try {
      const [inst] = await this.#call(`get ${name}`, () => this.#instances.get({ project: this.project, zone, instance: name }, this.#options(signal)), signal);
      return inst;
    } catch (err) {
      if ((err as GoogleApiError).httpStatusCode === 404) return undefined;
      throw err;
    }
  }

  async #insert(spec: StandbySpec, name: string, signal: AbortSignal | undefined): Promise<void> {
    const zone = spec.zone;
    const c = this.#config;
    const labels = { [LABEL_WORKSPACE]: spec.name.workspace.toLowerCase(), [LABEL_EPOCH]: String(spec.name.epoch), standby_role: 'standby' };
    const items = [
      { key: 'ssh-keys', value: `${spec.sshUser}:${spec.sshPublicKey.trim()}` },
      // only the key above logs in: project-wide keys do not reach the workspace copy
      { key: 'block-project-ssh-keys', value: 'TRUE' },
      ...(spec.startupScript ? [{ key: 'startup-script', value: spec.startupScript }] : []),
    ];
    const instanceResource = {
      name,
      machineType: `zones/${zone}/machineTypes/${spec.machineType}`,
      labels,
      // autoDelete: the disk goes with the VM on destroy; a preemption STOPs the VM, so the disk stays
      disks: [{ boot: true, autoDelete: true, initializeParams: { diskName: name, sourceImage: c.image, diskSizeGb: spec.diskGb, diskType: `zones/${zone}/diskTypes/${c.diskType}`, labels } }],
      networkInterfaces: [{ network: c.network, accessConfigs: [{ name: 'External NAT', type: 'ONE_TO_ONE_NAT' }] }],
      scheduling: spec.spot ? SPOT_SCHEDULING : STANDARD_SCHEDULING,
      metadata: { items },
      // no service account: the standby holds the workspace, not a key to the project
      serviceAccounts: [],
    };
    this.#log?.info({ provider: 'gcp', instance: name, zone, machineType: spec.machineType, spot: spec.spot, diskGb: spec.diskGb }, 'creating standby VM');
    const result = await this.#operation('insert', zone, name, (requestId, o) => this.#instances.insert({ project: this.project, zone, requestId, instanceResource }, o), signal, false, true);
    if (result === 'exists') this.#log?.info({ provider: 'gcp', instance: name, zone }, 'standby VM exists already (an earlier create went through): adopting it');
  }

  /**
   * Starts an operation (one requestId for all its retries, so a retry after a
   * lost answer is the same operation) and waits for it to be DONE; an
   * operation error becomes STANDBY_ERR_PROVIDER_FAILED with the codes.
   * `goneOk`: a 404 means done (stop/delete). `existsOk`: a 409 means done (insert).
   */
  async #operation(verb: string, zone: string, name: string, start: (requestId: string, o: CallOptions) => Promise<Lro>, signal: AbortSignal | undefined, goneOk = false, existsOk = false): Promise<'done' | 'gone' | 'exists'> {
    const requestId = randomUUID();
    let op: GOperation;
    try {
      const [lro] = await this.#call(`${verb} ${name}`, () => start(requestId, this.#options(signal)), signal);
      op = lro.latestResponse;
    } catch (err) {
      const http = (err as GoogleApiError).httpStatusCode;
      if (goneOk && http === 404) return 'gone';
      if (existsOk && http === 409) return 'exists';
      if (err instanceof StandbyError) throw err;
      throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `GCP refused to ${verb} standby VM ${name} in ${zone}: ${http ?? ''} ${clip((err as Error).message)}`, { provider: 'gcp', instance: name, zone, httpStatus: http }, { cause: err });
    }
    const deadline = performance.now() + this.#config.operationTimeoutMs;
    // bounded in time and count: each wait answers within ~2 min, or at once when DONE
    const timedOut = (last: GOperation) => new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `GCP operation ${last.name} (${verb} ${name} in ${zone}) did not end within ${this.#config.operationTimeoutMs} ms (recovery.standby.operationTimeoutMs); it is ${last.status}`, { provider: 'gcp', instance: name, zone, operation: last.name });
    for (let i = 0; op.status !== 'DONE'; i++) {
      if (performance.now() >= deadline || i >= 10_000) throw timedOut(op);
      const last = op;
      try {
        [op] = await this.#call(`wait for ${verb} ${name}`, async (): Promise<[GOperation, ...unknown[]]> => {
          // each try gets what is left of the deadline; a wait cut short by it is not an error of the API's
          const left = deadline - performance.now();
          if (left <= 0) return [last];
          return this.#operations.wait({ project: this.project, zone, operation: last.name ?? '' }, this.#options(signal, {}, Math.min(left, WAIT_CALL_MS)));
        }, signal);
      } catch (err) {
        if (performance.now() >= deadline && !signal?.aborted) throw timedOut(last);
        throw err;
      }
    }
    const errors = op.error?.errors ?? [];
    if (errors.length > 0) {
      const codes = errors.map((e) => e.code ?? 'UNKNOWN');
      if (goneOk && codes.every((c) => c === 'RESOURCE_NOT_FOUND')) return 'gone';
      if (existsOk && codes.every((c) => c === 'RESOURCE_ALREADY_EXISTS')) return 'exists';
      const hint = codes.map((c) => OPERATION_HINTS[c]).find((h) => h !== undefined);
      const text = errors.map((e) => `${e.code ?? 'UNKNOWN'}: ${clip(e.message ?? '')}`).join('; ');
      throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `GCP could not ${verb} standby VM ${name} in ${zone}: ${text}${hint ? ` (${hint})` : ''}`, { provider: 'gcp', instance: name, zone, operation: op.name, errorCodes: codes, httpStatus: op.httpErrorStatusCode ?? undefined });
    }
    this.#log?.info({ provider: 'gcp', instance: name, zone, operation: op.name, verb }, 'GCP operation done');
    return 'done';
  }

  /** Polls the VM until `done` holds for it (undefined: it is gone), bounded by `deadline` and a count. */
  async #waitFor(zone: string, name: string, done: (i: GInstance | undefined) => boolean, what: string, deadline: number, signal: AbortSignal | undefined): Promise<GInstance | undefined> {
    let last: GInstance | undefined;
    for (let i = 0; i < 100_000; i++) {
      last = await this.#get(zone, name, signal);
      if (done(last)) return last;
      if (performance.now() >= deadline) break;
      await sleep(this.#pollMs, undefined, signal ? { signal } : {});
    }
    throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `standby VM ${name} in ${zone} did not come ${what} within ${this.#config.operationTimeoutMs} ms (recovery.standby.operationTimeoutMs); it is ${last?.status ?? 'gone'}${last?.statusMessage ? `: ${clip(last.statusMessage)}` : ''}`, { provider: 'gcp', instance: name, zone, status: last?.status });
  }

  /** Refuses to adopt a VM of our name that another workspace or epoch (or a person) made. */
  #checkOurs(zone: string, name: string, inst: GInstance, spec: StandbySpec): void {
    const labels = inst.labels ?? {};
    if (labels[LABEL_WORKSPACE] !== spec.name.workspace.toLowerCase() || labels[LABEL_EPOCH] !== String(spec.name.epoch)) {
      throw new StandbyError('STANDBY_ERR_PROVIDER_FAILED', `a VM named ${name} exists in ${zone} but is not this standby (labels ${LABEL_WORKSPACE}=${labels[LABEL_WORKSPACE] ?? '-'}, ${LABEL_EPOCH}=${labels[LABEL_EPOCH] ?? '-'}): delete or rename it`, { provider: 'gcp', instance: name, zone });
    }
  }

  #host(zone: string, inst: GInstance): ProvisionedHost {
    const name = inst.name ?? '';
    const state = stateOf(inst.status ?? '');
    const ip = natIp(inst);
    const user = sshUserOf(inst);
    const spot = inst.scheduling?.provisioningModel === 'SPOT';
    const machineType = (inst.machineType ?? '').split('/').pop() ?? '';
    const boot = (inst.disks ?? []).find((d) => d.boot);
    const cost = standbyMonthlyCost({ machineType, diskGb: Number(boot?.diskSizeGb ?? this.#config.diskGb), diskType: this.#config.diskType, spot }, this.#config.prices);
    return {
      id: `${zone}/${name}`,
      provider: 'gcp',
      name: parseHostName(name),
      state,
      ssh: state === 'running' && ip && user ? { host: ip, port: 22, user } : undefined,
      pricePerHour: cost.known ? cost.perHour : undefined,
      detail: `${inst.status ?? 'UNKNOWN'}${inst.statusMessage ? `: ${inst.statusMessage}` : ''} (${spot ? 'spot ' : ''}${machineType} in ${zone})`,
    };
  }
}

function stateOf(status: string): HostState {
  switch (status) {
    case 'PROVISIONING':
    case 'STAGING':
    case 'REPAIRING':
      return 'creating';
    case 'RUNNING':
      return 'running';
    case 'STOPPING':
    case 'SUSPENDING':
      return 'stopping';
    case 'TERMINATED':
    case 'STOPPED':
    case 'SUSPENDED':
      return 'stopped';
    default:
      return 'failed';
  }
}

function natIp(inst: GInstance): string | undefined {
  for (const nic of inst.networkInterfaces ?? []) for (const ac of nic.accessConfigs ?? []) if (ac.natIP) return ac.natIP;
  return undefined;
}

/** The user of the ssh-keys entry we wrote ("user:key"). */
function sshUserOf(inst: GInstance): string | undefined {
  const entry = inst.metadata?.items?.find((i) => i.key === 'ssh-keys')?.value ?? '';
  const m = /^([a-z_][a-z0-9_-]{0,31}):/.exec(entry);
  return m ? m[1] : undefined;
}

/** The key and user go into instance metadata as one "user:key" line: nothing there may add a second line (another key). */
function checkSpec(spec: StandbySpec): void {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(spec.sshUser)) throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `standby ssh user ${JSON.stringify(spec.sshUser.slice(0, 40))} is not a Linux user name (lowercase letters, digits, "_" and "-", at most 32)`, { provider: 'gcp' });
  if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/.test(spec.sshPublicKey.trim())) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', 'the standby ssh public key is not one OpenSSH public key line ("ssh-ed25519 AAAA... comment")', { provider: 'gcp' });
  }
}

/** Google's messages, shortened for ours (they can quote whole resources). */
function clip(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > 300 ? `${one.slice(0, 300)}...` : one;
}
