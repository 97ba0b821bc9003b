// The settings an admin changes while the proxy runs (GET/PATCH
// /_standby/api/v1/settings; docs/configuration.md, "Settings changed live").
// proxy.json stays the source at start-up: a change made live is kept as an
// override beside it, in <stateDir>/live-settings.json (written durably),
// and applied over the file at every start, with a log line naming what
// overrides what. Every change is validated twice: the request's shape with
// the API's schema (protocol/admin-api.ts), then the whole settings with
// proxy.json's own schema, so a value the file would refuse is refused here
// too, with the same message naming the field, the value and what was expected.
// Whoever reads a live field reads `config` at the moment it needs it.
import { join } from 'node:path';
import { validateSettings } from '../config/file.ts';
import { proxyConfigSchema, type ProxyConfig } from '../config/proxy.ts';
import { StandbyError } from '../core/errors.ts';
import { readStateFile, writeStateFile } from '../core/durable-file.ts';
import type { Logger } from '../core/log.ts';
import { LIVE_SETTING_PATHS, liveSettingsSchema, type LiveSettingPath, type LiveSettings, type SettingEffect } from '../protocol/admin-api.ts';

export const LIVE_SETTINGS_FILE = 'live-settings.json';

/** When a change of each field takes effect (the API's `effect`). */
export const SETTING_EFFECT: Readonly<Record<LiveSettingPath, SettingEffect>> = Object.freeze(Object.fromEntries(LIVE_SETTING_PATHS.map((path) => [
  path,
  path.startsWith('agentSync.') ? 'agent' : path.startsWith('recovery.standby.') ? 'next standby' : path.startsWith('recovery.gpu.') ? 'next GPU' : 'now',
])) as Record<LiveSettingPath, SettingEffect>);

/** One override as kept on disk: the live value, and proxy.json's value when it was set (a later edit of the file is noticed at start). */
interface Override {
  value: unknown;
  fileValue: unknown;
  /** when it was set (ISO time, for people) */
  at: string;
}

interface OverridesFile {
  version: 1;
  overrides: Partial<Record<LiveSettingPath, Override>>;
}

export type SettingsListener = (changed: LiveSettingPath[], config: ProxyConfig) => void;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function valueAt(root: unknown, path: string): unknown {
  let cur = root;
  for (const key of path.split('.')) {
    if (!isRecord(cur)) return undefined;
    cur = cur[key];
  }
  return cur;
}

