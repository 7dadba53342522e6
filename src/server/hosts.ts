import { isIPv4, isIPv6 } from 'node:net';

/**
 * Is `host` (a bind address from [server] host or [metrics] host) reachable only from this
 * machine? "localhost", 127.0.0.0/8, ::1 and ::ffff:127.x.x.x. Not "0.0.0.0" or "::" (every
 * interface), and no other name: a name's address is whatever the resolver says at bind time.
 */
export function isLoopbackHost(host: string): boolean {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h === 'localhost' || h === 'localhost.') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (!isIPv6(h)) return false;
  const mapped = /^(?:0{0,4}:){0,5}(?::|0{0,4}:)?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  if (mapped) return isIPv4(mapped[1]!) && mapped[1]!.startsWith('127.');
  return expandIPv6(h) === '0000:0000:0000:0000:0000:0000:0000:0001';
}

/** The eight groups of an IPv6 address (without an embedded IPv4 part), four hex digits each. */
function expandIPv6(h: string): string {
  const [head, tail] = h.includes('::') ? h.split('::') : [h, undefined];
  const a = head ? head.split(':') : [];
  const b = tail ? tail.split(':') : [];
  const groups = tail === undefined ? a : [...a, ...Array<string>(8 - a.length - b.length).fill('0'), ...b];
  return groups.map((g) => g.padStart(4, '0')).join(':');
}

/** Bind addresses meaning every interface: the host name clients use is then not known from the configuration. */
export const WILDCARD_HOSTS: ReadonlySet<string> = new Set(['0.0.0.0', '::']);
