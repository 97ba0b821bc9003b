// Credentials per host: who may connect as which host (tokens from proxy.json
// and from enrollment), invitations, enrollment (the host's key put on the
// standby, then its own agent token issued), and revocation (token refused
// and connection closed at once, key removed from the standby; on a fence,
// the key under the fence's own lock and the token once the fence succeeded).
// The registry file is in host-registry.ts; the standby requests in fence.ts.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { fingerprintOf, parsePublicKey, type PublicKey } from '../core/authorized-keys.ts';
import type { Logger } from '../core/log.ts';
import { tokensEqual } from '../protocol/auth.ts';
import { StandbyError } from '../core/errors.ts';
import type { AgentHub, Authentication } from './agent-hub.ts';
import type { ProxyConfig } from '../config/proxy.ts';
import { editorOfRoots } from '../protocol/receiver.ts';
import type { AuthorizeResult, FenceResult } from './fence.ts';
import type { HostRegistry } from './host-registry.ts';
import type { EnrollAnswer, HostView } from '../protocol/admin-api.ts';

export interface StandbyKeys {
  authorize(hostId: string, publicKey: string): Promise<AuthorizeResult>;
  revoke(hostIds: readonly string[]): Promise<FenceResult>;
}

const enrollRequestSchema = z.strictObject({
  /** the host's ssh public key line (the installer makes it; the private key never leaves the host) */
  publicKey: z.string({ error: 'an ssh public key line' }).min(1).max(16_384),
  /** the host's own name, for the list */
  hostname: z.string().max(255).optional(),
});

/** The enrolling host's key line, or a bad request (parsePublicKey's own message names the installer's flag). */
function enrollingKey(text: string): PublicKey {
  try {
    return parsePublicKey(text);
  } catch (err) {
    throw new StandbyError('STANDBY_ERR_BAD_REQUEST', `the enrollment's publicKey ${JSON.stringify(text.slice(0, 40))}... is not one ssh public key line such as "ssh-ed25519 AAAA... agent@gpu"`, {}, { cause: err });
  }
}

/** What a host fenced for good hears as its grant's reason. */
function fencedReason(revokedWhy: string | undefined): string {
  return `${revokedWhy ?? 'fenced by a failover'}: this host's credentials are revoked; it may not sync again (enroll it again to bring it back)`;
}

export class HostAdmin {
  readonly registry: HostRegistry;
  #config: ProxyConfig;
  #hub: AgentHub | undefined;
  #keys: StandbyKeys;
  #log: Logger;

  constructor(registry: HostRegistry, config: ProxyConfig, keys: StandbyKeys, log: Logger) {
    this.registry = registry;
    this.#config = config;
    this.#keys = keys;
    this.#log = log;
  }

  /** The hub is made after this (it asks authenticate()); it is given here once it exists. */
  attach(hub: AgentHub): void {
    this.#hub = hub;
  }

