// The gcp standby provider's settings (SPEC.md's defaults: a spot e2-medium
// in europe-west1-b with 100 GB), and the price table its monthly cost
// estimate reads: recovery.standby.gcp in proxy.json (config/recovery.ts;
// docs/configuration.md, "recovery").
import { z } from 'zod';
import { liveFieldSchemas } from '../protocol/admin-api.ts';
import { ms } from './fields.ts';

/** $/hour of a machine type, on demand and as a spot VM. */
export const machinePriceSchema = z.strictObject({
  onDemandPerHour: z.number({ error: 'dollars per hour' }).nonnegative(),
  spotPerHour: z.number({ error: 'dollars per hour' }).nonnegative(),
}, { error: 'an object {onDemandPerHour, spotPerHour}' });

/**
 * USD. On demand: us-central1 list prices (europe-west1 runs about 5-10 %
 * higher) from https://cloud.google.com/compute/vm-instance-pricing (E2);
 * disks from https://cloud.google.com/compute/disks-image-pricing; external
 * IPv4 from https://cloud.google.com/vpc/network-pricing; as published in
 * 2025. Spot: 30 % of on demand, an estimate inside the 60-91 % discount
 * https://cloud.google.com/spot-vms/pricing gives (spot prices move up to once
 * a day). Written down December 2026 without a live check: an estimate for the
 * report, not a bill; set recovery.standby.prices to your region's figures.
 */
export const DEFAULT_GCP_PRICES = {
  machineTypes: {
    'e2-micro': { onDemandPerHour: 0.008376, spotPerHour: 0.002513 },
    'e2-small': { onDemandPerHour: 0.016751, spotPerHour: 0.005025 },
    // $24.46/month on demand; spot about $7-10/month (SPEC.md: $7-11)
    'e2-medium': { onDemandPerHour: 0.033503, spotPerHour: 0.010051 },
    'e2-standard-2': { onDemandPerHour: 0.067006, spotPerHour: 0.020102 },
    'e2-standard-4': { onDemandPerHour: 0.134012, spotPerHour: 0.040204 },
  },
  /** $/GB-month of persistent disk */
  disks: { 'pd-standard': 0.04, 'pd-balanced': 0.1, 'pd-ssd': 0.17 },
  /** $/hour of an in-use external IPv4 address (billed since February 2024; half on spot VMs) */
  externalIpPerHour: { onDemand: 0.005, spot: 0.0025 },
  /** hours in a billing month, as Google's calculator counts them */
  hoursPerMonth: 730,
} as const;

export const gcpPricesSchema = z.strictObject({
  machineTypes: z.record(z.string(), machinePriceSchema).default({ ...DEFAULT_GCP_PRICES.machineTypes }),
  disks: z.record(z.string(), z.number({ error: 'dollars per GB-month' }).nonnegative()).default({ ...DEFAULT_GCP_PRICES.disks }),
  externalIpPerHour: z.strictObject({
    onDemand: z.number().nonnegative(),
    spot: z.number().nonnegative(),
  }).default({ ...DEFAULT_GCP_PRICES.externalIpPerHour }),
  hoursPerMonth: z.number().positive().default(DEFAULT_GCP_PRICES.hoursPerMonth),
}, { error: 'an object {machineTypes, disks, externalIpPerHour, hoursPerMonth}' });

export type GcpPrices = z.output<typeof gcpPricesSchema>;

const gcpName = (what: string) => z.string({ error: what }).regex(/^[a-z][-a-z0-9]{0,62}$/, { error: `${what}: lowercase letters, digits and "-"` });

export const gcpStandbySchema = z.strictObject({
  /** the GCP project (default: $GCP_PROJECT_ID) */
  project: z.string({ error: 'a GCP project id' }).regex(/^[a-z][-a-z0-9.:]{3,61}[a-z0-9]$/, { error: 'a GCP project id' }).optional(),
  /** zone of the standby (default europe-west1-b) */
  zone: liveFieldSchemas.recovery.standbyGcp.zone.default('europe-west1-b'),
  /** machine type (default e2-medium: 2 shared vCPUs, 4 GB) */
  machineType: liveFieldSchemas.recovery.standbyGcp.machineType.default('e2-medium'),
  /** boot disk, GB (default 100): holds the OS and the workspace copy */
  diskGb: liveFieldSchemas.recovery.standbyGcp.diskGb.default(100),
  /** boot disk type (default pd-balanced) */
  diskType: gcpName('a disk type, e.g. pd-balanced').default('pd-balanced'),
  /** a spot VM (default true): 60-91 % cheaper; preempted at any time, then stopped with its disk kept and started again by ensure */
  spot: liveFieldSchemas.recovery.standbyGcp.spot.default(true),
  /** boot image (default Debian 12's family: the newest Debian 12 image) */
  image: z.string({ error: 'an image path' }).min(1).default('projects/debian-cloud/global/images/family/debian-12'),
  /** VPC network (default the project's "default") */
  network: z.string({ error: 'a network path' }).min(1).default('global/networks/default'),
  /** retries of an API call answered 429 or 5xx, or not answered, with backoff 1 s doubling to 30 s (default 5) */
  apiRetries: z.number({ error: 'a number of retries' }).int().min(0).max(20).default(5),
  /** one API call, ms (default 60000) */
  callTimeoutMs: ms('recovery.standby.callTimeoutMs', 1_000, 600_000).default(60_000),
  /** one operation (create, start, stop, delete) to end, and the VM to run after it, ms (default 300000) */
  operationTimeoutMs: ms('recovery.standby.operationTimeoutMs', 1_000, 3_600_000).default(300_000),
  /** the price table for the monthly cost estimate (defaults: DEFAULT_GCP_PRICES) */
  prices: gcpPricesSchema.default(gcpPricesSchema.parse({})),
}, { error: 'an object {zone, machineType, diskGb, spot, ...}' });

export type GcpStandbyConfig = z.output<typeof gcpStandbySchema>;
