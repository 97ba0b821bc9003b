// The demo's (and the full-cycle test's) writer: it imitates a developer (many
// small edits, creates, renames and deletes in a few folders) and a training
// job (a checkpoint file growing by 64 KiB every 10th op) writing through the
// proxy's one URL, with the built-in workspace server's file API
// (proxy/provision/workspace-files.ts), so each write lands on whichever host
// serves. One request at a time; a failed one (the transition page's 503, a
// reset, a timeout) is recorded as not acknowledged and the writer goes on: it
// never pauses for a failover. Its log (records()) is what demo-ledger.ts
// checks a workspace against.
//
// The sequence of ops depends on the seed only, never on the answers: the
// writer's model of its files assumes every op happened (a PUT creates what a
// failed create left missing; a delete of a missing file is a 200; a rename
// of a missing one a 404, recorded as not acknowledged).
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { seededRandom } from '../../core/seeded-random.ts';

export type WriteOp = 'create' | 'edit' | 'rename' | 'delete' | 'append';

export interface WriteRecord {
  seq: number;
  op: WriteOp;
  path: string;
  /** a rename's new path */
  to?: string;
  /** the content's sha256 after the op (the whole file's, as the server answered, for append and rename); null when the op leaves no file */
  sha256: string | null;
  /** the file's size after the op, bytes (what was sent, when not acknowledged) */
  size: number;
  /** acknowledged: the server answered 200 with the file API's answer (and, for create/edit, the sha256 sent) */
  ok: boolean;
  /** Date.now() when the request was sent */
  sentAt: number;
  /** Date.now() when the answer came (for a failed op: when it failed) */
  ackedAt: number;
  /** the serving workspace server's name (its answer's `name`) */
  servedBy?: string;
  error?: string;
}

export interface WriterOptions {
  /** the proxy's URL (or a workspace server's) */
  baseUrl: string;
  /** the PRNG's seed (default 1): the same seed, the same ops */
  seed?: number;
  /** the time from one op's start to the next's, ms (default 20) */
  everyMs?: number;
  /** a request not answered within this is a failure, ms (default 2000) */
  requestTimeoutMs?: number;
  /** headers sent with every request (e.g. a cookie the proxy wants) */
  headers?: Record<string, string>;
  /** the checkpoint starts again (a fresh 64 KiB save, an `edit`) once it reaches this, bytes (default 4 MiB): bounds what the server hashes per append */
  maxCheckpointBytes?: number;
  /** the writer stops writing after this many ops (default 100000): bounds its memory */
  maxOps?: number;
}

export const CHECKPOINT_PATH = 'checkpoints/ckpt.bin';
const CHUNK_BYTES = 64 * 1024;
const FOLDERS = ['src', 'src/lib', 'docs', 'notes', 'data'];
/** at most this many of the writer's small files exist at once: past it, it deletes */
const MAX_FILES = 150;
const WORDS = ['tensor', 'loss', 'epoch', 'batch', 'grad', 'model', 'layer', 'step', 'lr', 'eval', 'token', 'cache', 'shard', 'seed', 'norm', 'attn'];


function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** One planned op: what to send. */
interface Plan {
  op: WriteOp;
  path: string;
  to?: string;
  body?: Buffer;
}

export class Writer {
  readonly #baseUrl: string;
  readonly #everyMs: number;
  readonly #timeoutMs: number;
  readonly #headers: Record<string, string>;
  readonly #maxCheckpoint: number;
  readonly #maxOps: number;
  readonly #rand: () => number;
  readonly #records: WriteRecord[] = [];
  /** the writer's small files as it believes them to be (every op assumed done) */
  readonly #files: string[] = [];
  #nextName = 0;
  #checkpointBytes = 0;
  #seq = 0;
  #loop: Promise<void> | undefined;
  #stopping = false;
  readonly #wake = new AbortController();

  constructor(o: WriterOptions) {
    this.#baseUrl = o.baseUrl.replace(/\/+$/, '');
    this.#everyMs = o.everyMs ?? 20;
    this.#timeoutMs = o.requestTimeoutMs ?? 2000;
    this.#headers = o.headers ?? {};
    this.#maxCheckpoint = o.maxCheckpointBytes ?? 4 * 1024 * 1024;
    this.#maxOps = o.maxOps ?? 100_000;
    this.#rand = seededRandom(o.seed ?? 1);
  }

  /** Starts writing (once). */
  start(): void {
    if (this.#loop !== undefined) return;
    this.#loop = this.#run();
  }

  /** Stops writing; resolves once the request in flight, if any, has ended (at most requestTimeoutMs). */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake.abort();
    await this.#loop;
  }

  /** The log so far, in seq order (a copy). */
  records(): WriteRecord[] {
    return this.#records.slice();
  }

