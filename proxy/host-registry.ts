// The hosts the proxy issued credentials to (<stateDir>/hosts.json, written
// durably): an invitation (one-time token, bound to one host id, expiring)
// becomes, at enrollment, the host's own agent token and its writer key on
// the standby; a fence or the admin revokes both. Only SHA-256 hashes of
// tokens are kept: the file gives nobody a token. Host ids in proxy.json with
// a token there (primary.agentToken) are not listed here until they are
// invited, enrolled or revoked.
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import { checkHostId } from '../protocol/host-id.ts';
import { AGENT_TOKEN_PREFIX, INVITE_PREFIX, type HostState } from '../protocol/admin-api.ts';
import { readStateFile, writeStateFile } from '../core/durable-file.ts';
import { StandbyError } from '../core/errors.ts';

/** Prefixes tell the kinds apart, for the installer and for people reading a leaked string. */

const keySchema = z.object({ type: z.string(), fingerprint: z.string(), publicKey: z.string() });
const hostSchema = z.object({
  id: z.string(),
  state: z.enum(['invited', 'active', 'revoked'] satisfies HostState[]),
  /** sha256 of the agent token (kept after a revocation, to tell a revoked token from a wrong one) */
  tokenHash: z.string().optional(),
  invite: z.object({ hash: z.string(), expiresAt: z.string() }).optional(),
  /** sha256 of the token a rotation replaced, accepted until previousTokenUntil */
  previousTokenHash: z.string().optional(),
  previousTokenUntil: z.string().optional(),
  rotatedAt: z.string().optional(),
  key: keySchema.optional(),
  invitedAt: z.string().optional(),
  enrolledAt: z.string().optional(),
  revokedAt: z.string().optional(),
  revokedWhy: z.string().optional(),
  /**
   * revoked by a failover's fence: its agent may stay connected, fenced for good, until a recovery retires
   * the host (its unsent changes go to the standby's conflicts folder first) or the admin revokes it
   */
  connectFenced: z.boolean().optional(),
  /** the standby confirmed the writer key gone (false: to be retried, with the next fence or revoke) */
  keyRevoked: z.boolean().optional(),
  keyRevokeError: z.string().optional(),
});
const fileSchema = z.object({ hosts: z.array(hostSchema) });

export type HostRecord = z.infer<typeof hostSchema>;
export type HostKey = z.infer<typeof keySchema>;

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function newSecret(prefix: string): string {
  return prefix + randomBytes(24).toString('base64url');
}

export class HostRegistry {
  #file: string;
  #hosts = new Map<string, HostRecord>();
  /** hosts whose enrollment is under way (their key is being put on the standby) */
  #enrolling = new Set<string>();

  private constructor(file: string) {
    this.#file = file;
  }

