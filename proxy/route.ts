// The active side: which backend a request goes to now, what each agent is
// granted (push, or fenced, at which epoch), and what anyone at the URL is told
// (the public status and the transition page). It reads the durable state, what
// the failover state machine holds in memory (the freeze, the last verdict, the
// fence's last error) and the probes; it decides nothing about failing over
// (failover.ts does) and changes nothing, so every answer follows from those.
import type { PushTarget, Role } from '../protocol/messages.ts';
import type { Verdict } from './detector.ts';
import type { PublicStatus } from './pages/public-status.ts';
import { transitionPage } from './pages/transition.ts';
import type { ProbeResult } from './prober.ts';
import type { Backend } from './router.ts';
import type { ProxyState, Side } from './state.ts';

/** What the failover state machine holds in memory that the route depends on (failover.ts's `Failover`). */
export interface MachineHold {
  /** a freeze in force: the active side's browser sockets were closed and pages get the transition page */
  readonly frozen: boolean;
  readonly lastVerdict: Verdict;
  /** why the last fence attempt failed, while a switch retries it */
  readonly lastFenceError: string | null;
}

export interface RouteDeps {
  /** the durable state (the store's) */
  state(): ProxyState;
  machine: MachineHold;
  /** the proxy's own probes of each side's code-server: their last answer */
  probes: Record<Side, { readonly last: ProbeResult | undefined }>;
  backends: Record<Side, Backend>;
}

/** The role and epoch a host is granted now, and why; a restore's push target. */
export interface HostGrant {
  role: Role;
  epoch: number;
  reason: string;
  target?: PushTarget;
  /** this grant makes a recovery's new GPU primary: its agent runs its own resume command (agent/resume.ts) */
  resume?: true;
}

/** Recovery steps during which the standby's agent pushes to the new GPU (until the switch back's fence). */
const RESTORING = new Set(['restore', 'restored']);
/**
 * Recovery steps at which the GPU in service, when it is the recovery's new one, was switched back to (the
 * switch back is routed before `done` is logged: `restored` with state.gpu already the new host is that window).
 */
const SWITCHED_BACK = new Set(['restored', 'done', 'old-gpu']);

// What anyone at the URL is told, per phase: fixed words only. What went
// wrong and where (fence errors, addresses, host ids) is in the admin API's
// status and the log.
const MESSAGES: Record<string, string> = {
  waiting: 'Waiting for the GPU: its agent has not connected yet.',
  switching_back: 'Moving your workspace back to the GPU...',
  normal: 'The GPU serves your workspace.',
  recovering: 'Your workspace runs on the standby while a new GPU is prepared.',
  suspect: 'The GPU stopped answering; checking it...',
  degraded: 'The GPU serves your workspace.',
  failing_over: 'Your workspace is moving to the standby...',
  failed_over: 'Your workspace now runs on the standby.',
};
/** a phase without words of its own */
const OTHER_PHASE = 'The proxy is preparing your workspace...';
/** failing over, the standby not yet fenced (the fence failed and is retried) */
const PREPARING_STANDBY = 'The standby is being prepared...';
/** failed over, the standby's code-server not answering yet */
const STANDBY_STARTING = 'Your workspace is starting on the standby...';

/** How often the transition page polls the public status, in ms. */
const PAGE_POLL_MS = 500;

export class Route {
  #deps: RouteDeps;

  constructor(deps: RouteDeps) {
    this.#deps = deps;
  }

  /** Where traffic goes now: the active side, unless it is frozen, mid-switch, or its code-server is known down. */
  target(): Backend | undefined {
    const s = this.#deps.state();
    const machine = this.#deps.machine;
    if (machine.frozen || s.phase === 'failing_over' || s.phase === 'switching_back') return undefined;
    const probe = this.#deps.probes[s.active];
    if (s.active === 'standby' && probe.last && !probe.last.ok) return undefined;
    if (s.active === 'primary' && machine.lastVerdict.kind === 'failed') return undefined;
    // a first run whose GPU is not up yet: the transition page ("waiting for the GPU"), not a dead backend
    if (s.active === 'primary' && s.phase === 'waiting' && probe.last && !probe.last.ok) return undefined;
    return this.#deps.backends[s.active];
  }

