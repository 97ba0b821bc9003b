// Where a browser's request comes from, by its Origin header: this proxy's own
// pages (Origin's host equals the Host the request was sent to), another site,
// or not said (a tool such as curl, or a same-origin GET). What a cookie alone
// would let through (a WebSocket upgrade, a state-changing admin request) must
// come from 'same'.
import type { IncomingMessage } from 'node:http';

export type RequestOrigin = 'same' | 'other' | 'none';

/** `publicUrl`: the proxy's own public URL (proxy.json publicUrl), whose origin counts as this proxy's too (a front end that rewrites Host). */
export function requestOrigin(req: IncomingMessage, publicUrl?: string): RequestOrigin {
  const origin = req.headers.origin;
  if (origin === undefined) return 'none';
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return 'other'; // "null" (a sandboxed frame, a redirect across sites) or garbage
  }
  if (url.host !== '' && url.host === req.headers.host) return 'same';
  return publicUrl !== undefined && url.origin === new URL(publicUrl).origin ? 'same' : 'other';
}
