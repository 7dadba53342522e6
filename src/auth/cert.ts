import { TLSSocket, type PeerCertificate } from 'node:tls';
import { z } from 'zod';
import { ROLES } from './permissions.js';
import { globMatch, type Principal, type PrincipalScope } from './principal.js';

/**
 * Client certificates (mTLS, `[server.tls] client_auth`) as principals: `[[auth.client_certs]]`
 * entries map a certificate's subject CN and/or a subjectAltName to a role and a scope. The TLS
 * layer (src/server/tls.ts) has already checked the chain and the validity period; this only
 * says who a verified certificate is.
 */

const globList = z
  .array(z.string().min(1), { error: 'expected a list of names or globs such as ["support-*"]' })
  .optional();

/** One `[[auth.client_certs]]` entry. When both `cn` and `san` are given, both must match. */
export const clientCertMappingSchema = z
  .strictObject({
    /** Glob (`*` = any run of characters) over the subject CN, e.g. "ci-*". */
    cn: z.string().min(1).optional(),
    /**
     * Glob over one subjectAltName entry. With a type prefix ("DNS:", "URI:", "email:",
     * "IP Address:") it is matched against that type only, e.g. "URI:spiffe://prod/ns/*";
     * without one, against the value of any entry.
     */
    san: z.string().min(1).optional(),
    role: z.enum(ROLES, { error: `expected a role: ${ROLES.join(', ')}` }),
    agents: globList,
    capabilities: globList,
    memory: globList,
    tools: globList,
  })
  .refine((m) => m.cn !== undefined || m.san !== undefined, {
    error: 'a client certificate mapping needs "cn", "san" or both, e.g. cn = "ci-*"',
  });

export type ClientCertMapping = z.output<typeof clientCertMappingSchema>;

export const clientCertMappingsSchema = z.array(clientCertMappingSchema).default([]);

const SAN_TYPES = ['DNS', 'URI', 'email', 'IP Address', 'DirName', 'Registered ID', 'othername'];

/**
 * Node.js writes subjectaltname as `DNS:a, URI:b, IP Address:127.0.0.1`, quoting (JSON) a value
 * that holds a comma or a quote, so a crafted value such as `DNS:x, URI:admin` cannot pass for two
 * entries.
 */
export function parseSubjectAltName(text: string | undefined): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  if (!text) return out;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (text[j] === '"') {
      // A JSON string: find its closing quote (skipping escaped characters).
      let k = j + 1;
      while (k < text.length && text[k] !== '"') k += text[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(j, k + 1)) as string;
      } catch {
        return out; // not Node's format: trust nothing after this point
      }
      j = k + 1;
    } else {
      const comma = text.indexOf(', ', j);
      const end = comma < 0 ? text.length : comma;
      value = text.slice(j, end);
      j = end;
    }
    out.push({ type, value });
    if (text.startsWith(', ', j)) j += 2;
    else if (j < text.length) return out;
    i = j;
  }
  return out;
}

function sanMatches(pattern: string, sans: readonly { type: string; value: string }[]): boolean {
  const typed = SAN_TYPES.find((t) => pattern.startsWith(`${t}:`));
  if (typed) {
    const p = pattern.slice(typed.length + 1);
    return sans.some((s) => s.type === typed && globMatch(p, s.value));
  }
  return sans.some((s) => globMatch(pattern, s.value));
}

/**
 * The principal a client certificate stands for: the first `mapping` entry it matches, as
 * `{ id: 'cert:<CN>', kind: 'cert', name: CN, role, scope }` (a certificate without a CN is named
 * by its first subjectAltName value). undefined: no certificate, no entry matches, the subject has
 * several CNs (ambiguous), or the certificate is outside its validity period.
 *
 * It does not check who signed the certificate: call it only for a connection whose
 * `authorized` is true (principalFromSocket does both).
 */
export function principalFromCertificate(
  cert: PeerCertificate | undefined | null,
  mapping: readonly ClientCertMapping[],
  now = Date.now(),
): Principal | undefined {
  // getPeerCertificate() returns {} when the client sent none.
  if (!cert || !cert.subject || mapping.length === 0) return undefined;
  const rawCn: unknown = cert.subject.CN;
  if (rawCn !== undefined && typeof rawCn !== 'string') return undefined; // several CNs: Node.js gives an array
  const cn = rawCn === '' ? undefined : rawCn;
  // The handshake checked the dates already (client_auth = "require" or socket.authorized); this
  // keeps an expired certificate from being honoured by a caller that forgot to check.
  const from = Date.parse(cert.valid_from);
  const to = Date.parse(cert.valid_to);
  if (!Number.isFinite(from) || !Number.isFinite(to) || now < from || now > to) return undefined;
  const sans = parseSubjectAltName(cert.subjectaltname);
  const name = cn ?? sans[0]?.value;
  if (name === undefined) return undefined;
  for (const m of mapping) {
    if (m.cn !== undefined && (cn === undefined || !globMatch(m.cn, cn))) continue;
    if (m.san !== undefined && !sanMatches(m.san, sans)) continue;
    const scope: PrincipalScope = {
      ...(m.agents && { agents: m.agents }),
      ...(m.capabilities && { capabilities: m.capabilities }),
      ...(m.memory && { memory: m.memory }),
      ...(m.tools && { tools: m.tools }),
    };
    return { id: `cert:${name}`, kind: 'cert', name, role: m.role, scope };
  }
  return undefined;
}

/**
 * The certificate principal of a request's connection (`req.raw.socket`): undefined unless the
 * connection is TLS, its client certificate chains to `[server.tls] ca` and is in its validity
 * period (`authorized`), and a mapping entry matches it.
 */
export function principalFromSocket(socket: unknown, mapping: readonly ClientCertMapping[]): Principal | undefined {
  if (mapping.length === 0 || !(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  return principalFromCertificate(socket.getPeerCertificate(), mapping);
}
