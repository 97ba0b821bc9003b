// A download-only token: lets a host download the program (bundle.tar.gz and
// bundle.sha256) until it expires, and nothing else. `standby hosts add
// <standby id>` issues one for the standby's install line: the standby needs
// the program but enrolls nothing (the proxy's fencing key is all it trusts).
// Stateless: an HMAC of its expiry under a key derived from the admin token,
// so nothing is stored and a new admin token voids every one issued before.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { DOWNLOAD_PREFIX } from '../protocol/admin-api.ts';


function mac(adminToken: string, expiresAtS: number): Buffer {
  const key = createHash('sha256').update(`standby download key\0${adminToken}`).digest();
  return createHmac('sha256', key).update(`standby bundle download\0${expiresAtS}`).digest();
}

/** A token valid until `expiresAtMs` (rounded down to the second). */
export function downloadToken(adminToken: string, expiresAtMs: number): string {
  const s = Math.floor(expiresAtMs / 1000);
  return `${DOWNLOAD_PREFIX}${s}_${mac(adminToken, s).toString('base64url')}`;
}

/** Whether `token` is a download token of this admin token that has not expired; constant time in the MAC. */
export function downloadTokenValid(adminToken: string, token: string, now = Date.now()): boolean {
  const m = /^sbd_(\d{1,12})_([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return false;
  const s = Number(m[1]);
  if (s * 1000 <= now) return false;
  return timingSafeEqual(Buffer.from(m[2]!, 'base64url'), mac(adminToken, s));
}
