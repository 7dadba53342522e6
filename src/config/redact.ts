/** A deep copy with secrets replaced by "***": safe to print or log. `api_key_env` names a variable, so it stays. */
const SECRET_KEY_RE = /(secret|password|passwd|api[_-]?key|authorization|credential|private[_-]?key|(?:^|[_-])token$)/i;

export const REDACTED = '***';

export function redactSecrets<T>(value: T): T {
  return walk(value, undefined) as T;
}

function walk(v: unknown, key: string | undefined): unknown {
  if (key !== undefined && SECRET_KEY_RE.test(key) && !key.endsWith('_env') && v !== undefined && v !== null && typeof v !== 'object') return REDACTED;
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
