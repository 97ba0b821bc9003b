// What the proxy asks of a cloud (or of this machine) to bring hosts up and
// down: one interface for GPU hosts, one for standby hosts. Every call is
// idempotent and safe to retry after a crash: a create names its host by the
// workspace and the epoch it is for (`HostName`), so a proxy restarted
// mid-provisioning finds what it already asked for (`list`, `get`) instead of
// creating a second one. The recovery that drives these records its intent
// durably before each call and reconciles with `list` after a restart.

/** How a host is reached over SSH once it runs. */
export interface SshAddress {
  host: string;
  port: number;
  user: string;
}

/**
 * The name every host we create carries (a Vast label, a GCP instance name and
 * labels): which workspace it serves and for which epoch it was made, so a
 * retry or a restarted proxy recognizes it.
 */
export interface HostName {
  /** the workspace's id: letters, digits and "-" only, at most 40 characters */
  workspace: string;
  /** the failover epoch the host is made for */
  epoch: number;
}

/** What a GPU must offer (SPEC.md's defaults: 8 GB, $0.50/h, TH VN JP EU). */
export interface GpuRequirements {
  /** GPU memory, GB, at least */
  minGpuRamGb: number;
  /** $/hour, at most (the whole machine's price, storage included) */
  maxPricePerHour: number;
  /** preferred regions first, in this order (country codes or "EU", "US"...); offers elsewhere come after */
  regions: readonly string[];
  /** disk to ask for, GB */
  diskGb: number;
}

export interface GpuOffer {
  /** the provider's offer id */
  id: string;
  pricePerHour: number;
  gpuName: string;
  gpuCount: number;
  gpuRamGb: number;
  /** where the machine is, as the provider says it (e.g. "Thailand, TH") */
  location: string;
  /** the region code matched against GpuRequirements.regions ("TH", "EU", ...), when known */
  region: string | undefined;
  /** the provider's reliability score, 0-1, when it has one */
  reliability: number | undefined;
}

/** A search's outcome: the offers that qualify, best first, or why there are none. */
export type GpuSearch =
  | { ok: true; offers: GpuOffer[] }
  | {
      ok: false;
      /** one line for people and the report, e.g. "no offer under $0.50/h in TH, VN, JP, EU (cheapest seen: $0.62/h in US)" */
      reason: string;
      /** the cheapest offer seen that met the RAM floor, whatever its price or region */
      cheapestSeen: GpuOffer | undefined;
      attempts: number;
    };

/** What runs on a new GPU at its first boot. */
export interface GpuLaunch {
  name: HostName;
  /** the container or VM image */
  image: string;
  /** a shell script run at first boot: it installs the agent with a one-time invitation (the proxy's install line) */
  onstart: string;
  diskGb: number;
  /** extra environment for the host */
  env?: Record<string, string>;
}

export type HostState = 'creating' | 'running' | 'stopping' | 'stopped' | 'failed' | 'gone';

export interface ProvisionedHost {
  /** the provider's id for the host (Vast instance id, GCP `zone/instance-name` since a GCP name is unique per zone only, local folder name) */
  id: string;
  provider: string;
  /** the workspace and epoch it was created for; undefined for hosts we did not name */
  name: HostName | undefined;
  state: HostState;
  /** set once the host runs and its SSH port is known */
  ssh: SshAddress | undefined;
  pricePerHour: number | undefined;
  /** the provider's words for the state, for logs and the report */
  detail: string;
  /** its code-server as the proxy reaches it, once known (local: the workspace server; vast: a mapped port) */
  url?: string;
  /** its workspace folder (default /workspace) */
  workspace?: string;
}

export interface GpuProvider {
  readonly name: string;
  /** offers meeting `req`, best first; retries 429 and 5xx with backoff, and reports why nothing qualifies after its retries */
  search(req: GpuRequirements, signal?: AbortSignal): Promise<GpuSearch>;
  /** creates a host from `offer`; if a host named `launch.name` exists already, returns it instead */
  create(offer: GpuOffer, launch: GpuLaunch, signal?: AbortSignal): Promise<ProvisionedHost>;
  /** the host now, or undefined when the provider no longer has it */
  get(id: string, signal?: AbortSignal): Promise<ProvisionedHost | undefined>;
  /** every host of ours for `workspace` (named by HostName), for reconciling after a restart */
  list(workspace: string, signal?: AbortSignal): Promise<ProvisionedHost[]>;
  /** destroys the host; resolves when it is gone or was already gone */
  destroy(id: string, signal?: AbortSignal): Promise<void>;
  /** stops the host, its disk kept (it bills for storage only), where the provider can; resolves once asked (or it is gone) */
  stop?(id: string, signal?: AbortSignal): Promise<void>;
}

/** The standby machine's shape (SPEC.md: a spot e2-medium, 100 GB, europe-west1-b). */
export interface StandbySpec {
  name: HostName;
  zone: string;
  machineType: string;
  diskGb: number;
  spot: boolean;
  /** the OpenSSH public key line the proxy and the agents log in with */
  sshPublicKey: string;
  /** the user that key logs in as */
  sshUser: string;
  /** a startup script (installs the standby role through the proxy's install line) */
  startupScript?: string;
}

export interface StandbyProvider {
  readonly name: string;
  /** creates the standby if it does not exist, starts it if it is stopped (a preempted spot VM), and resolves once it runs */
  ensure(spec: StandbySpec, signal?: AbortSignal): Promise<ProvisionedHost>;
  get(id: string, signal?: AbortSignal): Promise<ProvisionedHost | undefined>;
  /** stops it, keeping its disk (the copy survives) */
  stop(id: string, signal?: AbortSignal): Promise<void>;
  /** deletes it and its disk; resolves when it is gone or was already gone */
  destroy(id: string, signal?: AbortSignal): Promise<void>;
}

/** The name a provider stores, from a HostName: `standby-<workspace>-e<epoch>` (fits Vast labels and GCP names: lowercase, digits, "-", at most 63). */
export function hostNameText(name: HostName): string {
  return `standby-${name.workspace.toLowerCase()}-e${name.epoch}`;
}

/** The HostName back from hostNameText's form, or undefined for a name we did not make. */
export function parseHostName(text: string): HostName | undefined {
  const m = /^standby-([a-z0-9-]{1,40})-e(\d{1,9})$/.exec(text);
  return m ? { workspace: m[1]!, epoch: Number(m[2]) } : undefined;
}