  #staticTokens(): [string, string][] {
    const out: [string, string][] = [];
    if (this.#config.primary.agentToken) out.push([this.#config.primary.id, this.#config.primary.agentToken]);
    if (this.#config.standby.agentToken) out.push([this.#config.standby.id, this.#config.standby.agentToken]);
    return out;
  }

  authenticate(token: string): Authentication {
    if (token === '') return { refused: 'unknown' };
    const found = this.registry.hostForToken(token);
    if (found) {
      if (found.state === 'revoked') {
        // fenced by a failover: connected, fenced for good, so a recovery can collect its unsent changes before it retires the host
        if (found.connectFenced) return { hostId: found.id, issued: true, fenced: fencedReason(found.revokedWhy) };
        return { refused: 'revoked', hostId: found.id, why: found.revokedWhy ?? 'revoked' };
      }
      // the current issued token is 192 random bits (sba_...); a rotated-away one may be a hand-set proxy.json token
      return found.until === undefined ? { hostId: found.id, issued: true } : { hostId: found.id, until: found.until };
    }
    let hostId: string | undefined;
    for (const [id, expected] of this.#staticTokens()) if (tokensEqual(token, expected)) hostId = id;
    if (!hostId) return { refused: 'unknown' };
    const record = this.registry.get(hostId);
    if (record?.state === 'revoked') {
      // a proxy.json token stays a fenced host's credential only if it never enrolled (else its issued token is)
      if (record.connectFenced && record.tokenHash === undefined) return { hostId, fenced: fencedReason(record.revokedWhy) };
      return { refused: 'revoked', hostId, why: record.revokedWhy ?? 'revoked' };
    }
    // once a host is enrolled (or its token rotated), only the token issued to it counts (a rotated proxy.json token matched above, in its grace window)
    if (record?.tokenHash !== undefined) return { refused: 'unknown' };
    return { hostId };
  }

  /**
   * A new agent token for an active host; the one it has (issued, or from
   * proxy.json) stays valid for `graceMs`, so the host's token file can be
   * replaced without a moment of refusal. Returns the new token once.
   */
  rotate(id: string, graceMs: number): { id: string; agentToken: string; previousValidUntil: string } {
    const record = this.registry.get(id);
    if (record?.state === 'revoked') throw new StandbyError('STANDBY_ERR_CONFLICT', `${id} is revoked: enroll it again (standby hosts add ${id})`, { id });
    const fromFile = this.#staticTokens().find(([s]) => s === id)?.[1];
    if (record?.tokenHash === undefined && fromFile === undefined) {
      throw new StandbyError('STANDBY_ERR_CONFLICT', `${id} has no agent token yet (invited, not enrolled): nothing to rotate`, { id });
    }
    const r = this.registry.rotate(id, graceMs, record?.tokenHash === undefined ? fromFile : undefined);
    this.#log.warn({ hostId: id, previousValidUntil: r.previousValidUntil }, 'agent token rotated: the old one stays valid until previousValidUntil');
    return { id, ...r };
  }

  /**
   * Whether `token` is a credential a host may hold now: an invitation still
   * usable, or an agent token that authenticates. For what only hosts may
   * fetch (the bundle); call it inside AuthThrottle.guard so failures count.
   */
  holdsCredential(token: string): boolean {
    if (token === '') return false;
    if (this.registry.invitationValid(token)) return true;
    return !('refused' in this.authenticate(token));
  }

  invite(id: string, ttlMs: number): { id: string; token: string; expiresAt: string } {
    if (id === this.#config.standby.id) {
      throw new StandbyError('STANDBY_ERR_BAD_REQUEST', `${id} is the standby (standby.id in proxy.json): invite GPU hosts; the standby gets the proxy's key with its own install`, { id });
    }
    const { token, expiresAt } = this.registry.invite(id, ttlMs);
    this.#log.info({ hostId: id, expiresAt }, 'host invited');
    return { id, token, expiresAt };
  }

  /**
   * Enrollment with an invitation: the invitation is checked first (before the
   * body is read: an unauthenticated client learns nothing from it), then the
   * key goes onto the standby; only then is the invitation used up and a token
   * issued.
   */
  async enroll(inviteToken: string, body: () => Promise<unknown>): Promise<EnrollAnswer> {
    const id = this.registry.beginEnroll(inviteToken);
    let authorized: AuthorizeResult;
    let publicKey: string;
    let keyFingerprint: string;
    let key: PublicKey;
    let hostname: string | undefined;
    try {
      const parsed = enrollRequestSchema.safeParse(await body());
      if (!parsed.success) throw new StandbyError('STANDBY_ERR_BAD_REQUEST', `the enrollment request is not {publicKey, hostname?}: ${parsed.error.issues[0]?.message ?? 'invalid'}`, {});
      hostname = parsed.data.hostname;
      key = enrollingKey(parsed.data.publicKey);
      publicKey = `${key.type} ${key.blob}`; // without the host's own comment
      keyFingerprint = fingerprintOf(key.blob);
      authorized = await this.#keys.authorize(id, `${publicKey} standby-agent@${id}`);
    } catch (err) {
      this.registry.abortEnroll(id);
      throw err;
    }
    const agentToken = this.registry.finishEnroll(id, { type: key.type, fingerprint: keyFingerprint, publicKey });
    this.#log.info({ hostId: id, hostname, fingerprint: keyFingerprint, replacedKeys: authorized.replaced }, 'host enrolled: its own agent token issued, its key authorized on the standby');
    const ssh = this.#config.standby.ssh;
    const editor = editorOfRoots(authorized.roots);
    return {
      hostId: id,
      agentToken,
      standby: { host: ssh.host, port: ssh.port, user: ssh.user, path: authorized.roots[0] ?? null, ...(editor ? { editor } : {}) },
      knownHosts: this.#knownHosts(),
    };
  }

  #knownHosts(): string[] {
    const file = this.#config.standby.ssh.knownHostsFile;
    if (!file) return [];
    try {
      return readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    } catch (err) {
      this.#log.warn({ file, err: (err as Error).message }, 'cannot read the standby known_hosts file: the enrolled host will trust its host key on first use');
      return [];
    }
  }

  /** A host with credentials: in proxy.json or in the registry. */
  knows(id: string): boolean {
    return this.registry.get(id) !== undefined || this.#staticTokens().some(([s]) => s === id);
  }

  /** Revokes the token now (refused, connection closed) and asks the standby to remove the key (if it cannot, the next fence carries it). */
  async revoke(id: string, why: string): Promise<{ id: string; keyRevoked: boolean; error: string | null }> {
    this.registry.revoke(id, why);
    this.#hub?.revoke(id, why);
    this.#log.warn({ hostId: id, why }, 'host credentials revoked');
    try {
      this.fenced(await this.#keys.revoke([id]));
    } catch (err) {
      const message = (err as Error).message;
      this.registry.keyRevocation(id, message);
      this.#log.error({ hostId: id, err: message }, 'could not remove the host key from the standby: the token is revoked; the key goes with the next fence or `standby hosts revoke` again');
      return { id, keyRevoked: false, error: message };
    }
    const h = this.registry.get(id);
    return { id, keyRevoked: h?.keyRevoked === true, error: h?.keyRevokeError ?? null };
  }

  /**
   * What a fence of the standby revokes under its lock: the GPU it fences (none for a switch back),
   * and every host whose key removal is still pending. Nothing is revoked here: the GPU's token goes
   * only once the fence has succeeded (revokeFenced), so a failover that is aborted leaves it working.
   */
  fenceRevocations(gpuId: string | undefined): string[] {
    return [...new Set([...(gpuId === undefined ? [] : [gpuId]), ...this.registry.pendingKeyRevocations()])];
  }

  /**
   * A failover's fence succeeded: the fenced GPU's credentials are revoked now (its key on the standby
   * went with the fence). Its agent may stay connected, or connect again, fenced for good: a recovery
   * asks it for its unsent changes (into the standby's conflicts folder) before it retires the host with
   * revoke(), which closes the connection; so does the admin's `standby hosts revoke`.
   */
  revokeFenced(gpuId: string, epoch: number): void {
    const why = `fenced at epoch ${epoch} by a failover`;
    if (this.registry.revoke(gpuId, why, Date.now(), { connectFenced: true })) {
      this.#hub?.fence(gpuId, fencedReason(why));
      this.#log.warn({ hostId: gpuId, epoch }, "the fenced GPU's credentials are revoked: its agent may stay connected, fenced for good, until the host is retired");
    }
  }

  /** What the standby did with a fence's (or a revoke's) revocations. */
  fenced(result: FenceResult): void {
    // one write of hosts.json for them all: this runs between the fence and the route
    this.registry.keyRevocations(result.revoked, result.keysRemoved === undefined
      ? "the standby's receiver does not manage authorized_keys (its key has no --authorized-keys): the receiver refuses the host, but remove its key line by hand"
      : undefined);
  }

  list(): HostView[] {
    const now = performance.now();
    const configured = new Set(this.#staticTokens().map(([id]) => id));
    const ids = new Set<string>([...configured, ...this.registry.list().map((h) => h.id)]);
    return [...ids].map((id) => {
      const h = this.registry.get(id);
      const agent = this.#hub?.agents.get(id);
      return {
        id,
        source: h?.tokenHash ? (h.enrolledAt ? 'enrolled' : 'rotated') : configured.has(id) ? 'proxy.json' : 'none',
        state: h?.state ?? 'configured',
        role: id === this.#config.primary.id ? 'gpu' : id === this.#config.standby.id ? 'standby' : 'other',
        connected: agent?.connected ?? false,
        heartbeatAgeMs: agent && agent.heartbeats > 0 ? Math.round(now - agent.lastHeartbeatAt) : null,
        key: h?.key ? { type: h.key.type, fingerprint: h.key.fingerprint } : null,
        invitedAt: h?.invitedAt ?? null,
        inviteExpiresAt: h?.invite?.expiresAt ?? null,
        enrolledAt: h?.enrolledAt ?? null,
        rotatedAt: h?.rotatedAt ?? null,
        previousTokenValidUntil: h?.previousTokenUntil && Date.parse(h.previousTokenUntil) > Date.now() ? h.previousTokenUntil : null,
        revokedAt: h?.revokedAt ?? null,
        revokedWhy: h?.revokedWhy ?? null,
        keyRevoked: h?.keyRevoked ?? null,
        keyRevokeError: h?.keyRevokeError ?? null,
      };
    });
  }
}
