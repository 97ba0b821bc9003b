// The users of this machine, from /etc/passwd: whom code-server runs as, and
// whose home holds its data (the real machine's, also under --root: the units
// run there).
import { readFileSync } from 'node:fs';

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** A user of this machine, by name or uid, from /etc/passwd (the real machine's, also under --root: the unit runs there). */
export function account(who: string | number): Account | undefined {
  let text: string;
  try {
    text = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [name, , uid, gid, , home] = line.split(':');
    if (name === undefined || uid === undefined || gid === undefined || home === undefined) continue;
    if (typeof who === 'number' ? Number(uid) === who : name === who) return { name, uid: Number(uid), gid: Number(gid), home };
  }
  return undefined;
}
