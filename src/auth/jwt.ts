/**
 * JWT bearer tokens from an OpenID Connect issuer (`[auth.jwt]`, ADR 0021): `jose` checks the
 * signature against the issuer's JWKS (fetched, cached, refetched for a new key id) or a static
 * public key, then iss, aud, exp and nbf; jwt-claims.ts maps the claims to a Principal; a
 * verified token is remembered by its SHA-256 so a repeated one costs a hash and a map lookup.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { CaxtonError, describeError } from '../shared/errors.js';
import { principalFromClaims } from './jwt-claims.js';
import type { JwtAlgorithm, JwtConfig } from './jwt-config.js';
import type { Principal } from './principal.js';
import { TokenCache } from './token-cache.js';

/** Longest bearer token looked at: bigger ones are refused before any decoding or hashing. */
export const MAX_TOKEN_CHARS = 8 * 1024;
export const DEFAULT_TOKEN_CACHE_ENTRIES = 10_000;
const MAX_KEY_FILE_BYTES = 64 * 1024;

export interface JwtAuthenticatorOptions {
  /** Directory a relative `public_key_file` is read from (caxton.toml's directory); default the cwd. */
  baseDir?: string;
  /** Milliseconds since the epoch; tests move it forward to expire tokens. Default Date.now. */
  now?: () => number;
  /** Verified tokens remembered at most (default 10,000). */
  cacheEntries?: number;
  /** The remote key set's timings (jose's createRemoteJWKSet); tests set cooldownMs 0 to see a rotation at once. */
  jwks?: { timeoutMs?: number; cooldownMs?: number; cacheMaxAgeMs?: number };
}

export interface JwtAuthenticator {
  /** The Principal for a bearer token, or a CaxtonError: `unauthenticated` (401), `forbidden` (403), `not_ready` (503: the key set is unreachable). */
  authenticate(token: string): Promise<Principal>;
  /** Forgets cached tokens; later calls are refused. */
  close(): void;
}

type Reason =
  | 'empty_token'
  | 'token_too_long'
  | 'malformed'
  | 'algorithm_not_allowed'
  | 'bad_signature'
  | 'unknown_key'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'missing_claim'
  | 'invalid_claim';

// Messages name what is wrong and what to do, and never quote the token: it is a credential,
// and the error may be logged or shown to whoever sent it.
const refuse = (reason: Reason, message: string) => new CaxtonError('unauthenticated', message, { reason });

/** Raised by the key resolver when the key set cannot be fetched or read: the server's problem, not the caller's. */
class KeySetUnavailable extends Error {}

/** Which algorithms a static public key can verify: the allowlist is narrowed to them. */
function algorithmsFor(key: KeyObject): JwtAlgorithm[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      return curve === 'prime256v1'
        ? ['ES256']
        : curve === 'secp384r1'
          ? ['ES384']
          : curve === 'secp521r1'
            ? ['ES512']
            : [];
    }
    case 'ed25519':
      return ['EdDSA', 'Ed25519'];
    default:
      return [];
  }
}

function staticKey(config: JwtConfig, baseDir: string): { key: KeyObject; field: string } {
  if (config.jwk !== undefined) {
    try {
      return { key: createPublicKey({ key: config.jwk as JsonWebKey, format: 'jwk' }), field: 'jwk' };
    } catch (e) {
      throw new CaxtonError('invalid_config', `[auth.jwt] jwk is not a usable public key: ${describeError(e)}`, {
        field: 'auth.jwt.jwk',
      });
    }
  }
  const file = resolve(baseDir, config.public_key_file!);
  const field = 'auth.jwt.public_key_file';
  let pem: string;
  try {
    if (statSync(file).size > MAX_KEY_FILE_BYTES)
      throw new Error(`larger than ${MAX_KEY_FILE_BYTES / 1024} KiB: not a PEM key`);
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CaxtonError('invalid_config', `[auth.jwt] public_key_file ${file} cannot be read: ${describeError(e)}`, {
      field,
    });
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    // createPublicKey would derive the public half, but a private key has no business on a
    // server that only verifies: refusing it keeps the issuer's signing key where it belongs.
    throw new CaxtonError(
      'invalid_config',
      `[auth.jwt] public_key_file ${file} holds a PRIVATE key: give the issuer's public key ("-----BEGIN PUBLIC KEY-----" or a certificate)`,
      { field },
    );
  }
  try {
    return { key: createPublicKey(pem), field: 'public_key_file' };
  } catch {
    throw new CaxtonError(
      'invalid_config',
      `[auth.jwt] public_key_file ${file} is not a PEM public key: expected "-----BEGIN PUBLIC KEY-----" (SPKI) or "-----BEGIN CERTIFICATE-----"`,
      { field },
    );
  }
}

function headerAlg(token: string): string | undefined {
  try {
    const alg = decodeProtectedHeader(token).alg;
    return typeof alg === 'string' ? alg : undefined;
  } catch {
    return undefined;
  }
}

