// A workspace-like tree of many small files: a fan-out of folders three deep
// (package / folder / module), about 100 files per leaf folder, sizes spread
// from 200 B to 8 KiB. Deterministic in shape and size; content is filler.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TreeSummary {
  files: number;
  folders: number;
  bytes: number;
  ms: number;
}

const FILLER = Buffer.alloc(8192, 'const x = 1; // workspace file\n');

export function makeTree(root: string, files: number, perFolder = 100, fanout = 10): TreeSummary {
  const start = performance.now();
  const leaves = Math.max(1, Math.ceil(files / perFolder));
  let bytes = 0;
  let folders = 0;
  let written = 0;
  for (let leaf = 0; leaf < leaves && written < files; leaf++) {
    const a = Math.floor(leaf / (fanout * fanout));
    const b = Math.floor(leaf / fanout) % fanout;
    const c = leaf % fanout;
    const dir = join(root, `pkg${String(a).padStart(3, '0')}`, `src${b}`, `mod${c}`);
    mkdirSync(dir, { recursive: true });
    folders++;
    for (let i = 0; i < perFolder && written < files; i++, written++) {
      const size = 200 + ((written * 2654435761) % 7993);
      writeFileSync(join(dir, `file${String(i).padStart(3, '0')}.ts`), FILLER.subarray(0, size));
      bytes += size;
    }
  }
  return { files: written, folders, bytes, ms: performance.now() - start };
}
