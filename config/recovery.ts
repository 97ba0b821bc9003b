// The proxy's `recovery` section (proxy.json): after a failover, bring a new
// GPU up through a provider, restore the standby's copy to it and switch back
// (SPEC.md sections 1 and 5, its defaults). A proxy.json without it never
// provisions anything: the standby serves until `standby switch-back`.
import { z } from 'zod';
import { liveFieldSchemas } from '../protocol/admin-api.ts';
import { flagBoolean } from './fields.ts';
import { gcpStandbySchema } from './gcp-standby.ts';
import { localProviderSchema } from './local-provider.ts';
import { vastProviderSchema } from './vast-provider.ts';

const seconds = (field: string, min: number, max: number) =>
  z.number({ error: `${field}: a number of seconds ${min}-${max}` }).int({ error: `${field}: whole seconds ${min}-${max}` }).min(min, { error: `${field}: at least ${min} s` }).max(max, { error: `${field}: at most ${max} s` });

export const recoveryGpuSchema = z.strictObject({
  /** where new GPUs come from: local (this machine, the default) or vast (Vast.ai) */
  provider: z.enum(['local', 'vast'], { error: 'local or vast' }).default('local'),
  /** Vast.ai's settings (the defaults when absent) */
  vast: vastProviderSchema.default(() => vastProviderSchema.parse({})),
  /** what becomes of the GPU that was left, once the new one serves: destroy (default: it stops billing), stop (its disk kept, billed for storage) or keep */
  old: z.enum(['destroy', 'stop', 'keep'], { error: 'destroy, stop or keep' }).default('destroy'),
}, { error: 'an object {provider, vast?, old?}' });

export const recoveryStandbySchema = z.strictObject({
  /** how the standby machine is run: none (it is given, standby.* in proxy.json; the default), local or gcp */
  provider: z.enum(['none', 'local', 'gcp'], { error: 'none, local or gcp' }).default('none'),
  /** GCP's settings (the defaults when absent): zone, machine type, disk, spot, prices */
  gcp: gcpStandbySchema.default(() => gcpStandbySchema.parse({})),
  /** the standby's id at its provider (gcp: "zone/name"; local: "standby/<name>"): the proxy watches it and starts it again when it is preempted (absent: not watched) */
  id: z.string({ error: 'the standby\'s id at its provider, e.g. "europe-west1-b/standby-ws-e0"' }).min(1).max(200).optional(),
  /** how often the proxy asks the provider whether the standby runs, ms (default 10000) */
  watchMs: z.number({ error: 'recovery.standby.watchMs: ms 1000-3600000' }).int().min(1_000).max(3_600_000).default(10_000),
}, { error: 'an object {provider, gcp?, id?}' })
  .refine((s) => s.id === undefined || s.provider !== 'none', { error: 'recovery.standby.provider (gcp or local) to watch recovery.standby.id', path: ['provider'] });

export const recoverySchema = z.strictObject({
  /** after a failover, bring a new GPU up, restore it and switch back by itself (default true); false: only `standby recover` starts it */
  autoRecovery: flagBoolean(liveFieldSchemas.recovery.autoRecovery).default(true),
  /** the workspace's id in the names of the hosts made for it: letters, digits and "-", at most 40 (default: primary.id's letters and digits) */
  workspace: z.string({ error: 'a workspace id' }).regex(/^[A-Za-z0-9-]{1,40}$/, { error: 'a workspace id: letters, digits and "-", at most 40' }).optional(),
  gpu: recoveryGpuSchema.default(() => recoveryGpuSchema.parse({})),
  standby: recoveryStandbySchema.default(() => recoveryStandbySchema.parse({})),
  /** the local provider's settings (hosts on this machine: the demo's, the tests') */
  local: localProviderSchema.default(() => localProviderSchema.parse({})),
  /** a created GPU has this long to run, s (default 600; Vast: 2-5 min is usual) */
  provisionS: seconds('recovery.provisionS', 1, 86_400).default(600),
  /** ...then this long to answer SSH, s (default 300, SPEC.md's SSH wait) */
  sshWaitS: seconds('recovery.sshWaitS', 1, 86_400).default(300),
  /** ...then its agent this long to enroll and connect, s (default 300) */
  agentWaitS: seconds('recovery.agentWaitS', 1, 86_400).default(300),
  /** ...then the restore this long to bring the new GPU level with the standby, s (default 600, SPEC.md's) */
  restoreS: seconds('recovery.restoreS', 1, 86_400).default(600),
  /** a failed try is rolled back (its GPU destroyed) and tried again, this many tries in all (default 3) */
  attempts: z.number({ error: 'recovery.attempts: a count 1-100' }).int().min(1).max(100).default(3),
  /** the pause between tries, s (default 30) */
  retryDelayS: seconds('recovery.retryDelayS', 0, 86_400).default(30),
  /** the restore counts as level, and the switch back may begin, once the new GPU's first full pass landed and the oldest change it lacks is younger than this, ms (default 3000): the developer keeps writing, and the switch back's final pass carries the rest */
  levelLagMs: z.number({ error: 'recovery.levelLagMs: ms 0-600000' }).int().min(0).max(600_000).default(3_000),
  /** at switch back, how long the standby's agent has for its final pass while the standby is frozen, ms (default 10000) */
  finalSyncMs: z.number({ error: 'recovery.finalSyncMs: ms 100-600000' }).int().min(100).max(600_000).default(10_000),
  /** a freeze of the standby's user processes lifts itself after this long should the proxy never lift it, ms (default 30000) */
  freezeMaxMs: z.number({ error: 'recovery.freezeMaxMs: ms 1000-600000' }).int().min(1_000).max(600_000).default(30_000),
  /** before the GPU that was left goes, its agent (if it is connected) has this long to copy its unsent changes into the standby's conflicts folder, s (default 600) */
  conflictsWaitS: seconds('recovery.conflictsWaitS', 1, 86_400).default(600),
}, { error: 'an object of recovery settings' });

export type RecoveryConfig = z.output<typeof recoverySchema>;

/** The workspace id the hosts are named for: recovery.workspace, or the GPU's id reduced to what a name may hold. */
export function workspaceId(recovery: RecoveryConfig, primaryId: string): string {
  if (recovery.workspace) return recovery.workspace.toLowerCase();
  const id = primaryId.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
  return id === '' ? 'workspace' : id;
}
