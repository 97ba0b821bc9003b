// code-server's forwarded ports: /proxy/<port>/... and /absproxy/<port>/...,
// which code-server forwards to port <port> on its own host. After a failover
// that host is the standby, where a program that listened on the GPU does not
// run. code-server then answers its own error, not a 502: 500, no
// Content-Type, the connect error as the body ("connect ECONNREFUSED
// 0.0.0.0:<port>"); a WebSocket upgrade gets "HTTP/1.1 500 connect
// ECONNREFUSED 0.0.0.0:<port>" with no body (seen with code-server 4.139.1,
// docs/operations.md). This file says which port a path names and whether an
// answer is that refusal, so the proxy can say what happened instead.

/** The highest TCP port. */
const MAX_PORT = 65_535;

// Only the plain spelling: a decimal port without a leading zero, then '/', '?' or the end.
// Anything else (code-server's own parseInt also takes "9abc" or "09") passes to code-server untouched.
const PORT_PATH = /^\/(?:abs)?proxy\/([1-9][0-9]{0,4})(?:[/?]|$)/;

/** The port a request target names (/proxy/<port>/..., /absproxy/<port>/...), 1-65535, or undefined. */
export function forwardedPort(url: string): number | undefined {
  // the first bytes decide, so every other request pays one comparison
  const c = url.charCodeAt(1);
  if (c !== 112 /* p */ && c !== 97 /* a */) return undefined;
  const m = PORT_PATH.exec(url);
  if (!m) return undefined;
  const port = Number(m[1]);
  return port <= MAX_PORT ? port : undefined;
}

/**
 * code-server's text for a connection to the forwarded port refused on its host, naming `port`. The
 * address is the one code-server forwards to (0.0.0.0 in 4.139.1; loopback spellings accepted too).
 */
const REFUSAL = /^connect ECONNREFUSED (?:0\.0\.0\.0|127\.0\.0\.1|::1|::|localhost):([0-9]{1,5})$/;

/** The longest refusal text: longer bodies are never one (read no further). */
export const REFUSAL_MAX_BYTES = 64;

/** The refusal's fixed start: a body that does not begin so is not one (decided at its first bytes). */
export const REFUSAL_START = 'connect ECONNREFUSED ';

/** True when `text` (code-server's body, or its WebSocket status line's reason) says nothing listens on `port` on its host. */
export function isPortRefusal(text: string, port: number): boolean {
  const m = REFUSAL.exec(text);
  return m !== null && Number(m[1]) === port;
}

/** True while `text`, the start of a body, may still become a refusal (it is a prefix of one, and short). */
export function mayBeRefusal(text: string): boolean {
  if (text.length > REFUSAL_MAX_BYTES) return false;
  const n = Math.min(text.length, REFUSAL_START.length);
  return text.slice(0, n) === REFUSAL_START.slice(0, n);
}
