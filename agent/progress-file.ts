// Where a full pass's rsync writes its progress output (--info=progress2):
// a file, not a pipe. rsync flushes one line per file it sends, and a pipe
// wakes this process for each of them: about 1 s of CPU per 100,000 files
// (measured: 1.05-1.10 s), taken from rsync and ssh on the same small host
// while the restore or the full pass is what the developer waits for. The
// file is read every PROGRESS_READ_MS instead, and when a heartbeat or a
// status asks (StandbyPush.progress), and only its newest lines count (each
// progress line restates the totals).
//
// The file is unlinked as soon as it is open (rsync writes through the
// inherited descriptor), so a killed agent leaves nothing behind; it is
// opened O_APPEND, so it can be emptied under rsync's feet once it is big.
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** how often the file's newest lines are read, ms */
export const PROGRESS_READ_MS = 500;
/** bytes read from the file's end each time: many progress lines, and the whole --stats block at the end */
const TAIL_BYTES = 8_192;
/** above this the file is emptied (about 100,000 lines), when that cannot cut the closing --stats block */
const EMPTY_ABOVE_BYTES = 8 * 1024 * 1024;
/**
 * The file is emptied only while rsync still has more than this many files to
 * check: it prints its --stats block only after the last of them, which it
 * cannot reach in the microseconds between this read and the truncation.
 */
const EMPTY_WHILE_LEFT = 1_000;

let files = 0;

export class ProgressFile {
  /** rsync's stdout */
  readonly fd: number;
  #read = 0;
  #closed = false;

  constructor(dir = tmpdir()) {
    const path = join(dir, `standby-rsync-progress-${process.pid}-${++files}`);
    // a+ with x: O_APPEND | O_RDWR | O_CREAT | O_EXCL
    this.fd = openSync(path, 'ax+', 0o600);
    try {
      unlinkSync(path);
    } catch (err) {
      closeSync(this.fd);
      throw err;
    }
  }

  /** The complete lines written since the last read (at most the last TAIL_BYTES of them), '' when none. */
  read(): string {
    if (this.#closed) return '';
    const size = fstatSync(this.fd).size;
    if (size === this.#read) return '';
    if (size < this.#read) this.#read = 0;
    const from = Math.max(this.#read, size - TAIL_BYTES);
    const buf = Buffer.alloc(size - from);
    const got = readSync(this.fd, buf, 0, buf.length, from);
    const bytes = buf.subarray(0, got);
    // the last line may still be being written: up to the last separator only
    const end = Math.max(bytes.lastIndexOf(13), bytes.lastIndexOf(10));
    if (end < 0) return '';
    // a read that starts inside a line drops the rest of that line
    const start = from > this.#read ? firstSeparator(bytes) + 1 : 0;
    this.#read = from + end + 1;
    const text = bytes.subarray(start, end + 1).toString();
    if (size > EMPTY_ABOVE_BYTES && leftToCheck(text) > EMPTY_WHILE_LEFT) {
      ftruncateSync(this.fd, 0);
      this.#read = 0;
    }
    return text;
  }

  /** The output's last TAIL_BYTES (progress lines, then the --stats block), and the file closed. */
  finish(): string {
    if (this.#closed) return '';
    const size = fstatSync(this.fd).size;
    const from = Math.max(0, size - TAIL_BYTES);
    const buf = Buffer.alloc(size - from);
    const got = readSync(this.fd, buf, 0, buf.length, from);
    this.close();
    return buf.subarray(0, got).toString();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.fd);
  }
}

function firstSeparator(bytes: Buffer): number {
  const cr = bytes.indexOf(13);
  const lf = bytes.indexOf(10);
  return cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
}

/** The files left to check in the newest progress line of `text` ("to-chk=N/M" or "ir-chk=N/M"), 0 when none says. */
function leftToCheck(text: string): number {
  const all = [...text.matchAll(/(?:ir|to)-chk=(\d+)\//g)];
  const last = all[all.length - 1];
  return last?.[1] ? Number(last[1]) : 0;
}
