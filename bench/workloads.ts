// The writes the lag benchmarks make in the workspace: a trickle (one small file
// every 20 ms), a burst (thousands of small files at once, spread over folders)
// and one big file. Each file carries a token unique to this write, so the
// observer knows the standby holds this write and not an older one; each
// `onWritten` call comes when the file is closed, stamped with performance.now().
import { createHash, randomBytes, randomFillSync, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { mkdir, open, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Written } from './observer.ts';

export type WorkloadName = 'trickle' | 'saves' | 'burst' | 'big' | 'big-slow';

export interface Workload {
  name: WorkloadName;
  /** what the table says about it */
  label: string;
  files: number;
  /** writes under `root/<folder>`; resolves when the last file is closed */
  write(root: string, folder: string, onWritten: (w: Written) => void): Promise<WriteSummary>;
}

export interface WriteSummary {
  /** ms from the first write's start to the last file closed */
  ms: number;
  /** sha256 of each big file, by relative path, to check the standby's copy fully afterwards */
  hashes?: Map<string, string>;
}

const FILLER = Buffer.from(randomBytes(4096).toString('base64')); // printable, incompressible enough

function smallFile(rel: string, i: number): { content: Buffer; head: string } {
  const head = `${randomUUID()} ${rel}\n`;
  const size = 256 + ((i * 7919) % 3841); // 256..4096 bytes, spread
  const content = Buffer.alloc(Math.max(size, head.length + 1));
  content.write(head);
  FILLER.copy(content, head.length, 0, content.length - head.length);
  return { content, head };
}

async function sleepUntil(t: number): Promise<void> {
  const ms = t - performance.now();
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}

/** `files` small files, one every `everyMs`, each put in place by `put` (the workload's pace, not imitated work). */
function paced(name: WorkloadName, label: string, files: number, everyMs: number, put: (dir: string, name: string, content: Buffer) => Promise<void>): Workload {
  return {
    name,
    label,
    files,
    async write(root, folder, onWritten) {
      mkdirSync(join(root, folder), { recursive: true });
      const start = performance.now();
      for (let i = 0; i < files; i++) {
        await sleepUntil(start + i * everyMs);
        const file = `${name[0]}${String(i).padStart(4, '0')}.txt`;
        const rel = `${folder}/${file}`;
        const { content, head } = smallFile(rel, i);
        await put(join(root, folder), file, content);
        onWritten({ rel, size: content.length, head, writtenAt: performance.now() });
      }
      return { ms: performance.now() - start };
    },
  };
}

export function trickle(files = 200, everyMs = 20): Workload {
  return paced('trickle', `trickle (${files} files, one every ${everyMs} ms)`, files, everyMs, (dir, name, content) => writeFile(join(dir, name), content));
}

/**
 * Editor saves: each file is written to a temporary name beside it, then renamed
 * over its own name (as vim, many IDEs and `sed -i` do), one every `everyMs`.
 * The watcher sees the temporary file come and go: a pass then holds a deletion
 * as well as the new file, so this is the trickle with deletions in its passes.
 */
export function saves(files = 200, everyMs = 20): Workload {
  return paced('saves', `saves (${files} files, one every ${everyMs} ms, each written to a temp name, then renamed over its own)`, files, everyMs, async (dir, name, content) => {
    const temp = join(dir, `.${name}.swp`);
    await writeFile(temp, content);
    await rename(temp, join(dir, name));
  });
}

export function burst(files = 5000, folders = 50, concurrency = 16): Workload {
  return {
    name: 'burst',
    label: `burst (${files} small files at once, ${folders} folders)`,
    files,
    async write(root, folder, onWritten) {
      const start = performance.now();
      const rels: string[] = [];
      for (let i = 0; i < files; i++) rels.push(`${folder}/d${String(i % folders).padStart(2, '0')}/b${String(i).padStart(5, '0')}.txt`);
      for (let d = 0; d < folders; d++) await mkdir(join(root, folder, `d${String(d).padStart(2, '0')}`), { recursive: true });
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < rels.length) {
          const i = next++;
          const rel = rels[i]!;
          const { content, head } = smallFile(rel, i);
          await writeFile(join(root, rel), content);
          onWritten({ rel, size: content.length, head, writtenAt: performance.now() });
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      return { ms: performance.now() - start };
    },
  };
}

/**
 * One big file of random bytes. With `bytesPerS`, the writer is paced to that rate (a
 * producer that takes seconds to write a checkpoint), so a sync that fires while the
 * file is still being written shows it by sending it more than once.
 */
export function big(bytes = 200 * 1024 * 1024, bytesPerS?: number, chunk = 1024 * 1024): Workload {
  const mib = Math.round(bytes / 1024 / 1024);
  return {
    name: bytesPerS ? 'big-slow' : 'big',
    label: bytesPerS ? `one ${mib} MiB file written over ${(bytes / bytesPerS).toFixed(0)} s` : `one ${mib} MiB file`,
    files: 1,
    async write(root, folder, onWritten) {
      await mkdir(join(root, folder), { recursive: true });
      const rel = `${folder}/big.bin`;
      const head = `${randomUUID()} head\n`;
      const tail = `\n${randomUUID()} tail`;
      const hash = createHash('sha256');
      const buf = Buffer.alloc(chunk);
      const start = performance.now();
      const fh = await open(join(root, rel), 'w');
      try {
        for (let off = 0; off < bytes; off += chunk) {
          if (bytesPerS) await sleepUntil(start + (off / bytesPerS) * 1000); // the producer's pace
          const n = Math.min(chunk, bytes - off);
          const piece = buf.subarray(0, n);
          randomFillSync(piece);
          if (off === 0) piece.write(head);
          if (off + n === bytes) piece.write(tail, n - tail.length);
          hash.update(piece);
          await fh.write(piece, 0, n);
        }
      } finally {
        await fh.close();
      }
      const writtenAt = performance.now();
      onWritten({ rel, size: bytes, head, tail, writtenAt });
      return { ms: writtenAt - start, hashes: new Map([[rel, hash.digest('hex')]]) };
    },
  };
}