  /** How many ops were sent, acknowledged, and failed. */
  counts(): { sent: number; acknowledged: number; failed: number } {
    const acknowledged = this.#records.filter((r) => r.ok).length;
    return { sent: this.#records.length, acknowledged, failed: this.#records.length - acknowledged };
  }

  async #run(): Promise<void> {
    while (!this.#stopping && this.#seq < this.#maxOps) {
      const t0 = performance.now();
      await this.#send(this.#plan());
      const wait = this.#everyMs - (performance.now() - t0);
      if (wait > 0 && !this.#stopping) await sleep(wait, undefined, { signal: this.#wake.signal }).catch(() => undefined);
    }
  }

  /** The next op, from the PRNG and the writer's model only; the model is updated as if it succeeds. */
  #plan(): Plan {
    const seq = this.#seq + 1;
    if (seq % 10 === 0) {
      const body = this.#bytes(CHUNK_BYTES);
      if (this.#checkpointBytes === 0 || this.#checkpointBytes >= this.#maxCheckpoint) {
        // a fresh save (the first, or after the cap)
        const op = this.#checkpointBytes === 0 ? 'create' : 'edit';
        this.#checkpointBytes = body.length;
        return { op, path: CHECKPOINT_PATH, body };
      }
      this.#checkpointBytes += body.length;
      return { op: 'append', path: CHECKPOINT_PATH, body };
    }
    const r = this.#rand();
    const n = this.#files.length;
    if (n === 0 || (n < MAX_FILES && r < 0.4)) {
      const path = this.#newPath();
      this.#files.push(path);
      return { op: 'create', path, body: this.#text(path, seq) };
    }
    const i = Math.floor(this.#rand() * n);
    const path = this.#files[i]!;
    if (n >= MAX_FILES || r >= 0.9) {
      this.#files.splice(i, 1);
      return { op: 'delete', path };
    }
    if (r >= 0.8) {
      const to = this.#newPath();
      this.#files[i] = to;
      return { op: 'rename', path, to };
    }
    return { op: 'edit', path, body: this.#text(path, seq) };
  }

  #newPath(): string {
    const folder = FOLDERS[Math.floor(this.#rand() * FOLDERS.length)]!;
    return `${folder}/file-${++this.#nextName}.txt`;
  }

  /** A small text file, 100 B to ~2 KB. */
  #text(path: string, seq: number): Buffer {
    const lines = [`// ${path} (write ${seq})`];
    const count = 2 + Math.floor(this.#rand() * 40);
    for (let i = 0; i < count; i++) {
      const words: string[] = [];
      for (let w = 0; w < 6; w++) words.push(WORDS[Math.floor(this.#rand() * WORDS.length)]!);
      lines.push(`${words.join(' ')} ${Math.floor(this.#rand() * 1e6)}`);
    }
    return Buffer.from(lines.join('\n') + '\n');
  }

  #bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) out.writeUInt32LE(Math.floor(this.#rand() * 4294967296), i);
    return out;
  }

  async #send(plan: Plan): Promise<void> {
    const seq = ++this.#seq;
    const sentSha = plan.body !== undefined && plan.op !== 'append' ? sha256(plan.body) : null;
    const base: Omit<WriteRecord, 'ok' | 'ackedAt' | 'sha256' | 'size'> = { seq, op: plan.op, path: plan.path, ...(plan.to !== undefined ? { to: plan.to } : {}), sentAt: Date.now() };
    const failed = (error: string): WriteRecord => ({ ...base, sha256: sentSha, size: plan.body?.length ?? 0, ok: false, ackedAt: Date.now(), error: error.slice(0, 300) });
    let url = `${this.#baseUrl}/files/${encodePath(plan.path)}`;
    let method = 'PUT';
    if (plan.op === 'append') url += '?append=1';
    else if (plan.op === 'delete') method = 'DELETE';
    else if (plan.op === 'rename') {
      method = 'POST';
      url += `?renameTo=${encodeURIComponent(plan.to!)}`;
    }
    let record: WriteRecord;
    try {
      const res = await fetch(url, {
        method,
        headers: { ...this.#headers, ...(plan.body !== undefined ? { 'content-type': 'application/octet-stream' } : {}) },
        ...(plan.body !== undefined ? { body: plan.body } : {}),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => undefined);
        record = failed(`HTTP ${res.status}`);
      } else {
        const answer = (await res.json().catch(() => undefined)) as { ok?: unknown; name?: unknown; path?: unknown; size?: unknown; sha256?: unknown } | undefined;
        const sha = answer?.sha256;
        if (answer?.ok !== true || answer.path !== plan.path || typeof answer.size !== 'number' || !(typeof sha === 'string' || sha === null)) {
          record = failed('HTTP 200 without the file API\'s answer');
        } else if (sentSha !== null && sha !== sentSha) {
          record = failed(`the server answered sha256 ${String(sha)} for content of sha256 ${sentSha}`);
        } else {
          record = { ...base, sha256: sha, size: answer.size, ok: true, ackedAt: Date.now(), ...(typeof answer.name === 'string' ? { servedBy: answer.name } : {}) };
        }
      }
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      record = failed(e.name === 'TimeoutError' ? `no answer within ${this.#timeoutMs} ms` : `${e.message}${e.cause?.code ? ` (${e.cause.code})` : ''}`);
    }
    this.#records.push(record);
  }
}
