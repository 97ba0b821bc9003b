// The one rewrite the proxy makes to code-server's traffic: its workbench page
// gets one same-origin script tag (/_standby/editor.js, proxy/pages/editor-script.ts),
// so the editor shows the switch and reloads into the new machine by itself.
// Only a browser's navigation to the workbench route (GET /, /vscode, accepting
// HTML, for a document) is asked for uncompressed and answered here; of those
// answers, only a 200 text/html page carrying the workbench's marker is
// rewritten, and only when the page's Content-Security-Policy lets the script
// run ('self', or the page's own nonce). Everything else streams as it came.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { EDITOR_SCRIPT, EDITOR_SCRIPT_PATH, EDITOR_SCRIPT_VERSION } from './pages/editor-script.ts';
import type { Side } from './state.ts';

/** What code-server's workbench HTML carries (lib/vscode/out/vs/code/browser/workbench/workbench.html) and no other page does. */
export const WORKBENCH_MARKER = 'id="vscode-workbench-web-configuration"';
/** code-server serves the workbench at / and, for history, /vscode (out/node/routes/index.js) */
const WORKBENCH_PATHS = new Set(['/', '/vscode', '/vscode/']);
/** the workbench page is ~5 KiB; a bigger HTML answer is passed on untouched */
const MAX_PAGE_BYTES = 1024 * 1024;
/** response headers that belong to one hop (http-proxy-3 drops them the same way) */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer']);

/** A request whose answer may be the workbench page: the browser navigates to code-server's workbench route. */
export function mayBeWorkbench(req: IncomingMessage): boolean {
  if (req.method !== 'GET') return false;
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  if (!WORKBENCH_PATHS.has(q === -1 ? url : url.slice(0, q))) return false;
  const dest = req.headers['sec-fetch-dest'];
  return (dest === undefined || dest === 'document') && (req.headers.accept ?? '').includes('text/html');
}

/** How a page's CSP lets a same-origin script element run: as it is, with the page's nonce, or not at all. */
export type ScriptAllowance = { allowed: true; nonce?: string } | { allowed: false; why: string };

/** The sources of the directive that governs `<script src>` in one policy, or undefined when none does. */
function scriptSources(policy: string): string[] | undefined {
  const directives = new Map<string, string[]>();
  for (const part of policy.split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name && !directives.has(name.toLowerCase())) directives.set(name.toLowerCase(), sources);
  }
  return directives.get('script-src-elem') ?? directives.get('script-src') ?? directives.get('default-src');
}

/** Whether every policy (header values and meta tags) lets /_standby/editor.js run, and the nonce it needs if any. */
export function scriptAllowance(policies: string[]): ScriptAllowance {
  let nonce: string | undefined;
  for (const policy of policies) {
    const sources = scriptSources(policy);
    if (sources === undefined) continue;
    const lower = sources.map((s) => s.toLowerCase());
    // 'strict-dynamic' ignores 'self' and host sources: only a nonce (or hash) lets a parser-inserted script run
    const hostsCount = !lower.includes("'strict-dynamic'");
    if (hostsCount && (lower.includes("'self'") || lower.includes('*'))) continue;
    const given = sources.map((s) => /^'nonce-([A-Za-z0-9+/_=-]+)'$/.exec(s)?.[1]).find((n) => n !== undefined);
    if (given !== undefined && (nonce === undefined || nonce === given)) {
      nonce = given;
      continue;
    }
    return { allowed: false, why: `the page's Content-Security-Policy allows neither 'self' nor one nonce for scripts (${sources.join(' ')})` };
  }
  return nonce === undefined ? { allowed: true } : { allowed: true, nonce };
}

