// The proxy's state on disk: an append-only event log (one JSON line per
// event, fsynced before the event takes effect) and a snapshot of the state
// it adds up to (written atomically: temp file, fsync, rename, fsync of the
// folder). On open, the snapshot is read and the log's later events replayed,
// which covers a crash between the two writes.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '../core/durable-file.ts';
import { StandbyError } from '../core/errors.ts';
import { INITIAL_STATE, reduce, type NewEvent, type ProxyEvent, type ProxyState } from './state.ts';

const LOG = 'events.jsonl';
const SNAPSHOT = 'state.json';

function readEvents(file: string): ProxyEvent[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return parseEvents(text, file);
}

function parseEvents(text: string, file: string): ProxyEvent[] {
  const events: ProxyEvent[] = [];
  const lines = text.split('\n');
  for (const [i, line] of lines.entries()) {
    if (line === '') continue;
    try {
      events.push(JSON.parse(line) as ProxyEvent);
    } catch {
      // Only the last line may be torn (a crash mid-append, before its fsync returned: the event never took effect).
      if (i === lines.length - 1) break;
      throw new StandbyError('STANDBY_ERR_STATE_CORRUPT', `${file} line ${i + 1} is not JSON: the event log is damaged; move it aside to start from the snapshot alone`, { file, line: i + 1 });
    }
  }
  return events;
}

export class StateStore {
  readonly dir: string;
  #state: ProxyState;
  #fd: number;
  #recent: ProxyEvent[];
  #appended = new Set<(e: ProxyEvent) => void>();

  private constructor(dir: string, state: ProxyState, fd: number, recent: ProxyEvent[]) {
    this.dir = dir;
    this.#state = state;
    this.#fd = fd;
    this.#recent = recent;
  }

  static open(dir: string): StateStore {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StandbyError('STANDBY_ERR_STATE_UNWRITABLE', `cannot create the state folder ${dir}: ${(err as Error).message}; set "stateDir" to a folder the proxy can write`, { dir }, { cause: err });
    }
    let state: ProxyState = INITIAL_STATE;
    try {
      state = { ...INITIAL_STATE, ...(JSON.parse(readFileSync(join(dir, SNAPSHOT), 'utf8')) as ProxyState) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new StandbyError('STANDBY_ERR_STATE_CORRUPT', `${join(dir, SNAPSHOT)} cannot be read: ${(err as Error).message}; move it aside to rebuild the state from the event log`, { dir }, { cause: err });
      }
    }
    const events = readEvents(join(dir, LOG));
    for (const e of events) if (e.seq > state.seq) state = reduce(state, e);
    const fd = openSync(join(dir, LOG), 'a', 0o600);
    const store = new StateStore(dir, state, fd, events.slice(-1000));
    return store;
  }

  get state(): ProxyState {
    return this.#state;
  }

  /** the last events, oldest first (the API's history) */
  events(limit = 200): ProxyEvent[] {
    return this.#recent.slice(-limit);
  }

  /** Every event of the log, oldest first, read from disk (the failover report's history; `events()` keeps the last 1000). */
  async history(): Promise<ProxyEvent[]> {
    const file = join(this.dir, LOG);
    return parseEvents(await readFile(file, 'utf8'), file);
  }

  /** Calls `listener` with each event once it is written and applied (the metrics follow the log so); returns what stops it. It must not throw. */
  onAppend(listener: (e: ProxyEvent) => void): () => void {
    this.#appended.add(listener);
    return () => this.#appended.delete(listener);
  }

  /** Writes the event durably, then applies it; returns the new state. */
  append(e: NewEvent): ProxyState {
    const event = { ...e, seq: this.#state.seq + 1, at: new Date().toISOString() } as ProxyEvent;
    writeSync(this.#fd, JSON.stringify(event) + '\n');
    fsyncSync(this.#fd);
    this.#state = reduce(this.#state, event);
    this.#recent.push(event);
    if (this.#recent.length > 1000) this.#recent.splice(0, this.#recent.length - 1000);
    this.#snapshot();
    for (const listener of this.#appended) listener(event);
    return this.#state;
  }

  #snapshot(): void {
    writeFileDurably(join(this.dir, SNAPSHOT), JSON.stringify(this.#state));
  }

  close(): void {
    closeSync(this.#fd);
  }
}
