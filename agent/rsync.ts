// Runs one rsync and tells what happened: exit status, what it sent, what it
// deleted or refused to delete. Owns the child: abort() kills it.
import { spawn } from 'node:child_process';
import { missingBinary } from '../core/errors.ts';
import { dieWithParent } from '../core/parent-death.ts';
import { PROGRESS_READ_MS, ProgressFile } from './progress-file.ts';

export interface RsyncStats {
  /** files in the sender's list ("Number of files") */
  files: number;
  /** regular files sent */
  filesTransferred: number;
  /** files deleted on the receiver */
  filesDeleted: number;
  /** deletions rsync skipped because of --max-delete */
  deletionsSkipped: number;
  bytesSent: number;
  bytesReceived: number;
  /** the size of the regular files sent ("Total transferred file size"), not what crossed the wire */
  transferredSize: number;
}

export interface RsyncResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stats: RsyncStats;
  /** the last lines rsync wrote to stderr */
  stderr: string;
  /** --itemize-changes / --out-format lines, when asked for */
  items: string[];
  /** source paths (as rsync names them: absolute) that vanished during the pass (exit 24): not sent */
  vanished: string[];
  /** listed source paths (--files-from) that were gone when rsync looked (link_stat ENOENT, exit 23): not sent */
  missing: string[];
  /** stderr held a line other than vanished or missing files and rsync's summary of them: a real error */
  otherErrors: boolean;
  /**
   * Folders --delete left in place because what they hold is excluded from the
   * run ("cannot delete non-empty directory", which rsync prints on stdout and
   * exits 0 after), as rsync names them: relative to the destination. Read
   * from a piped stdout only (not a --info=progress2 run's).
   */
  notEmptied: string[];
  durationMs: number;
}

export interface RsyncRun {
  result: Promise<RsyncResult>;
  /** kills rsync (and with it the ssh it started) */
  abort(): void;
  pid: number | undefined;
  /** reads its progress output now, between the timer's reads (nothing without `progress`, or once it has ended) */
  readProgress(): void;
}

/** A folder as rsync must be told it to mean its contents: with one trailing slash. */
export function asDir(path: string): string {
  return path.replace(/\/?$/, '/');
}

/** rsync exit codes that mean the pass did what it was asked. 24: a source file vanished mid-pass; a later event covers it. */
export const RSYNC_OK = new Set([0, 24]);
/** --max-delete stopped some deletions */
export const RSYNC_MAX_DELETE = 25;

const NUMBER = '([\\d,.]+)';
function readNumber(text: string, label: string): number {
  const m = new RegExp(`${label}: ${NUMBER}`).exec(text);
  return m?.[1] ? Number(m[1].replace(/[,.]/g, '')) : 0;
}

export function parseStats(text: string): RsyncStats {
  const skipped = /Deletions stopped due to --max-delete limit \(([\d,.]+) skipped\)/.exec(text);
  return {
    files: readNumber(text, 'Number of files'),
    filesTransferred: readNumber(text, 'Number of regular files transferred'),
    filesDeleted: readNumber(text, 'Number of deleted files'),
    deletionsSkipped: skipped?.[1] ? Number(skipped[1].replace(/[,.]/g, '')) : 0,
    bytesSent: readNumber(text, 'Total bytes sent'),
    bytesReceived: readNumber(text, 'Total bytes received'),
    transferredSize: readNumber(text, 'Total transferred file size'),
  };
}

/** Says in a few words what an rsync exit code means, for logs and errors. */
export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `killed by ${signal}`;
  switch (code) {
    case 0: return 'ok';
    case 5: return 'could not start the rsync protocol (is rsync installed on the standby?)';
    case 10: return 'socket I/O error';
    case 11: return 'file I/O error (disk full on the standby?)';
    case 12: return 'protocol data stream error (connection lost or disk full)';
    case 20: return 'interrupted by a signal';
    case 23: return 'partial transfer: some files could not be sent (permissions? disk full?)';
    case 24: return 'some source files vanished during the pass';
    case 25: return 'deletions stopped by --max-delete';
    case 30: return 'I/O timeout: the link stalled';
    case 35: return 'timeout waiting for daemon connection';
    case 255: return 'ssh failed: standby unreachable or login refused';
    default: return `exit code ${code}`;
  }
}

