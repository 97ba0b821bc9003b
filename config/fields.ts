// Building blocks of the config schemas (agent.json, proxy.json): the field
// kinds both use, each with the "expected ..." text a config error shows.
import { isAbsolute } from 'node:path';
import { z } from 'zod';

// Flags arrive as yargs guessed them: "false" as a string, one --sync.exclude as a string, --hostId 123 as a number.
export const flagBoolean = (schema: z.ZodBoolean) => z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), schema);
export const flagList = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (typeof v === 'string' ? [v] : v), schema);
export const flagString = (schema: z.ZodString) => z.preprocess((v) => (typeof v === 'number' ? String(v) : v), schema);

export const absolutePath = z.string({ error: 'an absolute path' }).refine((p) => isAbsolute(p), { error: 'an absolute path' });
export const port = z.number({ error: 'a port number 1-65535' }).int({ error: 'a port number 1-65535' }).min(1, { error: 'a port number 1-65535' }).max(65535, { error: 'a port number 1-65535' });
export const ms = (what: string, min: number, max: number) =>
  z.number({ error: `${what}: a number of milliseconds ${min}-${max}` }).int({ error: `${what}: whole milliseconds` }).min(min, { error: `${what}: at least ${min} ms` }).max(max, { error: `${what}: at most ${max} ms` });

export const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'one of fatal, error, warn, info, debug, trace, silent' }).default('info');

/** A URL with one of these schemes; `expected` is the text an error shows ("a ws:// or wss:// URL"). */
export const urlWith = (protocols: readonly string[], expected: string) =>
  z.string({ error: expected }).refine((u) => {
    try {
      return protocols.includes(new URL(u).protocol);
    } catch {
      return false;
    }
  }, { error: expected });

/** An agent or admin token. */
export const token = flagString(z.string({ error: 'a token string' }).min(8, { error: 'a token of at least 8 characters' }));
