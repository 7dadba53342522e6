import { isFieldName } from '../shared/secrets.js';

const SECRET_KEY_RE = /(secret|password|passwd|api[_-]?key|authorization|credential|private[_-]?key|(?:^|[_-])token$)/i;
/**
 * Keys that say where a secret is or what it is called rather than hold it: `api_key_env` names a
 * variable, `authorization_endpoint` is the issuer's public URL, `client_secret_file` a path.
 */
const DESCRIBES_RE = /[_-](?:env|file|path|dir|url|uri|endpoint|id|name|type|claim)$/i;

/** Whether a configuration key holds a secret value (a key, token, password, auth header). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY_RE.test(key) && !DESCRIBES_RE.test(key);
}

export const REDACTED = '***';

/**
 * A deep copy with secrets replaced by "***": safe to print or log. The values of secret keys are
 * replaced, except a field name chosen as a value (`token = "access_token"`); passwords in URLs
 * too.
 */
export function redactSecrets<T>(value: T): T {
  return walk(value, undefined) as T;
}

function walk(v: unknown, key: string | undefined): unknown {
  if (
    key !== undefined &&
    isSecretKey(key) &&
    v !== undefined &&
    v !== null &&
    typeof v !== 'object' &&
    !(typeof v === 'string' && isFieldName(v))
  )
    return REDACTED;
  if (typeof v === 'string') return redactUrl(v);
  if (Array.isArray(v)) return v.map((x) => walk(x, undefined));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = walk(x, k);
    return out;
  }
  return v;
}

function redactUrl(s: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/\s]*@/i.test(s)) return s;
  try {
    const u = new URL(s);
    if (u.password) u.password = REDACTED;
    return u.toString();
  } catch {
    return s;
  }
}

/**
 * The secret values a configuration refers to — keys behind `*_env` variables that name a key or
 * token (`api_key_env`), values under secret-looking keys, HTTP header values (and the token of a
 * "Bearer ..." header), passwords in URLs (also in a URL read from a `*_env` variable such as
 * `[memory.postgres] url_env`) and URL query parameters with secret-looking names — for the
 * process-wide scrubber (src/shared/secrets.ts, ADR 0017) to remove wherever they appear.
 */
export function secretValues(config: unknown, env: NodeJS.ProcessEnv = process.env): string[] {
  const out = new Set<string>();
  const add = (s: unknown) => {
    if (typeof s !== 'string' || s.length === 0 || isFieldName(s)) return;
    out.add(s);
    out.add(s.trim()); // the provider clients send the key trimmed
    const bearer = /^(?:bearer|basic|token)\s+(\S+)$/i.exec(s.trim());
    if (bearer) out.add(bearer[1]!);
  };
  // A URL's password, and query parameters with secret-looking names (`?api_key=...`).
  const addUrlSecrets = (v: string): void => {
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(v.trim())) return;
    try {
      const u = new URL(v.trim());
      if (u.password) add(decodeURIComponent(u.password));
      for (const [name, value] of u.searchParams) if (SECRET_KEY_RE.test(name)) add(value);
    } catch {
      // not a URL after all
    }
  };
  const visit = (v: unknown, key: string | undefined, inHeaders: boolean): void => {
    if (typeof v === 'string') {
      if (inHeaders) {
        // A header is secret by its name, or by its value's form ("Bearer ...", "Basic ...").
        if (
          (key !== undefined && /auth|key|token|secret|cookie|session|credential|password/i.test(key)) ||
          /^(?:bearer|basic|token)\s+\S/i.test(v.trim())
        )
          add(v);
      } else if (key !== undefined && key.endsWith('_env') && isSecretKey(key.slice(0, -4))) add(env[v]);
      else if (key !== undefined && isSecretKey(key)) add(v);
      addUrlSecrets(v);
      // A variable named by any `*_env` key (`url_env`) may hold a URL with a password.
      if (key !== undefined && key.endsWith('_env')) {
        const value = env[v];
        if (value !== undefined) addUrlSecrets(value);
      }
      return;
    }
    if (Array.isArray(v)) for (const x of v) visit(x, undefined, false);
    else if (v !== null && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) visit(x, k, inHeaders || k === 'headers');
  };
  visit(config, undefined, false);
  return [...out];
}
