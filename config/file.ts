// Loads a daemon's settings: a JSON file (--config), then flags over it, then
// defaults; validated once with the daemon's zod schema and frozen. A bad value
// stops start-up with a message naming the field, the value and what was expected.
// A settings file holds tokens: it is refused when group or others may read it.
import { readFileSync, statSync } from 'node:fs';
import type { z } from 'zod';
import { StandbyError } from '../core/errors.ts';

export type Overrides = Record<string, unknown>;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep-merges `over` onto `base`; arrays and scalars in `over` replace. */
export function mergeSettings(base: Record<string, unknown>, over: Overrides): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    const prev = out[key];
    out[key] = isPlainObject(prev) && isPlainObject(value) ? mergeSettings(prev, value) : value;
  }
  return out;
}

/**
 * Refuses a file that holds secrets (agent.json, proxy.json, a private key)
 * when its group or others may read or write it: a token or key anyone on the
 * machine can read is no secret. A missing file is left to whoever opens it.
 */
export function requirePrivateFile(file: string, holds: string): void {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new StandbyError('STANDBY_ERR_CONFIG_UNREADABLE', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file }, { cause: err });
  }
  if ((mode & 0o066) === 0) return;
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  throw new StandbyError(
    'STANDBY_ERR_SECRETS_EXPOSED',
    `${file} holds ${holds} and is mode ${octal}: ${mode & 0o044 ? 'group or others can read it' : 'group or others can write it'}. Nothing was started; run: chmod 600 ${file}`,
    { file, mode: octal },
  );
}

export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new StandbyError('STANDBY_ERR_CONFIG_UNREADABLE', `cannot read config file ${file}: ${e.code ?? e.message}; pass an existing JSON file with --config`, { file }, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `config file ${file} is not valid JSON: ${(err as Error).message}`, { file }, { cause: err });
  }
  if (!isPlainObject(parsed)) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `config file ${file} must hold a JSON object, got ${parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed}`, { file });
  }
  return parsed;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Fields whose values are secrets: an error names them, never shows them (it may end up in a log). */
const SECRET_FIELD = /(token|password|secret|apikey)$/i;

function describe(value: unknown, field?: PropertyKey): string {
  if (value === undefined) return 'nothing';
  if (field !== undefined && SECRET_FIELD.test(String(field))) return `a ${typeof value} (hidden: a secret)`;
  const text = JSON.stringify(value, (k, v: unknown) => (k !== '' && SECRET_FIELD.test(k) && v !== undefined ? '(hidden)' : v));
  return text === undefined ? String(value) : text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function valueAt(root: unknown, path: PropertyKey[]): unknown {
  let cur = root;
  for (const key of path) {
    if (!isPlainObject(cur) && !Array.isArray(cur)) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

/** Validates raw settings with `schema` (which fills defaults) and freezes the result. */
export function validateSettings<S extends z.ZodType>(schema: S, raw: unknown, source: string): Readonly<z.output<S>> {
  const result = schema.safeParse(raw);
  if (result.success) return deepFreeze(result.data);
  const lines = result.error.issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
    if (issue.code === 'unrecognized_keys') {
      return `${field === '(top level)' ? '' : `${field}: `}unknown field(s) ${issue.keys.join(', ')} (check the spelling; see docs/configuration.md)`;
    }
    return `${field}: got ${describe(valueAt(raw, issue.path), issue.path.at(-1))}, expected ${issue.message}`;
  });
  throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `invalid settings in ${source}:\n  ${lines.join('\n  ')}`, { source, fields: result.error.issues.map((i) => i.path.join('.')) });
}

/** File (optional; it holds tokens, so it must be private) + overrides -> validated, frozen settings. */
export function loadSettings<S extends z.ZodType>(schema: S, file: string | undefined, overrides: Overrides): Readonly<z.output<S>> {
  if (file) requirePrivateFile(file, 'tokens');
  const base = file ? readConfigFile(file) : {};
  const source = file ? `${file} (and flags)` : 'flags';
  return validateSettings(schema, mergeSettings(base, overrides), source);
}
