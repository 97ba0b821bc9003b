// `npm run test:quick`: the unit tests alone, for the edit-test loop (seconds,
// where `npm test` takes minutes). A test file is quick when nothing it loads,
// itself or through the repository's modules it imports, can start a process:
// no node:child_process (so no sshd, rsync, ssh, flock, agent or proxy
// processes) and no browser. A new test file joins the quick run or not by
// what it imports, with no list to keep. Arguments go to `node --test`
// (e.g. --test-name-pattern=batcher); `--list` prints the choice instead, with
// the import chain that keeps each other file out.
import { spawnSync } from 'node:child_process';
import { globSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const REPO = join(import.meta.dirname, '..');

/** Modules that start processes: a test that can reach one is not quick. */
const STARTS_PROCESSES = new Set(['node:child_process', 'child_process', 'playwright-core']);

const importsCache = new Map<string, string[]>();

/** Import specifiers of a module's code (import type and export type are erased at run time, so they load nothing). */
function importsOf(file: string, importer: string): string[] {
  const cached = importsCache.get(file);
  if (cached) return cached;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${relative(REPO, importer)} imports ${relative(REPO, file)}, which cannot be read (${(err as Error).message}); if tsc -p . passes, this script misread an import line`);
  }
  const found: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) found.push(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(m[1]!);
  importsCache.set(file, found);
  return found;
}

/** A chain of imports from `file` to a module that starts processes, or undefined when there is none (one walk per test file: a module's answer found inside an import cycle holds only for that walk). */
function processChain(file: string, visited = new Set<string>(), importer = file): string[] | undefined {
  visited.add(file);
  for (const spec of importsOf(file, importer)) {
    if (STARTS_PROCESSES.has(spec)) return [spec];
    if (!spec.startsWith('.')) continue;
    const next = join(dirname(file), spec);
    if (visited.has(next)) continue;
    const sub = processChain(next, visited, file);
    if (sub) return [relative(REPO, next), ...sub];
  }
  return undefined;
}

const files = globSync('test/**/*.test.ts', { cwd: REPO }).sort();
const chains = new Map(files.map((f) => [f, processChain(join(REPO, f))]));
const quick = files.filter((f) => !chains.get(f));
const args = process.argv.slice(2);

if (args.includes('--list')) {
  for (const f of files) {
    const chain = chains.get(f);
    console.log(chain ? `  whole suite only  ${f} -> ${chain.join(' -> ')}` : `  quick             ${f}`);
  }
  console.log(`${quick.length} of ${files.length} test files are quick`);
} else {
  if (quick.length === 0) throw new Error(`no quick test files found under ${join(REPO, 'test')}`);
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=60000', ...args, ...quick], { cwd: REPO, stdio: 'inherit' });
  if (r.error) throw r.error;
  process.exitCode = r.status ?? 1;
}
