/**
 * Outbound HTTP of the tools a model drives (web.fetch; tool modules' `http_request` in
 * http-worker.ts): the request's name is matched against the grants first, then the address the
 * connection will use is judged (src/shared/host-grants.ts) inside the connection's own DNS
 * lookup, and the connection is made to exactly that address. There is no second resolution to
 * race: a name that answers a public address to a check and 127.0.0.1 to the connect cannot exist
 * here, because the check and the connect read one answer.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import type { Agent } from 'undici';
import { addressRefusal, type HostGrant, type Listener } from '../shared/host-grants.js';

/** A connection refused by the grants (its message says which address and which entry would allow it). */
export class EgressRefused extends Error {
  override readonly name = 'EgressRefused';
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * An undici dispatcher whose every connection to `port` resolves its host once, keeps only the
 * addresses `grantLists` allow and connects to one of them. An IP literal is not looked up by
 * Node: judge it with `literalRefusal` first. `undici` is the package as its caller has it: loaded
 * on first use (`loadUndici`, src/shared/undici.ts), or imported by a worker that does nothing else.
 */
export function egressAgent(
  undici: { Agent: typeof Agent },
  port: number,
  grantLists: readonly (readonly HostGrant[])[],
  own: readonly Listener[],
  timeoutMs: number,
): Agent {
  const lookup = (hostname: string, opts: { all?: boolean; family?: number }, cb: LookupCallback): void => {
    dnsLookup(hostname, { all: true, ...(opts.family ? { family: opts.family } : {}) }, (err, addrs) => {
      if (err) return cb(err, []);
      const reasons: string[] = [];
      const ok = addrs.filter((a) => {
        const why = addressRefusal(a.address, port, grantLists, own);
        if (why !== undefined) reasons.push(why);
        return why === undefined;
      });
      if (ok.length === 0) return cb(new EgressRefused(`${hostname} resolves to ${reasons[0] ?? 'nothing'}`), []);
      if (opts.all === true) return cb(null, ok);
      cb(null, ok[0]!.address, ok[0]!.family);
    });
  };
  return new undici.Agent({
    connect: { lookup, timeout: timeoutMs } as unknown as NonNullable<Agent.Options['connect']>,
    // One request (or a redirect's hop) per agent: nothing is pooled beyond it.
    keepAliveTimeout: 1,
    keepAliveMaxTimeout: 1,
  });
}

/** Why a URL whose host is an IP address may not be reached, or undefined. */
export function literalRefusal(
  hostname: string,
  port: number,
  grantLists: readonly (readonly HostGrant[])[],
  own: readonly Listener[],
): string | undefined {
  const h = hostname.replace(/^\[|\]$/g, '');
  return isIP(h) === 0 ? undefined : addressRefusal(h, port, grantLists, own);
}

/** The EgressRefused behind an undici `fetch failed` (its cause), if that is why it failed. */
export function egressRefusalOf(e: unknown): EgressRefused | undefined {
  for (let x: unknown = e, i = 0; x instanceof Error && i < 4; x = (x as { cause?: unknown }).cause, i++)
    if (x instanceof EgressRefused || x.name === 'EgressRefused') return x as EgressRefused;
  return undefined;
}
