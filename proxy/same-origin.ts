// Where a browser's request comes from, by its Origin header: this proxy's own
// pages (Origin's host equals the Host the request was sent to), another site,
// or not said (a tool such as curl, or a same-origin GET). What a cookie alone
// would let through (a WebSocket upgrade, a state-changing admin request) must
// come from 'same'.
import type { IncomingMessage } from 'node:http';

export type RequestOrigin = 'same' | 'other' | 'none';

export function requestOrigin(req: IncomingMessage): RequestOrigin {
  const origin = req.headers.origin;
  if (origin === undefined) return 'none';
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return 'other'; // "null" (a sandboxed frame, a redirect across sites) or garbage
  }
  return host !== '' && host === req.headers.host ? 'same' : 'other';
}