function setAt(root: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let cur = root;
  for (const key of keys.slice(0, -1)) {
    const next = cur[key];
    if (!isRecord(next)) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[keys.at(-1)!] = value;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A field of the recovery section: it cannot be set live while proxy.json has no recovery (setting it would turn recovery on). */
function isRecoveryPath(path: string): boolean {
  return path.startsWith('recovery.');
}

/** proxy.json's value of a live field (null: the file leaves it unset). */
function fileValueOf(file: ProxyConfig, path: LiveSettingPath): unknown {
  return valueAt(file, path) ?? null;
}

export class LiveSettingsStore {
  readonly file: string;
  #fileConfig: ProxyConfig;
  #config: ProxyConfig;
  #overrides: Partial<Record<LiveSettingPath, Override>>;
  #listeners = new Set<SettingsListener>();
  #log: Logger;

  private constructor(file: string, fileConfig: ProxyConfig, overrides: Partial<Record<LiveSettingPath, Override>>, config: ProxyConfig, log: Logger) {
    this.file = file;
    this.#fileConfig = fileConfig;
    this.#overrides = overrides;
    this.#config = config;
    this.#log = log;
  }

  /**
   * proxy.json's settings with the overrides kept in `stateDir` over them. An override that no longer fits
   * (proxy.json lost its recovery section, or an edit of the file makes it invalid together with the file)
   * is dropped with an error line naming it: never silently.
   */
  static open(fileConfig: ProxyConfig, log: Logger): LiveSettingsStore {
    const file = join(fileConfig.stateDir, LIVE_SETTINGS_FILE);
    const text = readStateFile(file, { what: 'the live settings', hint: `; move it aside to start from proxy.json alone (its overrides are then lost)` });
    let stored: Partial<Record<LiveSettingPath, Override>> = {};
    if (text !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw new StandbyError('STANDBY_ERR_STATE_CORRUPT', `the live settings ${file} are not JSON (${(err as Error).message}): move the file aside to start from proxy.json alone (its overrides are then lost)`, { file }, { cause: err });
      }
      if (!isRecord(parsed) || parsed['version'] !== 1 || !isRecord(parsed['overrides'])) {
        throw new StandbyError('STANDBY_ERR_STATE_CORRUPT', `the live settings ${file} are not a {version: 1, overrides} object: move the file aside to start from proxy.json alone`, { file });
      }
      stored = parsed['overrides'] as Partial<Record<LiveSettingPath, Override>>;
    }
    const kept: Partial<Record<LiveSettingPath, Override>> = {};
    const dropped: { path: string; why: string }[] = [];
    for (const [path, o] of Object.entries(stored) as [string, Override][]) {
      if (!(LIVE_SETTING_PATHS as readonly string[]).includes(path)) {
        dropped.push({ path, why: 'not a live setting (a newer version wrote it?)' });
        continue;
      }
      const p = path as LiveSettingPath;
      if (isRecoveryPath(p) && fileConfig.recovery === undefined) {
        dropped.push({ path, why: 'proxy.json has no recovery section any more' });
        continue;
      }
      try {
        compose(fileConfig, { ...kept, [p]: o }, `${file} over proxy.json`);
        kept[p] = o;
      } catch (err) {
        dropped.push({ path, why: (err as Error).message.replace(/\s*\n\s*/g, ' ') });
      }
    }
    const config = compose(fileConfig, kept, `${file} over proxy.json`);
    const store = new LiveSettingsStore(file, fileConfig, kept, config, log);
    for (const d of dropped) log.error({ field: d.path, why: d.why, file }, `live setting ${d.path} dropped: ${d.why}; proxy.json's value is in force`);
    if (dropped.length > 0) store.#save();
    const lines = Object.entries(kept) as [LiveSettingPath, Override][];
    if (lines.length > 0) {
      log.warn({ file, overrides: lines.map(([path, o]) => ({ field: path, live: o.value, proxyJson: fileValueOf(fileConfig, path), setAt: o.at })) },
        `live settings override proxy.json: ${lines.map(([path, o]) => `${path} = ${JSON.stringify(o.value)} (proxy.json: ${JSON.stringify(fileValueOf(fileConfig, path))})`).join(', ')}; PATCH a field to null to go back to proxy.json's`);
      for (const [path, o] of lines) {
        const now = fileValueOf(fileConfig, path);
        if (!same(now, o.fileValue)) {
          log.warn({ field: path, live: o.value, proxyJsonWhenSet: o.fileValue, proxyJsonNow: now, file },
            `proxy.json's ${path} changed since it was set live (${JSON.stringify(o.fileValue)} then, ${JSON.stringify(now)} now): the live value ${JSON.stringify(o.value)} stays in force; PATCH ${path} to null to take proxy.json's`);
        }
      }
    }
    return store;
  }

  /** The settings in force: proxy.json's with the live overrides over them, validated and frozen. */
  get config(): ProxyConfig {
    return this.#config;
  }

  /** The fields whose value is a live override. */
  overridden(): LiveSettingPath[] {
    return LIVE_SETTING_PATHS.filter((p) => this.#overrides[p] !== undefined);
  }

  /** Hears every change, with the fields it changed and the settings now in force. */
  onChange(listener: SettingsListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The live fields' values in force (the API's `settings`). */
  view(): LiveSettings {
    const c = this.#config;
    const r = c.recovery;
    return {
      autoFailover: c.autoFailover,
      detector: {
        heartbeatIntervalMs: c.detector.heartbeatIntervalMs,
        missedHeartbeats: c.detector.missedHeartbeats,
        probeIntervalMs: c.detector.probeIntervalMs,
        passiveProbeIntervalMs: c.detector.passiveProbeIntervalMs,
        probeTimeoutMs: c.detector.probeTimeoutMs,
        preemptionConfirmMs: c.detector.preemptionConfirmMs,
      },
      agentSync: { delayMs: c.agentSync?.delayMs ?? null, maxDelayMs: c.agentSync?.maxDelayMs ?? null, exclude: c.agentSync?.exclude ? [...c.agentSync.exclude] : null },
      recovery: r === undefined ? null : {
        autoRecovery: r.autoRecovery,
        standby: { gcp: { zone: r.standby.gcp.zone, machineType: r.standby.gcp.machineType, diskGb: r.standby.gcp.diskGb, spot: r.standby.gcp.spot } },
        gpu: { vast: { gpuMaxPrice: r.gpu.vast.gpuMaxPrice, gpuMinRamGb: r.gpu.vast.gpuMinRamGb, regions: [...r.gpu.vast.regions] } },
      },
    };
  }

  /**
   * Applies a PATCH body: validated (STANDBY_ERR_CONFIG_INVALID naming field, value and expectation),
   * kept on disk, then in force; the listeners hear the fields whose value changed. null drops a field's
   * override; a value equal to proxy.json's is no override. Returns the fields that changed.
   */
  patch(body: unknown): LiveSettingPath[] {
    const request = validateSettings(liveSettingsSchema, body, 'the settings change');
    const asked: [LiveSettingPath, unknown][] = [];
    for (const path of LIVE_SETTING_PATHS) {
      const v = valueAt(request, path);
      if (v !== undefined) asked.push([path, v]);
    }
    const noRecovery = asked.filter(([p, v]) => isRecoveryPath(p) && v !== null && this.#fileConfig.recovery === undefined);
    if (noRecovery.length > 0) {
      throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `invalid settings in the settings change:\n  ${noRecovery.map(([p, v]) => `${p}: got ${JSON.stringify(v)}, expected nothing: proxy.json has no recovery section, so nothing is provisioned (add one to proxy.json and restart; docs/configuration.md, recovery)`).join('\n  ')}`, { fields: noRecovery.map(([p]) => p) });
    }
    const next = { ...this.#overrides };
    const at = new Date().toISOString();
    for (const [path, value] of asked) {
      const fileValue = fileValueOf(this.#fileConfig, path);
      if (value === null || same(value, fileValue)) delete next[path];
      else next[path] = { value, fileValue, at };
    }
    const config = compose(this.#fileConfig, next, 'the settings change over proxy.json');
    const changed = LIVE_SETTING_PATHS.filter((p) => !same(valueAt(config, p), valueAt(this.#config, p)));
    const before = this.#overrides;
    this.#overrides = next;
    try {
      this.#save();
    } catch (err) {
      this.#overrides = before;
      throw err;
    }
    this.#config = config;
    if (changed.length > 0) {
      this.#log.warn({ changed: changed.map((p) => ({ field: p, now: valueAt(config, p) ?? null, effect: SETTING_EFFECT[p] })), file: this.file }, `settings changed live: ${changed.map((p) => `${p} = ${JSON.stringify(valueAt(config, p) ?? null)} (${SETTING_EFFECT[p]})`).join(', ')}`);
      for (const listener of this.#listeners) {
        try {
          listener(changed, config);
        } catch (err) {
          this.#log.error({ err }, 'a live settings listener failed');
        }
      }
    }
    return changed;
  }

  #save(): void {
    const body: OverridesFile = { version: 1, overrides: this.#overrides };
    writeStateFile(this.file, JSON.stringify(body, null, 2) + '\n', { what: 'the live settings', hint: '; the change was not made' });
  }
}

/** proxy.json's settings with `overrides` over them, validated with proxy.json's own schema. */
function compose(fileConfig: ProxyConfig, overrides: Partial<Record<LiveSettingPath, Override>>, source: string): ProxyConfig {
  const raw = structuredClone(fileConfig) as unknown as Record<string, unknown>;
  for (const [path, o] of Object.entries(overrides) as [LiveSettingPath, Override][]) setAt(raw, path, o.value);
  return validateSettings(proxyConfigSchema, raw, source);
}
