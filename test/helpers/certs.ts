/**
 * Certificates made on the fly for TLS tests: a CA, server and client certificates signed by it,
 * with chosen names and validity. ECDSA P-256 keys (fast to make), PEM out.
 */
import { randomBytes, webcrypto } from 'node:crypto';

// @peculiar/x509 (through tsyringe) wants a Reflect metadata polyfill at import time; it uses
// three functions of it, and none of its decorators' metadata matters to what is done here.
// A devDependency on reflect-metadata would do the same.
{
  const store = new WeakMap<object, Map<unknown, unknown>>();
  const own = (t: object) => {
    let m = store.get(t);
    if (!m) store.set(t, (m = new Map()));
    return m;
  };
  const r = Reflect as unknown as Record<string, unknown>;
  r.defineMetadata ??= (k: unknown, v: unknown, t: object) => void own(t).set(k, v);
  r.getOwnMetadata ??= (k: unknown, t: object) => store.get(t)?.get(k);
  r.getMetadata ??= (k: unknown, t: object) => {
    for (let o: object | null = t; o; o = Object.getPrototypeOf(o) as object | null) {
      const v = store.get(o)?.get(k);
      if (v !== undefined) return v;
    }
    return undefined;
  };
}
const x509 = await import('@peculiar/x509');
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 3_600_000;

export interface Pem {
  cert: string;
  key: string;
  /** Upper-case hex, as node:crypto and getPeerCertificate() write it. */
  serial: string;
}

export interface IssueOptions {
  cn: string;
  dns?: string[];
  ips?: string[];
  uris?: string[];
  /** Extended key usage: server (default when dns/ips are given) or client. */
  usage?: 'server' | 'client';
  notBefore?: Date;
  notAfter?: Date;
}

export interface TestCa {
  /** The CA certificate (PEM): the bundle clients or servers trust. */
  cert: string;
  issue(opts: IssueOptions): Promise<Pem>;
}

function serialHex(): string {
  const b = randomBytes(12);
  b[0] = (b[0]! & 0x7f) | 0x10; // positive, and no leading zero byte for Node.js to drop
  return b.toString('hex').toUpperCase();
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

export async function createCa(name = 'Caxton Test CA'): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialHex(),
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - 3 * 365 * DAY),
    notAfter: new Date(Date.now() + 365 * DAY),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    cert: caCert.toString('pem'),
    async issue(opts) {
      const leaf = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const serial = serialHex();
      const names = [
        ...(opts.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
        ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
        ...(opts.uris ?? []).map((value) => ({ type: 'url' as const, value })),
      ];
      const usage = opts.usage ?? (opts.dns || opts.ips ? 'server' : 'client');
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial,
        subject: `CN=${opts.cn}`,
        issuer: caCert.subject,
        notBefore: opts.notBefore ?? new Date(Date.now() - DAY),
        notAfter: opts.notAfter ?? new Date(Date.now() + 30 * DAY),
        signingAlgorithm: ALG,
        publicKey: leaf.publicKey,
        signingKey: keys.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([
            usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
          ]),
          ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
          await x509.AuthorityKeyIdentifierExtension.create(caCert),
        ],
      });
      return { cert: cert.toString('pem'), key: await keyPem(leaf.privateKey), serial };
    },
  };
}
