/**
 * Scrubbing secrets by value (ADR 0017). Text from outside Caxton — a provider's error body, a
 * tool's output, an MCP server's error — may quote a configured secret (a proxy echoing the
 * Authorization header, a tool printing its config). Every such text passes through
 * `scrubSecrets` where it enters Caxton, and again at the exits (error envelope, SSE, log, stored
 * rows), so no copy of a secret reaches a response, a row, an event or a log.
 *
 * A secret is matched in every encoding it is likely to travel in: as written, JSON-escaped,
 * URL-encoded (RFC 3986 and form encoding), base64 and base64url (at the three byte alignments, so
 * a key inside a longer base64 string — `Basic base64(user:key)` — is found too) and hex. Matching
 * is one Aho-Corasick pass over the text: linear in its length whatever the text holds, so a
 * hostile text cannot make it slow. Overlapping matches are merged and replaced by one "***".
 * A text that arrives in pieces (a streamed answer) is scrubbed as one text by StreamScrubber
 * (stream-scrub.ts): scrubbing each piece would miss a secret split across them.
 *
 * The scrubber is process-wide: the composition roots (`startServer`, `caxton mcp`) register the
 * secret values of their configuration once, and every boundary reads the same scrubber, however
 * deep in the layers it sits (src/llm, src/tools, src/mcp, the stores). Registering only adds:
 * two servers in one process (tests) scrub each other's secrets too, which is never a leak.
 */

import { Matcher, SCRUBBED } from './secret-matcher.js';

export { SCRUBBED };

/** Secrets shorter than this are ignored: too likely to be ordinary text (and too weak to matter). */
export const MIN_SECRET_LENGTH = 8;

/**
 * Names of fields, headers and schemes in the protocols secrets travel in (OAuth, OpenID Connect,
 * HTTP). Agents' text is full of them, and a configuration may hold one as a choice
 * (`[auth.jwt.sso] token = "access_token"`), never as a secret: such a value is a word and is not
 * scrubbed, whoever registers it.
 */
const FIELD_NAMES: ReadonlySet<string> = new Set([
  'access_token',
  'id_token',
  'refresh_token',
  'token_type',
  'client_id',
  'client_secret',
  'client_credentials',
  'authorization',
  'authorization_code',
  'proxy-authorization',
  'x-api-key',
  'password',
  'passphrase',
  'credentials',
]);

/** Whether `value` is a protocol field name (see FIELD_NAMES), a word rather than a secret. */
export function isFieldName(value: string): boolean {
  return FIELD_NAMES.has(value.trim().toLowerCase());
}

/** Whether `value` can be a secret to scrub: long enough, and not a field name. */
function isSecretCandidate(value: unknown): value is string {
  return typeof value === 'string' && value.length >= MIN_SECRET_LENGTH && !isFieldName(value);
}

/** The forms of one secret to look for (each at least MIN_SECRET_LENGTH long, or left out). */
export function secretVariants(secret: string): string[] {
  if (secret.length < MIN_SECRET_LENGTH) return [];
  const out = new Set<string>([secret]);
  out.add(JSON.stringify(secret).slice(1, -1));
  // Non-ASCII and the characters JSON.stringify leaves alone, escaped as \uXXXX (some encoders do).
  out.add(secret.replace(/[^\x20-\x7e]|["\\/]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  out.add(JSON.stringify(secret).slice(1, -1).replace(/\//g, '\\/'));
  const uri = encodeURIComponent(secret);
  out.add(uri);
  out.add(uri.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()));
  out.add(uri.replace(/%20/g, '+'));
  out.add(new URLSearchParams({ s: secret }).toString().slice(2)); // form encoding (HTML forms, query strings)
  out.add(encodeURI(secret));
  const bytes = Buffer.from(secret, 'utf8');
  for (const v of base64Variants(bytes)) out.add(v);
  const hex = bytes.toString('hex');
  out.add(hex);
  out.add(hex.toUpperCase());
  return [...out].filter((v) => v.length >= MIN_SECRET_LENGTH);
}

/**
 * The secret's bytes in base64 and base64url at the three alignments a longer encoded string may
 * put them in: encoded after 0, 1 and 2 filler bytes, keeping only the characters that depend on
 * the secret alone (the edges also carry bits of the neighbouring bytes, and the padding).
 */
function base64Variants(bytes: Buffer): string[] {
  const out: string[] = [];
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.concat([Buffer.alloc(k), bytes]).toString('base64');
    const stable = b64.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + bytes.length)) / 6));
    out.push(stable, stable.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return out;
}

