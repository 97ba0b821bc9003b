// What Node's strict parser lets through but a backend could read otherwise
// (request smuggling, Host confusion), refused before anything is forwarded.
// Node already refuses CL+TE, duplicate Content-Length, obs-fold, bad chunks
// and a missing Host on HTTP/1.1 (clientError: 400); this adds the rest.
import type { IncomingMessage } from 'node:http';

/** Why a request must be refused, with the status to answer, or undefined when it may go on. */
export interface FramingProblem {
  status: 400 | 431;
  why: string;
}

const TWO_HOSTS: FramingProblem = { status: 400, why: 'two Host headers' };
const TOO_MANY: FramingProblem = { status: 431, why: 'too many header fields' };
const CODING: FramingProblem = { status: 400, why: 'a Transfer-Encoding other than chunked' };
const BODY_DROPPED: FramingProblem = { status: 400, why: 'a chunked body on DELETE or OPTIONS' };

/**
 * `maxHeaders`: the most header fields allowed; the server keeps one more
 * (maxHeadersCount = maxHeaders + 1) so that going over it shows here.
 * O(headers), no allocation.
 */
export function framingProblem(req: IncomingMessage, maxHeaders: number): FramingProblem | undefined {
  const raw = req.rawHeaders;
  if (raw.length > 2 * maxHeaders) return TOO_MANY;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) hosts++;
  }
  // Node keeps the first Host in req.headers; a backend might take the last
  if (hosts > 1) return TWO_HOSTS;
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) {
    // duplicates arrive joined ("chunked, chunked"): a backend might de-chunk twice
    if (te !== 'chunked' && te.toLowerCase() !== 'chunked') return CODING;
    // http-proxy-3 sends DELETE/OPTIONS without Content-Length as Content-Length: 0 and drops
    // Transfer-Encoding, so the body would reach the backend as a request of its own
    if (req.method === 'DELETE' || req.method === 'OPTIONS') return BODY_DROPPED;
  }
  return undefined;
}