/** The policies a page declares in <meta http-equiv="Content-Security-Policy"> tags. */
function metaPolicies(html: string): string[] {
  const out: string[] = [];
  for (const m of html.matchAll(/<meta\b[^>]*http-equiv\s*=\s*["']?content-security-policy["']?[^>]*>/gi)) {
    const content = /\bcontent\s*=\s*(?:"([^"]*)"|'([^']*)')/i.exec(m[0]);
    if (content) out.push((content[1] ?? content[2] ?? '').replaceAll('&#39;', "'").replaceAll('&quot;', '"').replaceAll('&amp;', '&'));
  }
  return out;
}

function headerValues(h: string | string[] | undefined): string[] {
  return h === undefined ? [] : Array.isArray(h) ? h : [h];
}

/** The workbench page with the script tag before </head>, or undefined (not the workbench, or its CSP forbids it). */
export function injectScript(html: string, headers: IncomingHttpHeaders, o: { generation: string; side: Side }): { html: string } | { skipped: string } {
  if (!html.includes(WORKBENCH_MARKER)) return { skipped: 'not the workbench page' };
  const head = html.search(/<\/head\s*>/i);
  if (head === -1) return { skipped: 'the workbench page has no </head>' };
  const allowance = scriptAllowance([...headerValues(headers['content-security-policy']), ...metaPolicies(html.slice(0, head))]);
  if (!allowance.allowed) return { skipped: allowance.why };
  // attribute values are ours: base64url, a role, a hex version, the page's own nonce (base64), nothing to escape
  const nonce = allowance.nonce === undefined ? '' : ` nonce="${allowance.nonce}"`;
  const tag = `<script src="${EDITOR_SCRIPT_PATH}?v=${EDITOR_SCRIPT_VERSION}" data-generation="${o.generation}" data-side="${o.side}" defer${nonce}></script>\n`;
  return { html: html.slice(0, head) + tag + html.slice(head) };
}

/**
 * Answers a navigation to the workbench route with the backend's answer (`proxyRes`): the page with the
 * script injected when it is the workbench, anything else as it came, streamed. `onSkip` hears why a
 * workbench page was left alone.
 */
export function answerWorkbench(proxyRes: IncomingMessage, res: ServerResponse, o: { generation: () => string; side: Side; onSkip(why: string): void }): void {
  const status = proxyRes.statusCode ?? 502;
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(proxyRes.headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
  proxyRes.on('error', () => res.destroy());
  const length = Number(proxyRes.headers['content-length'] ?? 0);
  const rewritable = status === 200 && /^text\/html\b/i.test(proxyRes.headers['content-type'] ?? '') && proxyRes.headers['content-encoding'] === undefined && length <= MAX_PAGE_BYTES;
  const head = (h: IncomingHttpHeaders): void => {
    if (proxyRes.statusMessage) res.statusMessage = proxyRes.statusMessage;
    res.writeHead(status, h);
  };
  if (!rewritable) {
    head(headers);
    proxyRes.pipe(res);
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let passing = false;
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    chunks.push(chunk);
    if (size <= MAX_PAGE_BYTES) return;
    // bigger than any workbench page: what was held goes out, the rest streams
    passing = true;
    proxyRes.off('data', onData);
    proxyRes.pause();
    head(headers);
    for (const c of chunks) res.write(c);
    chunks.length = 0;
    proxyRes.pipe(res);
  };
  proxyRes.on('data', onData);
  proxyRes.once('end', () => {
    if (passing) return;
    const original = Buffer.concat(chunks);
    const done = injectScript(original.toString('utf8'), proxyRes.headers, { generation: o.generation(), side: o.side });
    if ('skipped' in done) o.onSkip(done.skipped);
    const body = 'html' in done ? Buffer.from(done.html, 'utf8') : original;
    delete headers['content-length'];
    if ('html' in done) {
      // the page names the generation it was served under: never from a cache, never validated against the original
      delete headers.etag;
      delete headers['last-modified'];
      headers['cache-control'] = 'no-store';
    }
    head({ ...headers, 'content-length': String(body.length) });
    res.end(body);
  });
}

/** Answers GET /_standby/editor.js: the same text for everyone, cached a day (the injected tag's ?v= changes with it). */
export function serveEditorScript(req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8', 'content-length': 21 });
    res.end('GET the script, only\n');
    return;
  }
  res.writeHead(200, {
    'content-type': 'text/javascript; charset=utf-8',
    'cache-control': 'public, max-age=86400',
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(EDITOR_SCRIPT),
  });
  res.end(req.method === 'HEAD' ? undefined : EDITOR_SCRIPT);
}
