/**
 * `[auth.jwt]`: bearer tokens from an OpenID Connect issuer (ADR 0021). The integrator wires it
 * into `[auth]` as `jwt: jwtConfigSchema.optional()`; the authenticator is src/auth/jwt.ts.
 */
import { z } from 'zod';
import { durationField as duration } from '../shared/zod-units.js';
import { ROLES } from './permissions.js';

/**
 * Signature algorithms an issuer's public key can verify. Shared-secret (HS*) algorithms are left
 * out on purpose: with them, anyone holding the "public" key could mint tokens (the classic
 * RS256→HS256 confusion), and `none` means no signature at all.
 */
export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];
export const DEFAULT_JWT_ALGORITHMS: JwtAlgorithm[] = ['RS256', 'ES256', 'EdDSA'];

const algorithm = z.string({ error: 'expected an algorithm name such as "RS256"' }).transform((v, ctx) => {
  if ((JWT_ALGORITHMS as readonly string[]).includes(v)) return v as JwtAlgorithm;
  const upper = v.toUpperCase();
  const message =
    upper === 'NONE'
      ? '"none" means an unsigned token: Caxton never accepts one'
      : /^HS\d+$/.test(upper)
        ? `"${v}" is a shared-secret algorithm: Caxton verifies tokens with the issuer's public key only (write "RS256", "ES256" or "EdDSA")`
        : `unknown algorithm ${JSON.stringify(v.slice(0, 20))}: expected one of ${JWT_ALGORITHMS.join(', ')}`;
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
});

/** A claim name, or a dotted path into nested claims (`realm_access.roles`). */
const claimPath = (what: string) =>
  z
    .string({ error: `expected the name of the claim holding ${what}, e.g. "sub" or "realm_access.roles"` })
    .min(1, { error: `expected the name of the claim holding ${what}` })
    .max(200, { error: 'a claim path is at most 200 characters' })
    .regex(/^\S+$/, { message: 'a claim path has no spaces: write a claim name, or names joined with dots' });

const role = z.enum(ROLES, { error: `expected a Caxton role: ${ROLES.join(', ')}` });

const isLoopbackHost = (host: string) => host === 'localhost' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);

/** An https URL, or http on this host only: what Caxton fetches keys from or sends codes and secrets to. */
export function isSecureUrl(v: unknown): v is string {
  if (typeof v !== 'string') return false;
  try {
    const u = new URL(v);
    return u.protocol === 'https:' || (u.protocol === 'http:' && isLoopbackHost(u.hostname));
  } catch {
    return false;
  }
}

const jwksUrl = z
  .string({ error: 'expected the issuer\'s JWKS URL, e.g. "https://issuer.example.com/.well-known/jwks.json"' })
  .refine(
    isSecureUrl,
    // Keys fetched over plain HTTP could be swapped in transit, and with them every token accepted.
    {
      message:
        'expected an https:// URL of the issuer\'s key set, e.g. "https://issuer.example.com/.well-known/jwks.json" (http:// only on 127.0.0.1 or localhost)',
    },
  );

/** A public JWK: an inline TOML table, or the JWK as a JSON string. */
const publicJwk = z.unknown().transform((v, ctx) => {
  let jwk: unknown = v;
  if (typeof v === 'string') {
    try {
      jwk = JSON.parse(v);
    } catch {
      ctx.addIssue({
        code: 'custom',
        message:
          'expected a public JWK: an inline table such as { kty = "EC", crv = "P-256", x = "...", y = "..." }, or the same as a JSON string',
      });
      return z.NEVER;
    }
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) {
    ctx.addIssue({
      code: 'custom',
      message: 'expected a public JWK: an inline table such as { kty = "EC", crv = "P-256", x = "...", y = "..." }',
    });
    return z.NEVER;
  }
  const o = jwk as Record<string, unknown>;
  if (o.kty === 'oct') {
    ctx.addIssue({
      code: 'custom',
      message: 'a shared-secret ("oct") key is refused: give the issuer\'s public key (kty "RSA", "EC" or "OKP")',
    });
    return z.NEVER;
  }
  if (o.kty !== 'RSA' && o.kty !== 'EC' && o.kty !== 'OKP') {
    ctx.addIssue({ code: 'custom', message: 'expected "kty" to be "RSA", "EC" or "OKP" (a public key)' });
    return z.NEVER;
  }
  if ('d' in o) {
    // A private key here would sit in caxton.toml (and in `config show`) for no reason: verifying needs the public half only.
    ctx.addIssue({
      code: 'custom',
      message:
        'this JWK is a private key (it has "d"): give only the public part (drop "d" and the other private members)',
    });
    return z.NEVER;
  }
  return o as Record<string, unknown> & { kty: 'RSA' | 'EC' | 'OKP' };
});

const endpointUrl = (what: string) =>
  z.string({ error: `expected the issuer's ${what} URL` }).refine(
    isSecureUrl,
    // The sign-in code and the client secret travel to it: never in clear beyond this host.
    { message: `expected an https:// URL of the issuer's ${what} (http:// only on 127.0.0.1 or localhost)` },
  );

/** Where the console receives the issuer's answer (registered at the issuer as `<Caxton URL>/ui/auth/callback`). */
export const SSO_CALLBACK_PATH = '/ui/auth/callback';

/**
 * `[auth.jwt.sso]`: the web console's "Sign in with single sign-on" (authorization code with
 * PKCE; src/auth/sso.ts). The client is registered at the issuer with the redirect URI
 * `<Caxton URL>/ui/auth/callback`.
 */
