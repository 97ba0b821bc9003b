// How far a full pass got, read from rsync's own progress output
// (--info=progress2, every rsync since 3.1.0 alike, printed by the sending
// side, this host's): one line per file sent, separated by \r, e.g.
//   "  13,860 100%  98.78kB/s  0:00:00 (xfr#3000, to-chk=0/3031)"
// bytes of the files sent so far, then how many files are left to check of
// how many: "ir-chk" while rsync is still listing the tree (the total grows),
// "to-chk" once it has listed all. A pass runs one rsync per root (and may run
// one root twice): the figures add up over the pass.

export interface ProgressFigures {
  /** files sent and checked so far */
  files: number;
  /** bytes sent so far */
  bytes: number;
  /** files in the tree, once rsync has counted them all (null before) */
  totalFiles: number | null;
  /** bytes per second over the pass so far */
  rateBps: number;
  /** how long the pass has run, ms */
  elapsedMs: number;
}

export interface ProgressLine {
  bytes: number;
  /** files checked (the total minus those left), when the line says */
  checked: number | undefined;
  /** the tree's file count, final (to-chk) or still growing (ir-chk) */
  total: number | undefined;
  final: boolean;
}

const LINE = /^\s*([\d,.]+)\s+\d+%\s+\S+\s+\S+(?:\s+\(xfr#\d+,\s+(ir|to)-chk=(\d+)\/(\d+)\))?\s*$/;

/** One progress2 line, or undefined when it is not one (the --stats block, a message). */
export function parseProgressLine(line: string): ProgressLine | undefined {
  const m = LINE.exec(line);
  if (!m) return undefined;
  const bytes = Number(m[1]!.replace(/[,.]/g, ''));
  if (m[2] === undefined) return { bytes, checked: undefined, total: undefined, final: false };
  const left = Number(m[3]);
  const total = Number(m[4]);
  return { bytes, checked: Math.max(0, total - left), total, final: m[2] === 'to' };
}

interface RunFigures {
  bytes: number;
  checked: number;
  total: number | undefined;
  final: boolean;
}

/** The progress of one full pass: fed rsync's stdout, run by run; read at any time. */
export class PassProgress {
  readonly #started = performance.now();
  /** per root (keyed by its destination): the latest run's figures */
  #runs = new Map<string, RunFigures>();
  /** bytes of earlier runs of a root run again */
  #bytesBefore = 0;
  #current: string | undefined;

  /** A run for `root` starts: returns what to feed its stdout to. */
  run(root: string): (chunk: string) => void {
    const earlier = this.#runs.get(root);
    if (earlier) this.#bytesBefore += earlier.bytes;
    const figures: RunFigures = { bytes: 0, checked: 0, total: undefined, final: false };
    this.#runs.set(root, figures);
    this.#current = root;
    let partial = '';
    return (chunk) => {
      const parts = (partial + chunk).split(/[\r\n]/);
      partial = parts.pop() ?? '';
      // the newest complete line is all that counts: each one restates the totals
      for (let i = parts.length - 1; i >= 0; i--) {
        const p = parseProgressLine(parts[i]!);
        if (!p) continue;
        figures.bytes = p.bytes;
        if (p.checked !== undefined) figures.checked = p.checked;
        if (p.total !== undefined) figures.total = p.total;
        figures.final = p.final;
        break;
      }
      if (partial.length > 4096) partial = ''; // not progress output: never grow without bound
    };
  }

  figures(now = performance.now()): ProgressFigures {
    let files = 0;
    let bytes = this.#bytesBefore;
    let total = 0;
    for (const r of this.#runs.values()) {
      files += r.checked;
      bytes += r.bytes;
      total += r.total ?? 0;
    }
    const current = this.#current === undefined ? undefined : this.#runs.get(this.#current);
    const elapsedMs = Math.round(now - this.#started);
    return {
      files,
      bytes,
      // known once the root being sent has been listed whole (earlier roots were)
      totalFiles: current?.final ? total : null,
      rateBps: elapsedMs > 0 ? Math.round((bytes * 1000) / elapsedMs) : 0,
      elapsedMs,
    };
  }
}
