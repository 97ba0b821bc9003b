// The dashboard's routes under /_standby/ (proxy/server.ts asks first): the
// page at /_standby/ (the login form without a session), the session's login
// and logout (admin-session.ts), and its static assets: its script and
// uPlot's dist files, resolved from the installed package and served from
// fixed paths with long cache headers, so the page needs nothing from outside
// the proxy. The data comes from the admin API and the event stream.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { ADMIN_LOGOUT_PATH, DASHBOARD_PATH, type AdminSession } from './admin-session.ts';
import { dashboardPage } from './pages/dashboard.ts';
import { DASHBOARD_SCRIPT, DASHBOARD_SCRIPT_PATH } from './pages/dashboard-script.ts';

export const UPLOT_JS_PATH = '/_standby/assets/uPlot.iife.min.js';
export const UPLOT_CSS_PATH = '/_standby/assets/uPlot.min.css';

interface Asset {
  type: string;
  body: Buffer;
}

const require = createRequire(import.meta.url);

/** uPlot's file from the installed package (read once, at the first request for it). */
function uplotFile(name: string): Buffer {
  return readFileSync(require.resolve(`uplot/dist/${name}`));
}

/** uPlot's version: the assets' ?v=, so a new one is never taken from a browser's cache. */
function uplotVersion(): string {
  return (JSON.parse(readFileSync(require.resolve('uplot/package.json'), 'utf8')) as { version: string }).version;
}

export class Dashboard {
  #session: AdminSession;
  #assets = new Map<string, () => Asset>([
    [UPLOT_JS_PATH, () => ({ type: 'text/javascript; charset=utf-8', body: uplotFile('uPlot.iife.min.js') })],
    [UPLOT_CSS_PATH, () => ({ type: 'text/css; charset=utf-8', body: uplotFile('uPlot.min.css') })],
    [DASHBOARD_SCRIPT_PATH, () => ({ type: 'text/javascript; charset=utf-8', body: Buffer.from(DASHBOARD_SCRIPT) })],
  ]);
  #loaded = new Map<string, Asset>();
  #uplotVersion: string | undefined;

  constructor(session: AdminSession) {
    this.#session = session;
  }

  get session(): AdminSession {
    return this.#session;
  }

  /** Whether the dashboard answers `path` (no query). */
  owns(path: string): boolean {
    return path === DASHBOARD_PATH || this.#assets.has(path) || this.#session.owns(path);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (this.#session.owns(path)) return this.#session.handle(req, res);
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      const text = 'GET or HEAD.\n';
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    const make = this.#assets.get(path);
    if (make) {
      // the same bytes for everyone, no secret in them: served without a session
      let asset = this.#loaded.get(path);
      if (!asset) {
        asset = make();
        this.#loaded.set(path, asset);
      }
      res.writeHead(200, { 'content-type': asset.type, 'cache-control': 'public, max-age=31536000, immutable', 'x-content-type-options': 'nosniff', 'content-length': asset.body.length });
      res.end(method === 'HEAD' ? undefined : asset.body);
      return;
    }
    if (!this.#session.allows(req)) return this.#session.loginForm(res);
    this.#uplotVersion ??= uplotVersion();
    const page = dashboardPage({ uplotVersion: this.#uplotVersion, logoutPath: ADMIN_LOGOUT_PATH });
    // same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with the page's form POSTs (the logout), which the Origin check refuses
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY', 'x-content-type-options': 'nosniff', 'referrer-policy': 'same-origin', 'content-security-policy': page.csp, 'content-length': Buffer.byteLength(page.html) });
    res.end(method === 'HEAD' ? undefined : page.html);
  }
}
