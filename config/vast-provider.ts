// The `vast` GPU provider's settings (recovery.gpu.vast in proxy.json): the
// API, the image, and what a new GPU must offer (SPEC.md's defaults: 8 GB,
// $0.50/h, TH VN JP EU, 10 search rounds).
import { z } from 'zod';
import { liveFieldSchemas } from '../protocol/admin-api.ts';
import { ms, urlWith } from './fields.ts';

export const DEFAULT_VAST_API_URL = 'https://console.vast.ai/api/v0';

/** recovery.gpu.vast in proxy.json. */
export const vastProviderSchema = z.strictObject({
  /** the REST API base (default https://console.vast.ai/api/v0) */
  apiUrl: urlWith(['http:', 'https:'], 'an http:// or https:// URL').default(DEFAULT_VAST_API_URL),
  /** the API key; without it, the environment's VAST_API_KEY */
  apiKey: z.string({ error: 'a Vast.ai API key' }).min(1, { error: 'a non-empty Vast.ai API key' }).optional(),
  /** the container image a new GPU runs (default vastai/base-image:@vastai-automatic-tag, the API's own default) */
  image: z.string({ error: 'a container image, e.g. "pytorch/pytorch:latest"' }).min(1).default('vastai/base-image:@vastai-automatic-tag'),
  /** the new GPU's disk, GB (default 50); offers are priced with it */
  diskGb: z.number({ error: 'a disk size in GB, 10-10000' }).min(10, { error: 'at least 10 GB' }).max(10_000, { error: 'at most 10000 GB' }).default(50),
  /** how Vast exposes SSH: "ssh" (direct where the machine has open ports, with a proxy as backup), "ssh_direct" or "ssh_proxy" (default ssh) */
  runtype: z.enum(['ssh', 'ssh_direct', 'ssh_proxy'], { error: 'one of ssh, ssh_direct, ssh_proxy' }).default('ssh'),
  /** GPU memory per GPU, GB, at least (default 8) */
  gpuMinRamGb: liveFieldSchemas.recovery.gpuVast.gpuMinRamGb.default(8),
  /** the whole machine's price with its disk (dph_total), $/hour, at most (default 0.5) */
  gpuMaxPrice: liveFieldSchemas.recovery.gpuVast.gpuMaxPrice.default(0.5),
  /** preferred regions, first first: country codes, "EU" (Europe) or "NA" (US, Canada); offers elsewhere come after (default TH, VN, JP, EU) */
  regions: liveFieldSchemas.recovery.gpuVast.regions.default(['TH', 'VN', 'JP', 'EU']),
  /** search rounds before a search gives up and says why (default 10) */
  searchRetries: z.number({ error: 'a count of rounds 1-1000' }).int().min(1).max(1000).default(10),
  /** the wait between search rounds that found nothing under the cap, ms (default 30000) */
  searchIntervalMs: ms('recovery.gpu.vast.searchIntervalMs', 0, 3_600_000).default(30_000),
  /** a whole search, every round and wait included, ms (default 600000) */
  searchTimeoutMs: ms('recovery.gpu.vast.searchTimeoutMs', 100, 86_400_000).default(600_000),
  /** offers asked for per search round, cheapest first (default 256) */
  searchLimit: z.number({ error: 'a count of offers 1-1000' }).int().min(1).max(1000).default(256),
  /** one HTTP request, ms (default 30000) */
  requestTimeoutMs: ms('recovery.gpu.vast.requestTimeoutMs', 50, 600_000).default(30_000),
  /** tries of one call (create, get, list, destroy) on 429, 5xx or no answer (default 5) */
  requestRetries: z.number({ error: 'a count of tries 1-100' }).int().min(1).max(100).default(5),
  /** the first wait after a 429/5xx, ms, doubling up to retryMaxMs (default 1000) */
  retryMinMs: ms('recovery.gpu.vast.retryMinMs', 0, 600_000).default(1_000),
  /** the longest wait between tries, ms (default 30000) */
  retryMaxMs: ms('recovery.gpu.vast.retryMaxMs', 0, 3_600_000).default(30_000),
}, { error: 'an object of Vast.ai settings' });

export type VastProviderSettings = z.output<typeof vastProviderSchema>;