/** jose's error → a CaxtonError that says what is wrong with the token. */
function mapVerifyError(e: unknown, token: string, algorithms: readonly string[]): CaxtonError {
  if (e instanceof CaxtonError) return e;
  if (e instanceof KeySetUnavailable) {
    return new CaxtonError(
      'not_ready',
      "the token issuer's key set could not be fetched; try again shortly (the server log has the cause)",
      { reason: 'jwks_unavailable' },
      { cause: e.cause },
    );
  }
  if (e instanceof errors.JWTExpired) return refuse('expired', 'the token has expired: get a new one from the issuer');
  if (e instanceof errors.JWTClaimValidationFailed) {
    switch (e.claim) {
      case 'iss':
        return refuse(
          'wrong_issuer',
          'the token was issued by another issuer: its "iss" does not match [auth.jwt] issuer',
        );
      case 'aud':
        return refuse(
          'wrong_audience',
          'the token is for another audience: its "aud" does not include [auth.jwt] audience',
        );
      case 'nbf':
        return refuse(
          'not_yet_valid',
          'the token is not valid yet ("nbf" is in the future): check the clocks of the issuer and this server',
        );
      default:
        return e.reason === 'missing'
          ? refuse('missing_claim', `the token has no "${e.claim}" claim, which Caxton requires`)
          : refuse('invalid_claim', `the token's "${e.claim}" claim is invalid`);
    }
  }
  if (e instanceof errors.JOSEAlgNotAllowed) {
    const alg = headerAlg(token);
    const shown = alg !== undefined && /^[A-Za-z0-9]{1,16}$/.test(alg) ? `"${alg}"` : 'its algorithm';
    const why =
      alg?.toLowerCase() === 'none'
        ? 'unsigned tokens (alg "none") are never accepted'
        : alg !== undefined && /^HS\d+$/i.test(alg)
          ? `${shown} is a shared-secret algorithm: Caxton verifies tokens with the issuer's public key only`
          : `${shown} is not among the accepted algorithms (${algorithms.join(', ')})`;
    return refuse('algorithm_not_allowed', `the token is refused: ${why}`);
  }
  if (e instanceof errors.JWSSignatureVerificationFailed)
    return refuse('bad_signature', 'the token signature is invalid: it was not signed by the issuer or it was altered');
  if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) {
    return refuse(
      'unknown_key',
      'the token was signed with a key the issuer\'s key set does not hold (unknown or ambiguous "kid")',
    );
  }
  // JWSInvalid, JWTInvalid, JOSENotSupported (a "crit" header we do not understand), and the
  // TypeErrors jose raises for a key that does not fit the algorithm: all a bad token.
  return refuse(
    'malformed',
    'the bearer token is not a valid signed JWT (expected three base64url parts: header.payload.signature)',
  );
}

export function createJwtAuthenticator(config: JwtConfig, opts: JwtAuthenticatorOptions = {}): JwtAuthenticator {
  const now = opts.now ?? Date.now;
  const cache = new TokenCache<Principal>(opts.cacheEntries ?? DEFAULT_TOKEN_CACHE_ENTRIES);
  let algorithms: JwtAlgorithm[] = [...config.algorithms];
  let key: KeyObject | JWTVerifyGetKey;

  if (config.jwks_url !== undefined) {
    const remote = createRemoteJWKSet(new URL(config.jwks_url), {
      ...(opts.jwks?.timeoutMs !== undefined && { timeoutDuration: opts.jwks.timeoutMs }),
      ...(opts.jwks?.cooldownMs !== undefined && { cooldownDuration: opts.jwks.cooldownMs }),
      ...(opts.jwks?.cacheMaxAgeMs !== undefined && { cacheMaxAge: opts.jwks.cacheMaxAgeMs }),
    });
    key = async (header, input) => {
      try {
        return await remote(header, input);
      } catch (e) {
        if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) throw e;
        // Unreachable, timed out, not 200, not a key set: nothing the caller can fix.
        throw new KeySetUnavailable(describeError(e), { cause: e });
      }
    };
  } else {
    const s = staticKey(config, opts.baseDir ?? process.cwd());
    const fits = algorithmsFor(s.key);
    algorithms = algorithms.filter((a) => fits.includes(a));
    if (algorithms.length === 0) {
      throw new CaxtonError(
        'invalid_config',
        `[auth.jwt] ${s.field} holds a key of type ${s.key.asymmetricKeyType ?? 'unknown'}, which verifies ${fits.join(', ') || 'none of the supported algorithms'}: add ${fits[0] ?? 'a matching algorithm'} to [auth.jwt] algorithms (now ${config.algorithms.join(', ')})`,
        { field: `auth.jwt.${s.field}` },
      );
    }
    key = s.key;
  }

  const verifyOptions = {
    issuer: config.issuer,
    audience: config.audience,
    algorithms,
    clockTolerance: config.clock_tolerance / 1000,
    // jose checks exp only when present; a token that never expires would be valid forever.
    requiredClaims: ['exp'],
  };
  let closed = false;

  return {
    async authenticate(token: string): Promise<Principal> {
      if (closed) throw new CaxtonError('not_ready', 'JWT authentication is shut down');
      if (typeof token !== 'string' || token.length === 0) throw refuse('empty_token', 'the bearer token is empty');
      if (token.length > MAX_TOKEN_CHARS)
        throw refuse(
          'token_too_long',
          `the bearer token is longer than ${MAX_TOKEN_CHARS / 1024} KiB (${token.length} characters): Caxton refuses it unread`,
        );
      const cacheKey = TokenCache.keyOf(token);
      const t = now();
      const hit = cache.get(cacheKey, t);
      if (hit !== undefined) return hit;

      let payload: Record<string, unknown>;
      try {
        const verified = await (typeof key === 'function'
          ? jwtVerify(token, key, { ...verifyOptions, currentDate: new Date(t) })
          : jwtVerify(token, key, { ...verifyOptions, currentDate: new Date(t) }));
        payload = verified.payload;
      } catch (e) {
        throw mapVerifyError(e, token, algorithms);
      }
      const principal = principalFromClaims(payload, config);
      if (config.cache_ttl > 0 && typeof payload.exp === 'number') {
        cache.set(cacheKey, principal, Math.min(payload.exp * 1000, t + config.cache_ttl), t);
      }
      return principal;
    },
    close(): void {
      closed = true;
      cache.clear();
    },
  };
}
