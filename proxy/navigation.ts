// What counts as a browser navigation, for the pages the proxy answers
// instead of code-server (the transition page, the login redirect): a GET or
// HEAD that accepts HTML. Anything else gets a status and Retry-After.
import type { IncomingMessage } from 'node:http';

export function isNavigation(req: IncomingMessage): boolean {
  return (req.method === 'GET' || req.method === 'HEAD') && (req.headers.accept ?? '').includes('text/html');
}
