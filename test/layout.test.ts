// The layout's rules (docs/architecture.md, "Layout"): imports run one way,
// cli -> roles (agent, standby, proxy, installer) -> protocol, config, core;
// no role imports another's code; the product never imports test/ or bench/;
// no cycle between folders; no source file at the root but cli.ts.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const ROLES = ['agent', 'standby', 'proxy', 'installer'];
/** What each folder of the product may import, besides itself. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  cli: [...ROLES, 'systemd', 'protocol', 'config', 'core'],
  agent: ['protocol', 'config', 'core'],
  standby: ['protocol', 'config', 'core'],
  proxy: ['protocol', 'config', 'core'],
  installer: ['protocol', 'config', 'core'],
  systemd: ['core'],
  protocol: ['core'],
  config: ['protocol', 'core'],
  core: [],
};
const PRODUCT = Object.keys(MAY_IMPORT);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(REPO, dir), { withFileTypes: true })) {
    const rel = posix.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(rel));
    else if (e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

/** The repository-relative files a source imports (relative specifiers only: packages are not the layout's business). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(REPO, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]+)['"]/g)) out.push(posix.normalize(posix.join(posix.dirname(file), m[1]!)));
  return out;
}

const folderOf = (file: string): string => (file.includes('/') ? file.slice(0, file.indexOf('/')) : file === 'cli.ts' ? 'cli' : file);
const product = ['cli.ts', ...PRODUCT.flatMap((d) => sources(d))];

test('no source file at the root but cli.ts', () => {
  const rootTs = readdirSync(REPO).filter((n) => n.endsWith('.ts'));
  assert.deepEqual(rootTs, ['cli.ts']);
});

test('every product folder imports only the layers below it, never another role, test/ or bench/', () => {
  const wrong: string[] = [];
  for (const file of product) {
    const from = folderOf(file);
    for (const target of importsOf(file)) {
      const to = folderOf(target);
      if (to === from) continue;
      if (!MAY_IMPORT[from]!.includes(to)) wrong.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('no cycle between folders', () => {
  const edges = new Map<string, Set<string>>();
  for (const file of product) {
    for (const target of importsOf(file)) {
      const a = folderOf(file);
      const b = folderOf(target);
      if (a !== b) (edges.get(a) ?? edges.set(a, new Set()).get(a)!).add(b);
    }
  }
  const cycles: string[] = [];
  const visit = (node: string, path: string[]): void => {
    if (path.includes(node)) {
      cycles.push([...path.slice(path.indexOf(node)), node].join(' -> '));
      return;
    }
    for (const next of edges.get(node) ?? []) visit(next, [...path, node]);
  };
  for (const node of edges.keys()) visit(node, []);
  assert.deepEqual(cycles, []);
});

test('the rules see the imports (a check that finds nothing finds nothing wrong)', () => {
  // guards the checks above against a regex that silently stops matching
  const edges = product.flatMap((f) => importsOf(f).map((t) => `${folderOf(f)}>${folderOf(t)}`));
  for (const expected of ['cli>agent', 'proxy>protocol', 'standby>core', 'agent>config']) assert.ok(edges.includes(expected), `no ${expected} import found`);
  assert.ok(product.length > 100, `${product.length} files`);
  assert.equal(relative(REPO, join(REPO, 'cli.ts')), 'cli.ts');
});
