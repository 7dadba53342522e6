/**
 * Which addresses a tool's HTTP may connect to (`allowed_hosts` of `[tools.NAME]` and of a tool
 * manifest's `[permissions]`; web.fetch uses `[tools.http_client]`'s). An entry is a host name,
 * `*.domain`, `*`, an IPv4 address or an IPv6 address in brackets, each optionally with `:PORT`.
 *
 * A name grants what it resolves to only when that is a public address: loopback, private,
 * link-local and the other internal ranges are reached only through an entry naming the address
 * itself, and a port this Caxton process listens on only through an entry naming the address and
 * that port. The check is made on the address a connection is about to use (src/tools/egress.ts),
 * never on the name: a name that resolves to 127.0.0.1 reaches nothing a public name could not.
 */
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/** The syntax of one `allowed_hosts` entry. */
export const HOST_GRANT_RE =
  /^(\*|(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$/i;

export const HOST_GRANT_HINT =
  'expected a host name, "*.domain", an IP address (IPv6 in brackets) or "*", optionally with ":PORT"';

/** One parsed entry: `host` lowercased without brackets; `address` when it is an IP address. */
export interface HostGrant {
  readonly host: string;
  readonly port: number | undefined;
  readonly address: boolean;
}

/** Parses entries already validated by HOST_GRANT_RE (an invalid one grants nothing). */
export function parseHostGrants(entries: readonly string[]): HostGrant[] {
  const out: HostGrant[] = [];
  for (const raw of entries) {
    const e = raw.trim().toLowerCase();
    let host = e;
    let port: number | undefined;
    if (e.startsWith('[')) {
      const end = e.indexOf(']');
      if (end < 0) continue;
      host = e.slice(1, end);
      const rest = e.slice(end + 1);
      if (rest !== '') port = portOf(rest);
    } else {
      const colon = e.lastIndexOf(':');
      if (colon >= 0) {
        host = e.slice(0, colon);
        port = portOf(e.slice(colon));
      }
    }
    if (port === 0 || host === '') continue;
    out.push({ host: host.replace(/\.$/, ''), port, address: isIP(host) !== 0 });
  }
  return out;
}

function portOf(s: string): number {
  const n = /^:(\d{1,5})$/.exec(s) ? Number(s.slice(1)) : 0;
  return n > 0 && n <= 65_535 ? n : 0;
}

/** The port a URL connects to. */
export function portOfUrl(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

/** Whether `grants` let a request name `host` (a URL's hostname, without brackets) on `port`. */
export function hostGranted(host: string, port: number, grants: readonly HostGrant[]): boolean {
  const h = host
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
  for (const g of grants) {
    if (g.port !== undefined && g.port !== port) continue;
    if (g.host === '*' || g.host === h) return true;
    if (g.host.startsWith('*.') && h.endsWith(g.host.slice(1)) && h.length > g.host.length - 1) return true;
    if (g.address && isIP(h) !== 0 && sameAddress(g.host, h)) return true;
  }
  return false;
}

/** Internal ranges: loopback, private, link-local, carrier-grade NAT, unspecified, multicast, reserved. */
const INTERNAL = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 3],
] as const)
  INTERNAL.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  // The unspecified and loopback addresses and the deprecated IPv4-compatible ones.
  ['::', 96],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  // NAT64: reaches whatever IPv4 address it embeds.
  ['64:ff9b::', 96],
  ['100::', 64],
] as const)
  INTERNAL.addSubnet(net, prefix, 'ipv6');

/** The eight 16-bit groups of an IPv6 address (an embedded dotted IPv4 tail as two groups). */
function groupsOf(a: string): number[] | undefined {
  let text = a;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [w, x, y, z] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -dotted[1]!.length)}${((w << 8) | x).toString(16)}:${((y << 8) | z).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const part = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  return [...head, ...Array<number>(fill).fill(0), ...tail];
}

/** An address as compared here: lowercased, no brackets, an IPv4-mapped IPv6 address (`::ffff:7f00:1`) as its IPv4 address. */
export function normalAddress(address: string): string {
  const a = address.toLowerCase().replace(/^\[|\]$/g, '');
  if (isIP(a) !== 6) return a;
  const g = groupsOf(a);
  if (g === undefined || g.slice(0, 5).some((x) => x !== 0) || g[5] !== 0xffff) return a;
  return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
}

function family(a: string): 'ipv4' | 'ipv6' {
  return isIP(a) === 4 ? 'ipv4' : 'ipv6';
}

function sameAddress(a: string, b: string): boolean {
  const x = normalAddress(a);
  const y = normalAddress(b);
  if (isIP(x) !== isIP(y)) return false;
  const one = new BlockList();
  one.addAddress(x, family(x));
  return one.check(y, family(y));
}

/** Whether `address` is in an internal range (loopback, private, link-local…). */
export function isInternalAddress(address: string): boolean {
  const a = normalAddress(address);
  return isIP(a) !== 0 && INTERNAL.check(a, family(a));
}

/** Where this process accepts connections (the API, the metrics endpoint): registered as they listen. */
export interface Listener {
  host: string;
  port: number;
}

const listeners = new Set<Listener>();

/** Records a listener of this process; answers the function that forgets it (on close). */
export function noteListener(l: Listener): () => void {
  const entry = { host: normalAddress(l.host), port: l.port };
  listeners.add(entry);
  return () => listeners.delete(entry);
}

/** This process's listeners now (plain data: handed to the HTTP worker with each request). */
export function ownListeners(): Listener[] {
  return [...listeners];
}

const WILDCARD = new Set(['0.0.0.0', '::', '']);

function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((xs) => (xs ?? []).map((x) => normalAddress(x.address)));
}

/** Whether `address`:`port` reaches one of `own` (a wildcard listener answers on every local address). */
function isOwn(address: string, port: number, own: readonly Listener[]): boolean {
  const a = normalAddress(address);
  for (const l of own) {
    if (l.port !== port) continue;
    if (sameAddress(l.host, a) || (l.host === 'localhost' && isInternalAddress(a) && /^(127\.|::1$)/.test(a)))
      return true;
    if (WILDCARD.has(l.host) && (/^(127\.|::1$|0\.)/.test(a) || localAddresses().some((x) => sameAddress(x, a))))
      return true;
  }
  return false;
}

const shown = (a: string) => (isIP(a) === 6 ? `[${a}]` : a);

/**
 * Why a connection to `address`:`port` is refused under every one of `grantLists` (a tool
 * server's manifest and its operator grant must both allow it), or undefined when it is allowed.
 * Names were matched before: this judges the address a connection would use.
 */
export function addressRefusal(
  address: string,
  port: number,
  grantLists: readonly (readonly HostGrant[])[],
  own: readonly Listener[],
): string | undefined {
  const a = normalAddress(address);
  const named = (needPort: boolean) =>
    grantLists.every((gs) =>
      gs.some(
        (g) =>
          g.address && sameAddress(g.host, a) && (needPort ? g.port === port : g.port === undefined || g.port === port),
      ),
    );
  if (isOwn(a, port, own))
    return named(true)
      ? undefined
      : `${shown(a)}:${port} is this Caxton server's own listener: reached only through an allowed_hosts entry naming "${shown(a)}:${port}"`;
  if (isInternalAddress(a))
    return named(false)
      ? undefined
      : `${shown(a)} is an internal address (loopback, private, link-local or reserved): reached only through an allowed_hosts entry naming the address itself ("${shown(a)}"), never through a host name`;
  return undefined;
}
