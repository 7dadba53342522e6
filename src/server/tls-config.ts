import { z } from 'zod';

/**
 * `[server.tls]` and `[metrics.tls]` (src/server/tls.ts, ADR 0022). A leaf module (zod only) so
 * src/config/config-schema.ts can use it without depending on the rest of src/server.
 *
 * Paths are relative to caxton.toml (src/config/load.ts resolves them). The files are read and
 * checked at start (a missing, unreadable or non-PEM file, or a key that does not belong to the
 * certificate, stops the start with an error naming the file) and reloaded when they change.
 */
export const tlsConfigSchema = z
  .strictObject({
    /** PEM certificate (chain): the server's certificate first, then any intermediates. */
    cert: z.string({ error: 'expected the path of a PEM certificate file, e.g. "tls/server.crt"' }).min(1),
    /** PEM private key of `cert` (unencrypted PKCS#8, PKCS#1 or SEC1). */
    key: z.string({ error: 'expected the path of a PEM private key file, e.g. "tls/server.key"' }).min(1),
    /** PEM bundle of the CAs whose client certificates are accepted (mTLS). */
    ca: z.string({ error: 'expected the path of a PEM CA bundle, e.g. "tls/clients-ca.crt"' }).min(1).optional(),
    /**
     * "none": no client certificate is asked for. "optional": one is asked for; a valid one
     * (signed by `ca`, in its validity period) identifies the caller, anything else leaves the
     * connection without a certificate principal. "require": a connection without a valid client
     * certificate is refused during the handshake (so /health needs one too).
     */
    client_auth: z
      .enum(['none', 'optional', 'require'], { error: 'expected "none", "optional" or "require"' })
      .default('none'),
    min_version: z.enum(['TLSv1.2', 'TLSv1.3'], { error: 'expected "TLSv1.2" or "TLSv1.3"' }).default('TLSv1.2'),
  })
  // Without a CA of its own Node.js would check client certificates against the public web
  // roots: anyone with a certificate from a public CA would pass.
  .refine((t) => t.client_auth === 'none' || t.ca !== undefined, {
    error:
      'client_auth = "optional" or "require" needs ca = "PATH", the bundle of CAs that sign your client certificates',
    path: ['ca'],
  });

export type TlsConfig = z.output<typeof tlsConfigSchema>;
