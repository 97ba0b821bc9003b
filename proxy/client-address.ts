// Who a client is, as the proxy counts it: its address as it goes into
// X-Forwarded-For (an IPv4-mapped IPv6 address as plain IPv4), and the key
// limits and the failed-auth throttle count it under (IPv4 as is, IPv6 by
// its /64: one subscriber usually holds a whole /64).
import { isIPv4, isIPv6 } from 'node:net';

/** The peer address as it goes into X-Forwarded-For: an IPv4-mapped IPv6 address as plain IPv4; '' when unknown. */
export function peerAddress(remote: string | undefined): string {
  if (remote === undefined) return '';
  return remote.startsWith('::ffff:') && isIPv4(remote.slice(7)) ? remote.slice(7) : remote;
}

/** The key a client is counted under: its IPv4 address, or its IPv6 /64. */
export function clientKey(address: string): string {
  const peer = peerAddress(address);
  if (!isIPv6(peer)) return peer;
  const [head = '', tail] = peer.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '').toLowerCase()).join(':')}::/64`;
}
