// What a page of the developer's editor hears from the proxy: a server-sent
// event stream at /_standby/events (proxy/pages/editor-script.ts follows it)
// carrying the phase, which side serves, whether it is ready, whether the GPU
// is in doubt, and a generation that changes on every route move. An event
// goes out on every change: a transition of the state machine, a heartbeat or
// disconnect, a probe's answer, and a tick (for a heartbeat that does not
// come) while any stream is open. Fixed words only, as /_standby/status: with
// the login off it is public (docs/security.md). A stream opened with the
// admin's dashboard session (admin-session.ts) also gets named events
// (`event: status`, `event: lag`: sendAdmin) that no other stream ever sees.
// Streams are bounded (the per-client cap, and limits.maxEventStreams in all)
// and closed at shutdown.
import { createHmac, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { readStateFile, writeStateFile } from '../core/durable-file.ts';
import type { Logger } from '../core/log.ts';
import { sendProblem } from './problem.ts';
import type { PublicStatus } from './pages/public-status.ts';
import type { ProxyState, Side } from './state.ts';

/** Where the proxy serves the stream (inside its reserved /_standby/ prefix). */
export const EVENTS_PATH = '/_standby/events';

/** One event's data: what a page needs to decide to show its overlay and to reload, in fixed words. */
export interface EditorState {
  /** as /_standby/status says it: normal, suspect, failing_over, failed_over, recovering, switching_back, ... */
  phase: string;
  /** the role that serves the URL; null between fence and route */
  serving: Side | null;
  /** the serving side's code-server answers: a page may load there */
  ready: boolean;
  /** the GPU that serves is in doubt (detector.ts doubted): a failover may follow, or nothing */
  suspect: boolean;
  /** opaque; changes on every route move: a page loaded under another generation reloads */
  generation: string;
  /** the one sentence /_standby/status shows for this phase */
  message: string;
}

export interface EditorEventsDeps {
  state(): ProxyState;
  publicStatus(): PublicStatus;
  /** the GPU that serves is in doubt now */
  doubt(): boolean;
  /** where the generation's key is kept (<stateDir>/editor-key), so a restarted proxy names generations as before */
  stateDir: string;
  /** streams open at once, all clients together (limits.maxEventStreams) */
  maxStreams: number;
  log: Logger;
  /** a comment line on every stream this often, so idle intermediaries keep it open, ms (default 15000) */
  keepAliveMs?: number;
  /** how often the state is checked while a stream is open (a missing heartbeat fires no event), ms (default 100) */
  tickMs?: number;
}

/** What a browser waits before it reconnects a dropped stream (the SSE `retry:` field), ms. */
const RETRY_MS = 1_000;
/** a stream whose client stopped reading and holds this much unsent is closed (states are ~200 bytes) */
const MAX_UNSENT_BYTES = 64 * 1024;
/** the generation of a page served by a side the route has left since: never a real one */
const LEFT = 'left';

export class EditorEvents {
  #deps: EditorEventsDeps;
  #key: Buffer;
  #streams = new Set<ServerResponse>();
  /** the streams of admin sessions (a subset of #streams), each with the check that its session still holds */
  #admin = new Map<ServerResponse, () => boolean>();
  /** the epoch of the last route move (the durable epoch at start): what the generation names */
  #routedEpoch: number;
  #last: string | undefined;
  #tick: NodeJS.Timeout | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  #closed = false;
  /** streams refused for the global cap */
  refused = 0;

  constructor(deps: EditorEventsDeps) {
    this.#deps = deps;
    this.#routedEpoch = deps.state().epoch;
    const file = join(deps.stateDir, 'editor-key');
    let key = readStateFile(file, { what: "the editor events' generation key" });
    if (key === undefined || !/^[0-9a-f]{64}$/.test(key.trim())) {
      key = randomBytes(32).toString('hex');
      writeStateFile(file, key + '\n', { what: "the editor events' generation key" });
    }
    this.#key = Buffer.from(key.trim(), 'hex');
  }

  /** streams open now */
  get open(): number {
    return this.#streams.size;
  }

  /** admin streams open now */
  get adminOpen(): number {
    return this.#admin.size;
  }

  /** A named event to the admin sessions' streams only (the dashboard's status, lag samples). */
  sendAdmin(event: 'status' | 'lag', data: unknown): void {
    if (this.#closed || this.#admin.size === 0) return;
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const [res, holds] of this.#admin) {
      // a session that ended (expired, the admin token rotated) hears no more: the stream ends, the browser asks again
      if (holds()) this.#write(res, frame);
      else res.destroy();
    }
  }

  /** The route moved (the state machine's `routed` event): pages loaded before it reload. */
  routed(epoch: number): void {
    this.#routedEpoch = epoch;
    this.check();
  }

  /** The generation a page served by `side` now belongs to (the injected script carries it). */
  generationFor(side: Side): string {
    const s = this.#deps.state();
    return side === s.active ? this.#generation(s.active) : LEFT;
  }

  #generation(active: Side): string {
    // keyed: the public learns that the route moved, not the epoch (how many failovers there were)
    return createHmac('sha256', this.#key).update(`${this.#routedEpoch}:${active}`).digest('base64url').slice(0, 16);
  }

  current(): EditorState {
    const s = this.#deps.state();
    const status = this.#deps.publicStatus();
    return {
      phase: status.phase,
      serving: status.active?.role ?? null,
      ready: status.ready,
      suspect: status.phase === 'suspect' || this.#deps.doubt(),
      generation: this.#generation(s.active),
      message: status.message,
    };
  }

  /** Sends the state to every stream if it changed since the last one sent. Cheap: called on every signal. */
  check(): void {
    if (this.#closed || this.#streams.size === 0) return;
    const data = JSON.stringify(this.current());
    if (data === this.#last) return;
    this.#last = data;
    const frame = `data: ${data}\n\n`;
    for (const res of this.#streams) this.#write(res, frame);
  }

  /**
   * Answers GET /_standby/events (the caller checked the path and, with the login on, the session). `admin`: an
   * admin session's stream, which also gets sendAdmin's events while the check says the session holds.
   */
  serve(req: IncomingMessage, res: ServerResponse, admin?: () => boolean): void {
    if (req.method !== 'GET') return sendProblem(res, 'STANDBY_ERR_METHOD_NOT_ALLOWED', `${EVENTS_PATH} takes GET (an EventSource)`, { headers: { allow: 'GET' } });
    if (this.#closed) return sendProblem(res, 'STANDBY_ERR_INTERNAL', 'the proxy is closing; retry shortly', { status: 503, headers: { 'retry-after': '5' } });
    if (this.#streams.size >= this.#deps.maxStreams) {
      this.refused++;
      if (this.refused === 1 || this.refused % 1000 === 0) this.#deps.log.warn({ open: this.#streams.size, refused: this.refused, cap: this.#deps.maxStreams }, 'event stream refused: too many open (limits.maxEventStreams)');
      return sendProblem(res, 'STANDBY_ERR_TOO_MANY_REQUESTS', 'too many event streams are open on this proxy; retry later', { status: 503, headers: { 'retry-after': '10' } });
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // a buffering reverse proxy in front (nginx) would hold the events back
      'x-accel-buffering': 'no',
      'x-content-type-options': 'nosniff',
    });
    req.socket.setNoDelay(true);
    this.#streams.add(res);
    if (admin) this.#admin.set(res, admin);
    res.once('close', () => {
      this.#streams.delete(res);
      this.#admin.delete(res);
      if (this.#streams.size === 0) this.#stopTimers();
    });
    this.#write(res, `retry: ${RETRY_MS}\n\ndata: ${JSON.stringify(this.current())}\n\n`);
    this.#startTimers();
  }

  #write(res: ServerResponse, text: string): void {
    if (res.destroyed || res.writableEnded) return;
    // a client that does not read is not buffered for without bound
    if (res.writableLength > MAX_UNSENT_BYTES) return void res.destroy();
    res.write(text);
  }

  #startTimers(): void {
    this.#tick ??= setInterval(() => this.check(), this.#deps.tickMs ?? 100);
    this.#keepAlive ??= setInterval(() => {
      for (const res of this.#streams) this.#write(res, ': keep-alive\n\n');
    }, this.#deps.keepAliveMs ?? 15_000);
  }

  #stopTimers(): void {
    clearInterval(this.#tick);
    clearInterval(this.#keepAlive);
    this.#tick = undefined;
    this.#keepAlive = undefined;
    // the next first stream starts with a fresh comparison
    this.#last = undefined;
  }

  /** Ends every stream (shutdown): browsers reconnect to whichever proxy answers next. */
  close(): void {
    this.#closed = true;
    this.#stopTimers();
    for (const res of this.#streams) res.destroy();
    this.#streams.clear();
    this.#admin.clear();
  }
}
