/**
 * The console's API client: JSON in and out, the caller's credential on every request, and the
 * server's error envelope as an ApiError (its message, code, the field or line it names, the
 * permission a 403 lacks). A 401 ends the session (back to sign-in) through session.ts.
 */
import { authHeaders, sessionExpired } from './session';

export interface ErrorEnvelope {
  error: { code: string; message: string; details?: unknown; request_id?: string };
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown>;
  readonly requestId: string | undefined;

  constructor(status: number, code: string, message: string, details: unknown, requestId?: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details !== null && typeof details === 'object' ? (details as Record<string, unknown>) : {};
    this.requestId = requestId;
  }

  /** The field the server blamed (details.field), if any. */
  get field(): string | undefined {
    return typeof this.details.field === 'string' ? this.details.field : undefined;
  }

  /** A 403's missing permission (details.permission). */
  get permission(): string | undefined {
    return typeof this.details.permission === 'string' ? this.details.permission : undefined;
  }

  /** What to tell the person: a refusal names the permission their key lacks. */
  get explanation(): string {
    if (this.status === 403 && this.permission)
      return `Your key lacks the permission ${this.permission}. ${this.message}`;
    if (this.status === 403) return `Refused: ${this.message}`;
    return this.message;
  }
}

export interface RequestOptions {
  /** A JSON body (serialized here). */
  json?: unknown;
  /** A text body with its own content type (agent files: application/toml, text/markdown). */
  text?: string;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
  accept?: string;
}

export function apiUrl(path: string, query?: RequestOptions['query']): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** Sends a request with the session's credential; resolves to the raw Response when it is 2xx, throws ApiError otherwise. */
export async function send(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...authHeaders(), accept: opts.accept ?? 'application/json' };
  let body: string | undefined;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['content-type'] = 'application/json';
  } else if (opts.text !== undefined) {
    body = opts.text;
    headers['content-type'] = opts.contentType ?? 'text/plain';
  }
  let res: Response;
  try {
    res = await fetch(apiUrl(path, opts.query), {
      method,
      headers,
      ...(body !== undefined && { body }),
      ...(opts.signal && { signal: opts.signal }),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(
      0,
      'network_error',
      `The server did not answer (${e instanceof Error ? e.message : String(e)}). Is caxton serve running?`,
      null,
    );
  }
  if (res.ok) return res;
  throw await errorOf(res);
}

/** The ApiError of a non-2xx answer (the error envelope when there is one). */
export async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let err: ApiError;
  try {
    const env = JSON.parse(text) as ErrorEnvelope;
    err = new ApiError(res.status, env.error.code, env.error.message, env.error.details, env.error.request_id);
  } catch {
    err = new ApiError(res.status, `http_${res.status}`, text.slice(0, 300) || res.statusText, null);
  }
  if (res.status === 401) sessionExpired(err.message);
  return err;
}

/** A JSON request; the parsed answer (undefined for 204). */
export async function api<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await send(method, path, opts);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const get = <T>(path: string, query?: RequestOptions['query'], signal?: AbortSignal): Promise<T> =>
  api<T>('GET', path, { ...(query && { query }), ...(signal && { signal }) });
