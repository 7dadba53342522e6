import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  clientCertMappingSchema,
  clientCertMappingsSchema,
  parseSubjectAltName,
  principalFromCertificate,
  principalFromSocket,
} from '../../src/auth/cert.js';
import { createCa, type TestCa } from '../helpers/certs.js';

const DAY = 24 * 3_600_000;

/** The fields of a PeerCertificate that the mapping reads, as getPeerCertificate() gives them. */
function peer(over: { CN?: string | string[]; san?: string; from?: number; to?: number } = {}): PeerCertificate {
  return {
    subject: { ...(over.CN !== undefined && { CN: over.CN }) },
    subjectaltname: over.san,
    valid_from: new Date(over.from ?? Date.now() - DAY).toUTCString(),
    valid_to: new Date(over.to ?? Date.now() + DAY).toUTCString(),
  } as unknown as PeerCertificate;
}

const mapping = clientCertMappingsSchema.parse([
  { cn: 'admin-console', role: 'admin' },
  { cn: 'ci-*', san: 'URI:spiffe://caxton/ci/*', role: 'operator', agents: ['build-*'] },
  { san: 'DNS:*.invokers.example', role: 'invoker', agents: ['support-*'], tools: ['search.*'] },
  { cn: '*', role: 'viewer' },
]);

describe('principalFromCertificate', () => {
  it('maps the CN to a principal cert:<CN> with the role of the first matching entry', () => {
    expect(principalFromCertificate(peer({ CN: 'admin-console' }), mapping)).toEqual({
      id: 'cert:admin-console',
      kind: 'cert',
      name: 'admin-console',
      role: 'admin',
      scope: {},
    });
  });

  it('needs both cn and san when an entry names both, and carries the agents scope', () => {
    const both = principalFromCertificate(
      peer({ CN: 'ci-runner', san: 'DNS:ci.example, URI:spiffe://caxton/ci/main' }),
      mapping,
    );
    expect(both).toEqual({
      id: 'cert:ci-runner',
      kind: 'cert',
      name: 'ci-runner',
      role: 'operator',
      scope: { agents: ['build-*'] },
    });
    // Right CN, wrong SAN: falls through to the catch-all viewer entry.
    expect(principalFromCertificate(peer({ CN: 'ci-runner', san: 'URI:spiffe://other/ci/main' }), mapping)?.role).toBe(
      'viewer',
    );
  });

  it('matches a typed SAN pattern against that type only', () => {
    const p = principalFromCertificate(peer({ CN: 'svc', san: 'DNS:billing.invokers.example' }), mapping.slice(0, 3));
    expect(p).toMatchObject({ id: 'cert:svc', role: 'invoker', scope: { agents: ['support-*'], tools: ['search.*'] } });
    expect(
      principalFromCertificate(peer({ CN: 'svc', san: 'URI:billing.invokers.example' }), mapping.slice(0, 3)),
    ).toBeUndefined();
  });

  it('an untyped SAN pattern matches any entry value; a certificate without a CN is named by its first SAN', () => {
    const m = clientCertMappingsSchema.parse([{ san: 'spiffe://caxton/*', role: 'developer' }]);
    expect(principalFromCertificate(peer({ san: 'URI:spiffe://caxton/dev' }), m)).toEqual({
      id: 'cert:spiffe://caxton/dev',
      kind: 'cert',
      name: 'spiffe://caxton/dev',
      role: 'developer',
      scope: {},
    });
  });

  it('gives nothing for no certificate, no match, several CNs or dates outside the validity period', () => {
    expect(principalFromCertificate({} as PeerCertificate, mapping)).toBeUndefined();
    expect(principalFromCertificate(undefined, mapping)).toBeUndefined();
    expect(principalFromCertificate(peer({ CN: 'someone' }), mapping.slice(0, 3))).toBeUndefined();
    expect(principalFromCertificate(peer({ CN: ['admin-console', 'x'] }), mapping)).toBeUndefined();
    expect(
      principalFromCertificate(
        peer({ CN: 'admin-console', from: Date.now() - 3 * DAY, to: Date.now() - DAY }),
        mapping,
      ),
    ).toBeUndefined();
    expect(
      principalFromCertificate(
        peer({ CN: 'admin-console', from: Date.now() + DAY, to: Date.now() + 3 * DAY }),
        mapping,
      ),
    ).toBeUndefined();
    expect(principalFromCertificate(peer({ CN: 'admin-console' }), [])).toBeUndefined();
  });

  it('a SAN value holding ", URI:..." is one entry, not two (Node.js quotes it)', () => {
    const m = clientCertMappingsSchema.parse([{ san: 'URI:spiffe://caxton/admin', role: 'admin' }]);
    // What getPeerCertificate() writes for DNS name "x.example, URI:spiffe://caxton/admin".
    const san = 'DNS:"x.example\\u002c URI:spiffe://caxton/admin", IP Address:127.0.0.1';
    expect(parseSubjectAltName(san)).toEqual([
      { type: 'DNS', value: 'x.example, URI:spiffe://caxton/admin' },
      { type: 'IP Address', value: '127.0.0.1' },
    ]);
    expect(principalFromCertificate(peer({ CN: 'x', san }), m)).toBeUndefined();
  });
});

describe('parseSubjectAltName on real certificates', () => {
  let ca: TestCa;
  beforeAll(async () => {
    ca = await createCa();
  });

  it('reads what Node.js writes for DNS, IP, URI and quoted values', async () => {
    const c = await ca.issue({
      cn: 'x',
      dns: ['a.example', 'b, "c"'],
      ips: ['127.0.0.1'],
      uris: ['spiffe://caxton/x'],
    });
    const text = new X509Certificate(c.cert).subjectAltName;
    expect(parseSubjectAltName(text)).toEqual([
      { type: 'DNS', value: 'a.example' },
      { type: 'DNS', value: 'b, "c"' },
      { type: 'IP Address', value: '127.0.0.1' },
      { type: 'URI', value: 'spiffe://caxton/x' },
    ]);
  });
});

describe('clientCertMappingSchema', () => {
  it('needs cn or san, and a known role', () => {
    expect(clientCertMappingSchema.safeParse({ role: 'admin' }).error?.issues[0]?.message).toMatch(
      /needs "cn", "san" or both/,
    );
    expect(clientCertMappingSchema.safeParse({ cn: 'x', role: 'root' }).error?.issues[0]?.message).toMatch(
      /expected a role: admin, operator/,
    );
    expect(clientCertMappingSchema.safeParse({ cn: 'x', role: 'viewer', extra: 1 }).success).toBe(false);
  });
});

describe('principalFromSocket', () => {
  it('gives nothing for a connection that is not TLS', () => {
    expect(
      principalFromSocket({ authorized: true, getPeerCertificate: () => peer({ CN: 'admin-console' }) }, mapping),
    ).toBeUndefined();
  });
});
