// The headers a request carries to the backend: hop-by-hop ones stripped
// (they describe the client's connection, not ours to the backend), and the
// forwarded ones set by the proxy itself. A client's own X-Forwarded-* /
// Forwarded are dropped unless its TCP peer is a trusted proxy (a TLS
// terminator in front), whose chain is kept and extended. Runs on
// req.headers before http-proxy-3 copies them (its xfwd is off): no hook, no
// closure, a handful of property reads per request.
import { BlockList, isIP, isIPv4 } from 'node:net';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { peerAddress } from './client-address.ts';

/** Hop-by-hop headers (RFC 9110 7.6.1, plus the de facto Proxy-Connection and Keep-Alive). Upgrade is kept on WebSocket upgrades only. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'upgrade'] as const;

/** Headers Connection: may never remove: they frame the body or name the site. */
const PROTECTED = new Set(['host', 'content-length', 'transfer-encoding']);

/** Forwarded headers a client outside trustedProxies may not set. */
const CLIENT_FORWARDED = ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-real-ip', 'forwarded'] as const;

/** The names apply() may remove, lowercase: 'hop' (always), 'forwarded' (unless the peer is a trusted proxy). */
const REMOVABLE = new Map<string, 'hop' | 'forwarded'>([...HOP_BY_HOP.map((n) => [n, 'hop'] as const), ...CLIENT_FORWARDED.map((n) => [n, 'forwarded'] as const)]);

/** length * 256 + first letter (lowercase) of every removable name: a raw header name of another shape is none of them, no lowercasing needed. */
const REMOVABLE_SHAPES = new Set([...REMOVABLE.keys()].map((n) => n.length * 256 + n.charCodeAt(0)));

export class ForwardedHeaders {
  readonly #trusted: BlockList | undefined;
  readonly #proto: 'http' | 'https';

  /** `trustedProxies`: IPs or CIDR blocks (validated by config/proxy.ts); `tls`: whether the listener is HTTPS */
  constructor(trustedProxies: readonly string[], tls: boolean) {
    this.#proto = tls ? 'https' : 'http';
    if (trustedProxies.length === 0) return;
    const list = new BlockList();
    for (const entry of trustedProxies) {
      const [addr, bits] = entry.split('/') as [string, string | undefined];
      const family = isIPv4(addr) ? 'ipv4' : 'ipv6';
      if (bits === undefined) list.addAddress(addr, family);
      else list.addSubnet(addr, Number(bits), family);
    }
    this.#trusted = list;
  }

  /** Whether this peer address (as peerAddress() gives it) is a trusted proxy. */
  trusts(peer: string): boolean {
    if (this.#trusted === undefined || peer === '') return false;
    return this.#trusted.check(peer, isIPv4(peer) ? 'ipv4' : 'ipv6');
  }

  /**
   * The client's address: the TCP peer, or, when the peer is a trusted proxy,
   * the rightmost address of the X-Forwarded-For chain that is not a trusted
   * proxy itself (entries left of it could be made up by the client).
   */
  clientOf(req: IncomingMessage): string {
    const peer = peerAddress(req.socket.remoteAddress);
    if (this.#trusted === undefined || !this.trusts(peer)) return peer;
    const chain = req.headers['x-forwarded-for'];
    if (typeof chain !== 'string') return peer;
    const hops = chain.split(',');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = peerAddress(hops[i]!.trim());
      if (isIP(hop) === 0) return peer; // a chain we cannot read: count the proxy itself
      if (!this.trusts(hop)) return hop;
    }
    return peer;
  }

  /**
   * Rewrites req.headers for the backend. `upgrade`: a WebSocket upgrade (keeps
   * Connection: Upgrade and Upgrade: websocket). False when the peer's address
   * is unknown (it reset before the kernel would say): nothing may be forwarded for it.
   */
  apply(req: IncomingMessage, upgrade: boolean): boolean {
    const peer = peerAddress(req.socket.remoteAddress);
    if (peer === '') return false;
    const h = req.headers;
    const trusted = this.#trusted !== undefined && this.trusts(peer);
    // One walk over the names the client sent (req.headers holds exactly these, lowercased): most
    // are ruled out by length and first letter alone, so a request with nothing to remove costs
    // no lookup in req.headers (the profile: ~0.4 us a request for 14 lookups; docs/benchmarks.md).
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      // | 0x20 lowercases an ASCII letter; another character that lands on a letter is only a false candidate
      if (!REMOVABLE_SHAPES.has(name.length * 256 + (name.charCodeAt(0) | 0x20))) continue;
      const lower = name.toLowerCase();
      const kind = REMOVABLE.get(lower);
      if (kind === undefined || (kind === 'forwarded' && trusted)) continue;
      if (lower === 'connection') {
        const connection = h.connection;
        // every header the client named in Connection is for this hop only
        if (connection !== undefined && connection !== 'keep-alive' && connection !== 'close' && connection !== 'Keep-Alive') stripNamed(h, connection);
      }
      delete h[lower];
    }
    if (upgrade) {
      h.connection = 'Upgrade';
      h.upgrade = 'websocket';
    }
    if (trusted) {
      const chain = h['x-forwarded-for'];
      h['x-forwarded-for'] = chain ? `${chain}, ${peer}` : peer;
      if (h['x-forwarded-proto'] === undefined) h['x-forwarded-proto'] = this.#proto;
      if (h['x-forwarded-host'] === undefined && h.host !== undefined) h['x-forwarded-host'] = h.host;
      return true;
    }
    h['x-forwarded-for'] = peer;
    h['x-forwarded-proto'] = this.#proto;
    if (h.host !== undefined) h['x-forwarded-host'] = h.host;
    return true;
  }
}

function stripNamed(h: IncomingHttpHeaders, connection: string): void {
  for (const token of connection.split(',')) {
    const name = token.trim().toLowerCase();
    if (name !== '' && !PROTECTED.has(name) && h[name] !== undefined) delete h[name];
  }
}