export const ssoConfigSchema = z.strictObject({
  client_id: z
    .string({ error: 'expected the client id the console is registered with at the issuer, e.g. "caxton-console"' })
    .min(1)
    .max(200),
  /** The environment variable holding the client secret (a confidential client); absent: a public client (PKCE only). */
  client_secret_env: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
      message: 'expected the name of an environment variable, e.g. "CAXTON_SSO_CLIENT_SECRET"',
    })
    .optional(),
  scopes: z
    .array(
      z
        .string()
        .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, { message: 'a scope is printable ASCII without spaces or quotes' }),
    )
    .min(1)
    .default(['openid', 'profile']),
  /** Which token of the issuer's answer the console uses as its bearer token: it must pass [auth.jwt] (issuer, audience, role claim). */
  token: z
    .enum(['access_token', 'id_token'], { error: 'expected "access_token" or "id_token"' })
    .default('access_token'),
  /** Absent: read from the issuer's /.well-known/openid-configuration. */
  authorization_endpoint: endpointUrl('authorization endpoint').optional(),
  token_endpoint: endpointUrl('token endpoint').optional(),
  /**
   * The redirect URI registered at the issuer, compared whole (scheme, host, port, path) with the
   * one a sign-in brings back. Absent: this server's callback at the origin the request came to.
   */
  redirect_uri: z
    .string({
      error: `expected the console's redirect URI registered at the issuer, e.g. "https://caxton.example.com${SSO_CALLBACK_PATH}"`,
    })
    .refine((v) => isSecureUrl(v) && isCallbackUri(v), {
      message: `expected the console's redirect URI registered at the issuer: an https:// URL (http:// only on 127.0.0.1 or localhost) with the path ${SSO_CALLBACK_PATH} and no query, e.g. "https://caxton.example.com${SSO_CALLBACK_PATH}"`,
    })
    .optional(),
});

/** Whether `v` is a URL of the console's callback: that path, no credentials, query or fragment. */
function isCallbackUri(v: string): boolean {
  const u = new URL(v);
  return u.pathname === SSO_CALLBACK_PATH && u.search === '' && u.hash === '' && u.username === '' && u.password === '';
}

export type SsoConfig = z.output<typeof ssoConfigSchema>;

const KEY_SOURCES = ['jwks_url', 'public_key_file', 'jwk'] as const;

export const jwtConfigSchema = z
  .strictObject({
    /** Must equal the token's `iss` exactly (Auth0 issuers end in "/"). */
    issuer: z
      .string({
        error: 'expected the issuer URL exactly as the token\'s "iss" claim has it, e.g. "https://issuer.example.com/"',
      })
      .min(1, { error: 'expected the issuer URL, e.g. "https://issuer.example.com/"' }),
    /** The token's `aud` must contain one of these. */
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)], {
      error: 'expected the audience Caxton\'s tokens are issued for: a string such as "caxton", or a list of them',
    }),
    /** The issuer's JSON Web Key Set; fetched on demand, cached, refetched for an unknown key id (at most every 30 s). */
    jwks_url: jwksUrl.optional(),
    /** A PEM public key (SPKI, "-----BEGIN PUBLIC KEY-----"), relative to caxton.toml. */
    public_key_file: z
      .string({ error: 'expected the path of a PEM public key file' })
      .min(1, { error: 'expected the path of a PEM public key file' })
      .optional(),
    /** One public key as a JWK. */
    jwk: publicJwk.optional(),
    algorithms: z
      .array(algorithm, { error: 'expected a list of algorithms, e.g. ["RS256", "ES256", "EdDSA"]' })
      .min(1, { error: 'list at least one algorithm, e.g. ["RS256"]' })
      .default([...DEFAULT_JWT_ALGORITHMS]),
    /** The claim holding the caller's role(s): a string or a list of strings. */
    role_claim: claimPath('the role').default('caxton_role'),
    /** Claim value → Caxton role; the strongest match wins. Empty: values that are Caxton role names map to themselves. */
    roles: z
      .record(z.string().min(1, { error: 'a claim value is not empty' }), role, {
        error: 'expected a table: claim value = "role", e.g. { "caxton-admins" = "admin" }',
      })
      .default({}),
    /** Given to a token whose role claim maps to no role; absent: such a token is refused (403). */
    default_role: role.optional(),
    subject_claim: claimPath("the caller's identity").default('sub'),
    /** The claim listing the agents (globs) the caller may use; a token without it may use none. */
    agents_claim: claimPath('the agent names').optional(),
    /** Leeway for `exp` and `nbf` against clock skew between the issuer and this host. */
    clock_tolerance: duration(30_000, { min: 0, max: 600_000 }),
    /** How long a verified token is remembered (never past its `exp`); 0 turns the cache off. */
    cache_ttl: duration(60_000, { min: 0, max: 3_600_000 }),
    /** The web console's single sign-on through this issuer. */
    sso: ssoConfigSchema.optional(),
  })
  .superRefine((c, ctx) => {
    const set = KEY_SOURCES.filter((k) => c[k] !== undefined);
    if (set.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['jwks_url'],
        message:
          'the issuer\'s public key is needed: set exactly one of jwks_url (the issuer\'s key set URL, e.g. "https://issuer.example.com/.well-known/jwks.json"), public_key_file (a PEM file) or jwk (an inline public JWK)',
      });
    } else if (set.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [set[1]!],
        message: `set only one key source (jwks_url, public_key_file or jwk): ${set.join(' and ')} are set`,
      });
    }
  });

export type JwtConfigInput = z.input<typeof jwtConfigSchema>;
export type JwtConfig = z.output<typeof jwtConfigSchema>;