/** rsync's closing lines for vanished or missing source files (their own lines say which) */
const SUMMARY = /^rsync (?:error|warning): some files(?:\/attrs were not transferred| vanished before they could be transferred)/;

/** A name as rsync prints it in a message (non-printable and, under LC_ALL=C, non-ASCII bytes as \#ooo), back to the name. */
export function unescapeName(printed: string): string {
  if (!printed.includes('\\#')) return printed;
  return Buffer.from(printed.replace(/\\#([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))), 'latin1').toString('utf8');
}

/** A pass whose only trouble was listed files gone by the time rsync looked: it sent everything else. */
export function onlyMissing(result: RsyncResult): boolean {
  return result.code === 23 && result.missing.length > 0 && !result.otherErrors;
}

/**
 * `progress`: rsync's stdout (its --info=progress2 lines, pass-progress.ts) goes to a file read every
 * PROGRESS_READ_MS and whenever readProgress() asks, and each read's complete lines are handed over
 * (progress-file.ts says why not a pipe)
 */
export function runRsync(args: string[], options: { stdin?: Buffer; cwd?: string; itemize?: boolean; progress?: (lines: string) => void } = {}): RsyncRun {
  const started = performance.now();
  const [program, argv] = dieWithParent('rsync', args); // a killed agent takes its rsync along (parent-death.ts)
  const progress = options.progress;
  const file = progress ? new ProgressFile() : undefined;
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(program, argv, { cwd: options.cwd, stdio: ['pipe', file?.fd ?? 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  } catch (err) {
    file?.close();
    throw err;
  }
  const readProgress = (): void => {
    const lines = file?.read(); // '' once the file is closed
    if (lines) progress?.(lines);
  };
  const reader = file && progress ? setInterval(readProgress, PROGRESS_READ_MS) : undefined;
  const result = new Promise<RsyncResult>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const items: string[] = [];
    const vanished: string[] = [];
    const missing: string[] = [];
    const notEmptied: string[] = [];
    let otherErrors = false;
    let partial = '';
    let errPartial = '';
    child.stdout?.on('data', (d: Buffer) => {
      const text = d.toString();
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const kept = /^cannot delete non-empty directory: (.*)$/.exec(line);
        if (kept?.[1]) notEmptied.push(unescapeName(kept[1]));
        else if (options.itemize && line.length > 0) items.push(line);
      }
      // stats are at the end: keep a bounded tail only
      stdout = (stdout + text).slice(-8192);
    });
    child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      // every vanished file is kept (not only the tail): the owner must not count them as sent
      const lines = (errPartial + text).split('\n');
      errPartial = lines.pop() ?? '';
      for (const line of lines) {
        const gone = /^(?:rsync: (?:\[sender\] )?)?file has vanished: "(.*)"$/.exec(line);
        const notThere = /^rsync: (?:\[sender\] )?link_stat "(.*)" failed: No such file or directory \(2\)$/.exec(line);
        if (gone?.[1]) vanished.push(unescapeName(gone[1]));
        else if (notThere?.[1]) missing.push(unescapeName(notThere[1]));
        else if (line.trim() !== '' && !SUMMARY.test(line)) otherErrors = true;
      }
      stderr = (stderr + text).slice(-8192);
    });
    child.once('error', (err) => {
      clearInterval(reader);
      file?.close();
      const e = err as NodeJS.ErrnoException;
      reject(e.code === 'ENOENT' ? missingBinary('rsync', 'rsync', 'this host', err) : err);
    });
    child.once('close', (code, signal) => {
      clearInterval(reader);
      if (file) {
        // the last progress lines, then the --stats block
        stdout = file.finish();
        progress?.(stdout);
      }
      if (options.itemize && partial) items.push(partial);
      resolve({
        code,
        signal,
        stats: parseStats(stdout + '\n' + stderr),
        stderr: stderr.trim(),
        items,
        vanished,
        missing,
        otherErrors,
        notEmptied,
        durationMs: performance.now() - started,
      });
    });
  });
  // rsync may exit before reading all of stdin (e.g. ssh failed): that EPIPE is expected and reported through the exit code.
  child.stdin!.on('error', () => {});
  child.stdin!.end(options.stdin ?? Buffer.alloc(0));
  return {
    result,
    pid: child.pid,
    readProgress,
    abort() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}
