// What a host id may look like. The proxy issues ids; the standby's receiver
// pins them in writer keys' forced commands (`standby receive --host ID`) and
// in file names, so both sides check the same grammar.
import { StandbyError } from '../core/errors.ts';

export const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function checkHostId(id: string, what = 'host id'): string {
  if (!HOST_ID.test(id)) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `${what} ${JSON.stringify(id.slice(0, 80))}: expected 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit`, { id: id.slice(0, 80) });
  }
  return id;
}