  /**
   * What `hostId`'s agent may do now: the GPU in service pushes to the standby while it serves; the
   * standby's agent pushes to a recovery's new GPU while it restores it (the new GPU's receiver, fenced at
   * this epoch); everyone else, nothing (fenced).
   */
  grant(hostId: string): HostGrant {
    const s = this.#deps.state();
    const { primary, standby } = this.#deps.backends;
    const r = s.recovery;
    if (hostId === standby.id && r?.host && RESTORING.has(r.step) && r.epoch === s.epoch && s.active === 'standby' && s.phase === 'recovering') {
      return {
        role: 'primary',
        epoch: s.epoch,
        reason: `restoring ${r.host.id}: the standby serves, its agent pushes to the new GPU`,
        target: { id: r.host.id, host: r.host.ssh.host, port: r.host.ssh.port, user: r.host.ssh.user, path: r.host.workspace, knownHosts: r.host.knownHosts, ...(r.host.editor ? { editor: r.host.editor } : {}) },
      };
    }
    if (hostId !== primary.id) return { role: 'fenced', epoch: s.epoch, reason: hostId === standby.id ? 'the standby pushes only while it restores a new GPU' : `${hostId} is not the GPU in service (${primary.id})` };
    if (s.active !== 'primary' || s.phase === 'failing_over') return { role: 'fenced', epoch: s.epoch, reason: `failed over to ${standby.id} at epoch ${s.epoch}` };
    // the switch back's grant to the new GPU (state.gpu is set to it only by the switch back): it may resume work
    if (r?.host?.id === hostId && s.gpu?.id === hostId && SWITCHED_BACK.has(r.step) && s.epoch > r.epoch) {
      return { role: 'primary', epoch: s.epoch, reason: `the GPU serves: switched back to it after the recovery from epoch ${r.epoch}`, resume: true };
    }
    return { role: 'primary', epoch: s.epoch, reason: 'the GPU serves' };
  }

  /** What /_standby/status tells anyone: the phase as the public sees it (a freeze shows as the switch it starts), who serves, whether it is ready. */
  publicStatus(): PublicStatus {
    const s = this.#deps.state();
    const machine = this.#deps.machine;
    const switching = s.phase === 'failing_over' || s.phase === 'switching_back';
    const to = this.target();
    const phase = machine.frozen && !switching ? (s.active === 'standby' ? 'switching_back' : 'failing_over') : s.phase;
    return {
      phase,
      active: switching ? null : { role: s.active },
      ready: to !== undefined,
      message: machine.lastFenceError && s.phase === 'failing_over'
        ? PREPARING_STANDBY
        : to === undefined && (s.phase === 'failed_over' || s.phase === 'recovering')
          ? STANDBY_STARTING
          : MESSAGES[phase] ?? OTHER_PHASE,
    };
  }

  /** The page a browser gets while no backend is ready: which machine the workspace leaves and which it moves to. */
  transitionPage(): string {
    const status = this.publicStatus();
    const s = this.#deps.state();
    const frozen = this.#deps.machine.frozen;
    const back = s.phase === 'switching_back' || (frozen && s.active === 'standby');
    const toStandby = !back && (s.active === 'standby' || s.phase === 'failing_over' || frozen);
    // roles, not host ids: the operator's names are not the public's business
    const gpu = { kind: 'GPU' };
    const cpu = { kind: 'CPU standby' };
    return transitionPage({ from: toStandby ? gpu : cpu, to: toStandby ? cpu : gpu, phase: status.phase, message: status.message, pollMs: PAGE_POLL_MS });
  }
}
