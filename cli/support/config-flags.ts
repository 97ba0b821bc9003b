// Turns command-line flags into settings overrides: `--sync.delayMs 500` or
// `--workspace /data` override the same field of the --config file. Flags that
// belong to the command itself (listed by it) are left out.
import type { Overrides } from '../../config/file.ts';

const YARGS_KEYS = new Set(['_', '$0', 'config', 'help', 'version']);

export function overridesFrom(argv: Record<string, unknown>, commandFlags: readonly string[] = []): Overrides {
  const skip = new Set([...YARGS_KEYS, ...commandFlags]);
  const out: Overrides = {};
  for (const [key, value] of Object.entries(argv)) {
    // yargs adds a kebab-case twin for camelCase keys and vice versa: keep one spelling
    if (skip.has(key) || key.includes('-')) continue;
    out[key] = value;
  }
  return out;
}
