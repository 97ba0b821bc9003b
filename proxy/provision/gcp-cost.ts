// The standby's monthly cost estimate (for the failover report and the
// dashboard): machine, boot disk and external IP from a price table
// (config/gcp-standby.ts's DEFAULT_GCP_PRICES unless the config overrides it).
import { DEFAULT_GCP_PRICES, type GcpPrices } from '../../config/gcp-standby.ts';

export interface StandbyCostInput {
  machineType: string;
  diskGb: number;
  /** default pd-balanced */
  diskType?: string;
  spot: boolean;
}

export type StandbyCost =
  | {
      known: true;
      /** USD per month, each part and the sum, rounded to cents */
      machine: number;
      disk: number;
      externalIp: number;
      monthly: number;
      /** USD per hour, all parts (unrounded) */
      perHour: number;
      /** one line for people, e.g. "$17.13/month (spot e2-medium $7.34, 100 GB pd-balanced $10.00, IP $1.83)" */
      summary: string;
    }
  | { known: false; reason: string };

const cents = (n: number) => Math.round(n * 100) / 100;

export function standbyMonthlyCost(input: StandbyCostInput, prices: GcpPrices = DEFAULT_GCP_PRICES): StandbyCost {
  const diskType = input.diskType ?? 'pd-balanced';
  const machine = prices.machineTypes[input.machineType];
  const diskPerGbMonth = prices.disks[diskType];
  if (!machine) return { known: false, reason: `no price for machine type ${input.machineType}: add it to recovery.standby.prices.machineTypes` };
  if (diskPerGbMonth === undefined) return { known: false, reason: `no price for disk type ${diskType}: add it to recovery.standby.prices.disks` };
  const hours = prices.hoursPerMonth;
  const machineHour = input.spot ? machine.spotPerHour : machine.onDemandPerHour;
  const ipHour = input.spot ? prices.externalIpPerHour.spot : prices.externalIpPerHour.onDemand;
  const m = machineHour * hours;
  const d = diskPerGbMonth * input.diskGb;
  const ip = ipHour * hours;
  const monthly = m + d + ip;
  const money = (n: number) => `$${n.toFixed(2)}`;
  return {
    known: true,
    machine: cents(m),
    disk: cents(d),
    externalIp: cents(ip),
    monthly: cents(monthly),
    perHour: monthly / hours,
    summary: `${money(monthly)}/month (${input.spot ? 'spot' : 'on-demand'} ${input.machineType} ${money(m)}, ${input.diskGb} GB ${diskType} ${money(d)}, IP ${money(ip)})`,
  };
}