/** Replaces given secret values, in every encoding, by "***". Build once; `scrub` is linear in the text. */
export class SecretScrubber {
  readonly #secrets: ReadonlySet<string>;
  readonly #matcher: Matcher | undefined;

  constructor(secrets: Iterable<string>) {
    this.#secrets = new Set([...secrets].filter(isSecretCandidate));
    const patterns = new Set([...this.#secrets].flatMap(secretVariants));
    this.#matcher = patterns.size > 0 ? new Matcher(patterns) : undefined;
  }

  /** The secrets matched (those of at least MIN_SECRET_LENGTH characters that are not field names). */
  get secrets(): ReadonlySet<string> {
    return this.#secrets;
  }

  get size(): number {
    return this.#secrets.size;
  }

  /** The automaton of every form of the secrets (none when there is no secret), for scrubbing streams (stream-scrub.ts). */
  get matcher(): Matcher | undefined {
    return this.#matcher;
  }

  /** The text with every secret, in every encoding, replaced; the same string when there is none. */
  scrub(text: string): string {
    return this.#matcher ? this.#matcher.replace(text) : text;
  }

  /**
   * A copy of a JSON-like value (strings, arrays, plain objects; keys included) with every string
   * scrubbed; other values are kept. Nesting beyond MAX_WALK_DEPTH is replaced by a marker, never
   * returned unscrubbed.
   */
  scrubValue<T>(value: T): T {
    return this.#matcher ? (walk(value, this, 0) as T) : value;
  }

  /**
   * Scrubs an error in place — message, stack, `details`, and its causes — and returns it, so that
   * whatever later prints or serializes it (a log line, an envelope) sees no secret.
   */
  scrubError<E>(error: E): E {
    if (!this.#matcher) return error;
    for (let cur: unknown = error, depth = 0; cur instanceof Error && depth < 8; cur = cur.cause, depth++) {
      const e = cur as Error & { details?: unknown };
      try {
        e.message = this.scrub(e.message);
        if (typeof e.stack === 'string') e.stack = this.scrub(e.stack);
        if (e.details !== undefined)
          Object.defineProperty(e, 'details', {
            value: this.scrubValue(e.details),
            writable: true,
            configurable: true,
            enumerable: true,
          });
      } catch {
        // A frozen or exotic error: its text is scrubbed again at the exits.
      }
    }
    return error;
  }
}

/** How deep `scrubValue` walks; deeper structures are cut (our own values never nest this far). */
const MAX_WALK_DEPTH = 100;

function walk(v: unknown, s: SecretScrubber, depth: number): unknown {
  if (typeof v === 'string') return s.scrub(v);
  if (v === null || typeof v !== 'object') return v;
  if (depth >= MAX_WALK_DEPTH) return '[nested too deeply]';
  if (Array.isArray(v)) return v.map((x) => walk(x, s, depth + 1));
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[s.scrub(k)] = walk(x, s, depth + 1);
  return out;
}

const EMPTY = new SecretScrubber([]);
let current: SecretScrubber = EMPTY;

/**
 * Adds secret values to the process-wide scrubber (the composition roots call it with
 * `secretValues(config)`). Values shorter than MIN_SECRET_LENGTH, and field names, are ignored.
 */
export function registerSecrets(values: Iterable<string>): SecretScrubber {
  const add = [...values].filter((v) => isSecretCandidate(v) && !current.secrets.has(v));
  if (add.length > 0) current = new SecretScrubber([...current.secrets, ...add]);
  return current;
}

/** The process-wide scrubber. */
export function secretScrubber(): SecretScrubber {
  return current;
}

/** `text` with every registered secret, in every encoding, replaced by "***". */
export function scrubSecrets(text: string): string {
  return current.scrub(text);
}

/** A copy of a JSON-like value with every registered secret scrubbed from its strings. */
export function scrubSecretsIn<T>(value: T): T {
  return current.scrubValue(value);
}

/** Scrubs an error (message, stack, details, causes) in place; returns it. */
export function scrubError<E>(error: E): E {
  return current.scrubError(error);
}
