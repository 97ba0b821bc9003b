// rsync exclude patterns, and a conservative matcher for the watcher built
// from them. rsync stays the authority on what is sent; the matcher only
// spares watches and wake-ups for paths rsync would skip anyway, so where a
// pattern is beyond it, it matches nothing rather than risk missing a change.
// Also a root's include list (the editor's User folder), as rsync filter
// rules and as the watcher's matcher: the two agree exactly (tested against
// rsync in test/agent/exclude.test.ts).

/** rsync wildcard -> RegExp source: `**` spans folders, `*` and `?` do not. */
function wildcardToRegExp(glob: string): string | undefined {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        out += '.*';
        i++;
      } else out += '[^/]*';
    } else if (ch === '?') out += '[^/]';
    else if (ch === '[' || ch === '\\') return undefined; // classes and escapes: leave to rsync
    else out += ch.replace(/[.+^${}()|\]]/g, '\\$&');
  }
  return out;
}

/**
 * Returns a predicate over paths relative to a sync root ('/'-separated) that
 * is true when rsync's `--exclude` would skip the path (or a folder above it).
 */
export function excludeMatcher(patterns: readonly string[]): (relPath: string, isDir: boolean | undefined) => boolean {
  const rules: { re: RegExp; dirOnly: boolean }[] = [];
  // includes ("+ ...") and list clears ("!") change what earlier or later rules mean: leave it all to rsync
  if (patterns.some((p) => p.startsWith('+') || p.trim() === '!')) return () => false;
  for (const raw of patterns) {
    if (raw.length === 0 || raw.startsWith('- ') || raw.includes('***')) continue;
    const dirOnly = raw.endsWith('/');
    let pattern = dirOnly ? raw.slice(0, -1) : raw;
    const anchored = pattern.startsWith('/');
    if (anchored) pattern = pattern.slice(1);
    const body = wildcardToRegExp(pattern);
    if (body === undefined || body.length === 0) continue;
    // A pattern without '/' matches the final name of any path; with '/' it matches the path's tail (or whole path if anchored).
    const head = anchored ? '^' : '(^|/)'; // unanchored: the name, or the path's tail when the pattern has a '/'
    rules.push({ re: new RegExp(`${head}${body}$`), dirOnly });
  }
  if (rules.length === 0) return () => false;
  return (relPath, isDir) => {
    for (const rule of rules) {
      // dir-only rules need to know it is a folder; unknown (no stats yet) is not a match
      if (rule.dirOnly && isDir !== true) continue;
      if (rule.re.test(relPath)) return true;
    }
    return false;
  };
}

/** rsync arguments for the patterns. */
export function excludeArgs(patterns: readonly string[]): string[] {
  return patterns.map((p) => `--exclude=${p}`);
}

/** Whether `relPath` is outside a root's include list (names at its top; "name/" a folder and all it holds): the watcher neither watches nor reports it. */
export function outsideInclude(include: readonly string[], relPath: string): boolean {
  return !include.some((name) => (name.endsWith('/') ? relPath === name.slice(0, -1) || relPath.startsWith(name) : relPath === name));
}

/** rsync filter rules that keep a run to the include list: each name anchored at the root ("name/" with all it holds), then nothing else. */
export function includeArgs(include: readonly string[] | undefined): string[] {
  if (include === undefined) return [];
  return [...include.map((name) => `--filter=+ /${name.endsWith('/') ? `${name}***` : name}`), '--filter=- *'];
}
