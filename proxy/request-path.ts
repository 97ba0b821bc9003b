// Whose a request path is: the proxy's own (/_standby/...), the backend's, or
// ambiguous. The decision is made on the path as the backend will see it:
// http-proxy-3 sends `new URL(url).pathname` (dot segments resolved,
// backslashes turned into slashes, absolute-form reduced to its path), and a
// backend may also decode %XX and ignore case. A raw path that only becomes
// /_standby... after any of that is refused (400) rather than guessed.

/** The proxy's own prefix; everything under it is served by proxy/api.ts and never forwarded. */
export const RESERVED = '/_standby';

/** 'own': the proxy's (raw path is already canonical); 'backend': forward; 'ambiguous': answer 400. */
export type PathOwner = 'own' | 'backend' | 'ambiguous';

const BASE = 'http://base.invalid';

/** True when the path (no query) begins with /_standby, any case, followed by '/', ';' (a path parameter some servers drop) or its end. */
function reservedAtStart(path: string): boolean {
  if (path.length < 9 || path.charCodeAt(1) !== 95 /* _ */) return false;
  if (path.length > 9 && path.charCodeAt(9) !== 47 /* / */ && path.charCodeAt(9) !== 59 /* ; */) return false;
  return path.slice(0, 9).toLowerCase() === RESERVED;
}

/** Decodes %XX escapes that decodeURIComponent would refuse too (a lone %, bad UTF-8): byte by byte, as a lenient backend might. */
function decodeLoosely(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s.replace(/%([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
  }
}

/** The path http-proxy-3 forwards (its common.toURL), or undefined when the URL does not parse. */
function forwardedPath(url: string): string | undefined {
  try {
    return new URL(url.startsWith('//') ? `${BASE}${url}` : url, BASE).pathname;
  } catch {
    return undefined;
  }
}

/**
 * Whose `url` (the request target as received) is. O(length) with native
 * scans on the common path; the URL parser runs only for paths holding %, \,
 * a dot segment, a leading // or a non-origin form.
 */
export function pathOwner(url: string): PathOwner {
  let end = url.indexOf('?');
  if (end === -1) end = url.length;
  const plain = url.charCodeAt(0) === 47 && url.charCodeAt(1) !== 47 && !has(url, '%', end) && !has(url, '\\', end) && !has(url, '/.', end) && !has(url, '#', end);
  if (plain) {
    if (!reservedAtStart(end === url.length ? url : url.slice(0, end))) return 'backend';
    // canonical spelling only: /_STANDBY/ may mean /_standby/ to a case-blind backend, never to us
    return url.startsWith(RESERVED) ? 'own' : 'ambiguous';
  }
  const path = forwardedPath(url);
  if (path === undefined) return 'ambiguous';
  // what a backend that decodes %XX, treats \ as / and folds // could make of it
  const loose = forwardedPath(decodeLoosely(path).replaceAll('\\', '/').replace(/\/{2,}/g, '/'));
  if (!reservedAtStart(path) && (loose === undefined || !reservedAtStart(loose))) return 'backend';
  // the proxy's own only when the raw path is already the canonical one it names
  return reservedAtStart(path) && path === url.slice(0, end) && url.startsWith(RESERVED) ? 'own' : 'ambiguous';
}

function has(url: string, what: string, end: number): boolean {
  const i = url.indexOf(what);
  return i !== -1 && i < end;
}