  static open(stateDir: string): HostRegistry {
    const r = new HostRegistry(join(stateDir, 'hosts.json'));
    const text = readStateFile(r.#file);
    if (text !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (err) {
        json = err;
      }
      const parsed = fileSchema.safeParse(json);
      if (!parsed.success) {
        const why = json instanceof Error ? json.message : parsed.error.issues.map((i) => `${i.path.join('.') || 'top'}: ${i.message}`).join('; ');
        throw new StandbyError('STANDBY_ERR_STATE_CORRUPT', `${r.#file} is not the proxy's host list (${why.slice(0, 200)}): restore it from a backup; removing it forgets every issued credential (hosts must be invited again)`, { file: r.#file });
      }
      for (const h of parsed.data.hosts) r.#hosts.set(h.id, h);
    }
    return r;
  }

  list(): HostRecord[] {
    return [...this.#hosts.values()].map((h) => ({ ...h }));
  }

  get(id: string): HostRecord | undefined {
    const h = this.#hosts.get(id);
    return h ? { ...h } : undefined;
  }

  #save(): void {
    writeStateFile(this.#file, JSON.stringify({ hosts: [...this.#hosts.values()] }, null, 2) + '\n');
  }

  /** A one-time invitation for host `id`, valid for `ttlMs`; a new one replaces an unused one. The host's current credentials stay valid until it enrolls. */
  invite(id: string, ttlMs: number, now = Date.now()): { token: string; expiresAt: string } {
    checkHostId(id);
    if (this.#enrolling.has(id)) throw new StandbyError('STANDBY_ERR_CONFLICT', `host ${id} is enrolling right now: try again in a few seconds`, { id });
    const token = newSecret(INVITE_PREFIX);
    const expiresAt = new Date(now + ttlMs).toISOString();
    const before = this.#hosts.get(id);
    this.#hosts.set(id, {
      ...(before ?? { id, state: 'invited' as const }),
      invite: { hash: hashToken(token), expiresAt },
      invitedAt: new Date(now).toISOString(),
    });
    this.#save();
    return { token, expiresAt };
  }

  /** The host an invitation token is for; throws STANDBY_ERR_UNAUTHORIZED saying why not. Marks it as enrolling until finish/abort. */
  beginEnroll(token: string, now = Date.now()): string {
    const hash = hashToken(token);
    const host = [...this.#hosts.values()].find((h) => h.invite?.hash === hash);
    if (!host) {
      const used = [...this.#hosts.values()].some((h) => h.tokenHash === hash);
      throw new StandbyError('STANDBY_ERR_UNAUTHORIZED', used ? 'that is an agent token, not an invitation: it is already in use by an enrolled host' : 'invitation token unknown or already used: ask the admin for a new one (standby hosts add ID)', {});
    }
    if (Date.parse(host.invite!.expiresAt) <= now) {
      throw new StandbyError('STANDBY_ERR_UNAUTHORIZED', `the invitation for ${host.id} expired at ${host.invite!.expiresAt}: ask the admin for a new one (standby hosts add ${host.id})`, { id: host.id });
    }
    if (this.#enrolling.has(host.id)) throw new StandbyError('STANDBY_ERR_CONFLICT', `host ${host.id} is already enrolling with this invitation`, { id: host.id });
    this.#enrolling.add(host.id);
    return host.id;
  }

  /** Whether `token` is an invitation not used and not expired (it may download the program; checking starts no enrollment). */
  invitationValid(token: string, now = Date.now()): boolean {
    const hash = hashToken(token);
    for (const h of this.#hosts.values()) if (h.invite?.hash === hash && Date.parse(h.invite.expiresAt) > now) return true;
    return false;
  }

  abortEnroll(id: string): void {
    this.#enrolling.delete(id);
  }

  /** The invitation is used up; the host gets its agent token (returned once, never stored) and its key is recorded. */
  finishEnroll(id: string, key: HostKey, now = Date.now()): string {
    const host = this.#hosts.get(id);
    if (!host || !this.#enrolling.has(id)) throw new StandbyError('STANDBY_ERR_CONFLICT', `host ${id} has no enrollment under way`, { id });
    const token = newSecret(AGENT_TOKEN_PREFIX);
    const { invite: _used, revokedAt: _r, revokedWhy: _w, keyRevoked: _k, keyRevokeError: _e, previousTokenHash: _p, previousTokenUntil: _u, rotatedAt: _t, connectFenced: _f, ...rest } = host;
    this.#hosts.set(id, { ...rest, state: 'active', tokenHash: hashToken(token), key, enrolledAt: new Date(now).toISOString() });
    try {
      this.#save();
    } finally {
      this.#enrolling.delete(id);
    }
    return token;
  }

  /** The host whose agent token this is (active or revoked), compared by hash; `until` when it is a rotated-away token still in its grace window. */
  hostForToken(token: string, now = Date.now()): (HostRecord & { until?: number }) | undefined {
    const hash = hashToken(token);
    for (const h of this.#hosts.values()) {
      if (h.tokenHash === hash) return { ...h };
      if (h.previousTokenHash === hash && h.previousTokenUntil && Date.parse(h.previousTokenUntil) > now) return { ...h, until: Date.parse(h.previousTokenUntil) };
    }
    return undefined;
  }

  /**
   * A new agent token for host `id`; the current one (its hash, or the
   * proxy.json token `fromConfig` of a host never enrolled) stays valid for
   * `graceMs`. Returns the new token, once.
   */
  rotate(id: string, graceMs: number, fromConfig?: string, now = Date.now()): { agentToken: string; previousValidUntil: string } {
    checkHostId(id);
    const host = this.#hosts.get(id);
    const previous = host?.tokenHash ?? (fromConfig === undefined ? undefined : hashToken(fromConfig));
    if (previous === undefined) throw new StandbyError('STANDBY_ERR_CONFLICT', `host ${id} has no agent token to rotate`, { id });
    const token = newSecret(AGENT_TOKEN_PREFIX);
    const previousValidUntil = new Date(now + graceMs).toISOString();
    this.#hosts.set(id, {
      ...(host ?? { id, state: 'active' as const }),
      tokenHash: hashToken(token),
      previousTokenHash: previous,
      previousTokenUntil: previousValidUntil,
      rotatedAt: new Date(now).toISOString(),
    });
    this.#save();
    return { agentToken: token, previousValidUntil };
  }

  /**
   * Revokes the host's token (and invitation) durably; its key on the standby is marked to be removed.
   * Returns false when it was revoked already (a host a fence let stay connected may not any more).
   * `connectFenced`: a failover's fence: its agent may stay connected, fenced, until it is revoked again.
   */
  revoke(id: string, why: string, now = Date.now(), { connectFenced = false } = {}): boolean {
    const host = this.#hosts.get(id);
    if (host?.state === 'revoked') {
      if (host.connectFenced && !connectFenced) {
        const { connectFenced: _c, ...rest } = host;
        this.#hosts.set(id, rest);
        this.#save();
      }
      return false;
    }
    const { invite: _gone, previousTokenHash: _p, previousTokenUntil: _u, ...rest } = host ?? { id, state: 'revoked' as const };
    this.#hosts.set(id, { ...rest, state: 'revoked', revokedAt: new Date(now).toISOString(), revokedWhy: why, keyRevoked: false, ...(connectFenced ? { connectFenced: true } : {}) });
    this.#save();
    return true;
  }

  /** The standby confirmed (or failed) removing the key. */
  keyRevocation(id: string, error?: string): void {
    this.keyRevocations([id], error);
  }

  /** The same for several hosts (a fence's), written once. */
  keyRevocations(ids: readonly string[], error?: string): void {
    let changed = false;
    for (const id of ids) {
      const host = this.#hosts.get(id);
      if (!host || host.state !== 'revoked') continue;
      if (error === undefined) {
        const { keyRevokeError: _e, ...rest } = host;
        this.#hosts.set(id, { ...rest, keyRevoked: true });
      } else {
        this.#hosts.set(id, { ...host, keyRevoked: false, keyRevokeError: error.slice(0, 500) });
      }
      changed = true;
    }
    if (changed) this.#save();
  }

  /** Revoked hosts whose key the standby has not confirmed gone yet. */
  pendingKeyRevocations(): string[] {
    return [...this.#hosts.values()].filter((h) => h.state === 'revoked' && h.keyRevoked !== true).map((h) => h.id);
  }
}
