/**
 * The HTTP layer both provider clients share: POST a JSON body with the per-attempt timeout,
 * the caller's cancellation, bounded retries (see retry.ts), and every failure mapped to an
 * LlmError that names the provider, the model and the cause.
 *
 * Timeouts: `timeout_ms` bounds each attempt of a plain call (request to last body byte). For a
 * stream it bounds the wait for the response headers and then every silence between two chunks,
 * so a long but lively generation is never cut off. Streams are retried only until the response
 * headers arrive; once the body is being consumed a failure is final.
 *
 * The bytes move over transport.ts: pooled keep-alive connections per origin, no redirects
 * followed, a response body read within MAX_RESPONSE_BYTES and an event within MAX_SSE_EVENT_CHARS.
 */
import type { LlmErrorKind, ProviderConfig } from './types.js';
import { LlmError } from './types.js';
import { RETRYABLE_STATUSES, parseRetryAfter, retryDelay, sleep } from './retry.js';
import { SseParser, SseTooLarge, type SseEvent } from './sse-parser.js';
import {
  BodyTooLarge,
  discard,
  MAX_ERROR_BODY_BYTES,
  MAX_RESPONSE_BYTES,
  parseCallUrl,
  post,
  readText,
  type TransportResponse,
} from './transport.js';
import { scrubSecrets } from '../shared/secrets.js';

/** Who is being called: for error messages and the retry policy. */
export interface HttpTarget {
  /** The provider's configured name. */
  provider: string;
  model: string;
  baseUrl: string;
  config: ProviderConfig;
}

export interface PostRequest {
  url: string;
  headers: Record<string, string>;
  body: unknown;
  signal?: AbortSignal;
  /** The caller's deadline (ms since the epoch): no retry wait may run past it. */
  deadline?: number;
}

/** Sent as User-Agent: some gateways refuse a request without one. */
const USER_AGENT = 'caxton';

/** Provider error text is quoted up to this many characters. */
const MAX_DETAIL = 300;

const TIMEOUT_CODES = new Set([
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** `base` + `path` without doubled slashes. */
export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + path;
}

/**
 * The API key from `process.env[config.api_key_env]`; undefined when the provider needs none.
 * Throws `missing_key` when the variable is named but unset or empty.
 */
export function readApiKey(provider: string, model: string, config: ProviderConfig): string | undefined {
  const env = config.api_key_env;
  if (env === undefined || env === '') return undefined;
  const key = process.env[env];
  if (key === undefined || key.trim() === '') {
    throw new LlmError({
      provider,
      model,
      kind: 'missing_key',
      message: `environment variable ${env} is not set for the server process (api_key_env = "${env}"); export the API key in it where \`caxton serve\` runs and restart the server`,
    });
  }
  return key.trim();
}

/** POSTs and returns the parsed JSON body of a 2xx response, retrying transient failures. */
export async function postJson(t: HttpTarget, r: PostRequest): Promise<unknown> {
  const body = JSON.stringify(r.body);
  const text = await withRetries(t, r, async (signal, timer) => {
    const res = await send(t, r, body, signal, 'application/json');
    const text = await readText(res, MAX_RESPONSE_BYTES);
    timer.clear();
    return text;
  });
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw malformed(t, `the response body is not JSON: ${excerpt(text) || '(empty)'}`);
  }
}

/**
 * POSTs with retries until a 2xx response arrives, then returns its body as SSE events. Errors
 * while reading the body (timeout, cancellation, dropped connection) surface as LlmErrors.
 */
export async function postSse(t: HttpTarget, r: PostRequest): Promise<AsyncGenerator<SseEvent>> {
  const body = JSON.stringify(r.body);
  const { res, timer } = await withRetries(t, r, async (signal, timer) => ({
    res: await send(t, r, body, signal, 'text/event-stream'),
    timer,
  }));
  const type = res.header('content-type') ?? '';
  if (type !== '' && !type.includes('text/event-stream')) {
    const text = await readText(res, MAX_ERROR_BODY_BYTES, true).catch(() => '');
    timer.clear();
    throw malformed(t, `expected an event stream, got ${type || 'no content type'}: ${excerpt(text) || '(empty)'}`);
  }
  return readStream(t, r, res, timer);
}

/**
 * The body's events as it arrives: each chunk of bytes decoded once, its lines sliced out of
 * that text (sse-parser.ts), no other copy.
 */
async function* readStream(
  t: HttpTarget,
  r: PostRequest,
  res: TransportResponse,
  timer: AttemptTimer,
): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  timer.arm();
  let finished = false;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      timer.arm();
      yield* parser.push(chunk);
    }
    finished = true;
    yield* parser.end();
  } catch (e) {
    throw classifyThrown(t, e, r.signal, timer, 'streaming').error;
  } finally {
    timer.clear();
    // Stopped early (the consumer broke out, or an error): close the connection, not reused.
    if (!finished) res.body.destroy();
  }
}

/** One failed attempt: the error, and the server's requested wait if any. */
class AttemptFailure {
  constructor(
    readonly error: LlmError,
    readonly retryAfterMs?: number,
  ) {}
}

/**
 * The per-attempt timeout, re-armable so a stream can treat it as an idle timeout, and the one
 * signal the request is sent with: it aborts when the timeout fires or the caller cancels. (A
 * listener on the caller's signal rather than AbortSignal.any, which costs more per call.)
 */
class AttemptTimer {
  private readonly controller = new AbortController();
  private handle: ReturnType<typeof setTimeout> | undefined;
  private done = false;
  fired = false;

  constructor(
    readonly ms: number,
    private readonly caller?: AbortSignal,
  ) {
    caller?.addEventListener('abort', this.onCallerAbort, { once: true });
    this.arm();
  }

  private readonly onCallerAbort = (): void => this.controller.abort(this.caller?.reason);

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  arm(): void {
    if (this.fired || this.done) return;
    if (this.handle !== undefined) {
      this.handle.refresh();
      return;
    }
    this.handle = setTimeout(() => {
      this.fired = true;
      this.controller.abort(new Error(`timed out after ${this.ms} ms`));
    }, this.ms);
  }

  /** The attempt is over: no timeout, and the caller's signal is let go. */
  clear(): void {
    this.done = true;
    clearTimeout(this.handle);
    this.caller?.removeEventListener('abort', this.onCallerAbort);
  }
}

async function withRetries<T>(
  t: HttpTarget,
  r: PostRequest,
  once: (signal: AbortSignal, timer: AttemptTimer) => Promise<T>,
): Promise<T> {
  const maxRetries = Math.max(0, Math.floor(t.config.max_retries));
  for (let retry = 0; ; retry++) {
    if (r.signal?.aborted) throw cancelled(t);
    const timer = new AttemptTimer(t.config.timeout_ms, r.signal);
    const signal = timer.signal;
    let failure: AttemptFailure;
    try {
      return await once(signal, timer);
    } catch (e) {
      timer.clear();
      failure = e instanceof AttemptFailure ? e : classifyThrown(t, e, r.signal, timer, 'waiting for a response');
    }
    const err = failure.error;
    if (err.kind === 'cancelled') throw err;
    const attempts = retry + 1;
    if (!err.retryable || retry >= maxRetries)
      throw attempts > 1 ? rewrap(err, `${err.reason} (gave up after ${attempts} attempts)`) : err;
    const delay = retryDelay(retry, t.config.retry_base_ms, failure.retryAfterMs);
    if (r.deadline !== undefined && Date.now() + delay > r.deadline) {
      throw rewrap(err, `${err.reason} (not retrying: the ${delay} ms wait would pass the caller's deadline)`);
    }
    try {
      await sleep(delay, r.signal);
    } catch {
      throw cancelled(t);
    }
  }
}

/** One POST; a status other than 2xx becomes an AttemptFailure. */
async function send(
  t: HttpTarget,
  r: PostRequest,
  body: string,
  signal: AbortSignal,
  accept: string,
): Promise<TransportResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept, 'user-agent': USER_AGENT };
  // Header names are case-insensitive: a configured "Content-Type" replaces ours rather than doubling it.
  for (const name in r.headers) headers[name.toLowerCase()] = r.headers[name]!;
  const res = await post(parseCallUrl(r.url), headers, body, signal);
  if (res.status >= 200 && res.status < 300) return res;
  if (res.status >= 300 && res.status < 400) {
    discard(res);
    const to = res.header('location');
    throw new AttemptFailure(
      new LlmError({
        provider: t.provider,
        model: t.model,
        kind: 'connection',
        httpStatus: res.status,
        message: `HTTP ${res.status} from ${r.url} redirects to ${to === undefined ? '(no location)' : quoteOutside(to, 200)}; a model call does not follow redirects: set base_url to the address the server redirects to`,
      }),
    );
  }
  const text = await readText(res, MAX_ERROR_BODY_BYTES, true).catch(() => '');
  throw httpFailure(t, r.url, res.status, text, res.header('retry-after') ?? null);
}

function httpFailure(
  t: HttpTarget,
  url: string,
  status: number,
  bodyText: string,
  retryAfter: string | null,
): AttemptFailure {
  const detail = providerDetail(bodyText);
  const said = detail ? `: ${detail}` : '';
  const make = (kind: LlmErrorKind, message: string, retryable = false): LlmError =>
    new LlmError({ provider: t.provider, model: t.model, kind, message, httpStatus: status, retryable });
  const env = t.config.api_key_env;
  if (status === 401) {
    const hint = env
      ? `check the API key in the environment variable ${env}`
      : 'the server wants an API key: set api_key_env for this provider';
    return new AttemptFailure(make('unauthorized', `HTTP 401 unauthorized${said} (${hint})`));
  }
  if (status === 403)
    return new AttemptFailure(
      make('forbidden', `HTTP 403 forbidden${said} (the API key has no access to this model or endpoint)`),
    );
  if (status === 404)
    return new AttemptFailure(
      make('unknown_model', `HTTP 404 from ${url}${said} (unknown model "${t.model}", or a wrong base_url)`),
    );
  if (status === 429)
    return new AttemptFailure(make('rate_limited', `HTTP 429 rate limited${said}`, true), parseRetryAfter(retryAfter));
  if (status === 408)
    return new AttemptFailure(make('timeout', `HTTP 408 request timeout${said}`, true), parseRetryAfter(retryAfter));
  if (status >= 500)
    return new AttemptFailure(
      make('server_error', `HTTP ${status} server error${said}`, RETRYABLE_STATUSES.has(status)),
      parseRetryAfter(retryAfter),
    );
  if (looksLikeUnknownModel(bodyText))
    return new AttemptFailure(make('unknown_model', `HTTP ${status}${said} (unknown model "${t.model}")`));
  return new AttemptFailure(make('bad_request', `HTTP ${status} bad request${said}`));
}

/** Maps a thrown request or body error to a failure. */
function classifyThrown(
  t: HttpTarget,
  e: unknown,
  callerSignal: AbortSignal | undefined,
  timer: AttemptTimer,
  phase: string,
): AttemptFailure {
  if (e instanceof LlmError) return new AttemptFailure(e);
  if (e instanceof BodyTooLarge)
    return new AttemptFailure(malformed(t, `${e.message}, the most a model call reads (${phase})`));
  if (e instanceof SseTooLarge) return new AttemptFailure(malformed(t, e.message));
  const make = (kind: LlmErrorKind, message: string, retryable: boolean): AttemptFailure =>
    new AttemptFailure(new LlmError({ provider: t.provider, model: t.model, kind, message, retryable }, { cause: e }));
  if (callerSignal?.aborted) return new AttemptFailure(cancelled(t, e));
  if (timer.fired)
    return make('timeout', `timed out: no data for ${timer.ms} ms while ${phase} (timeout_ms = ${timer.ms})`, true);
  const code = errorCode(e);
  if (code !== undefined && TIMEOUT_CODES.has(code)) return make('timeout', `timed out while ${phase} (${code})`, true);
  const inner = innermostMessage(e);
  if (code === 'ERR_INVALID_URL' || /invalid url|bad port/i.test(inner)) {
    return make('connection', `invalid base_url "${t.baseUrl}" (${inner})`, false);
  }
  const why = code !== undefined ? `${CONNECTION_CODES[code] ?? inner} (${code})` : inner;
  return make('connection', `cannot reach ${t.baseUrl}: ${why} while ${phase}`, true);
}

const CONNECTION_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_SOCKET: 'the connection was closed',
};

function cancelled(t: HttpTarget, cause?: unknown): LlmError {
  return new LlmError(
    { provider: t.provider, model: t.model, kind: 'cancelled', message: 'the call was cancelled' },
    { cause },
  );
}

export function malformed(t: { provider: string; model: string }, message: string): LlmError {
  return new LlmError({ provider: t.provider, model: t.model, kind: 'malformed_response', message });
}

function rewrap(err: LlmError, message: string): LlmError {
  return new LlmError(
    {
      provider: err.provider,
      model: err.model,
      kind: err.kind,
      message,
      httpStatus: err.httpStatus,
      retryable: err.retryable,
    },
    { cause: err },
  );
}

/** The first `code` string along the cause chain (a socket error may be wrapped). */
function errorCode(e: unknown): string | undefined {
  for (
    let cur = e, depth = 0;
    cur !== null && typeof cur === 'object' && depth < 5;
    cur = (cur as { cause?: unknown }).cause, depth++
  ) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

function innermostMessage(e: unknown): string {
  let msg = e instanceof Error ? e.message : String(e);
  for (let cur = e, depth = 0; cur instanceof Error && depth < 5; cur = cur.cause, depth++) msg = cur.message;
  return msg;
}

/** The provider's own error message from an error body, shortened. */
export function providerDetail(bodyText: string): string {
  let text = bodyText.trim();
  try {
    const body = JSON.parse(text) as unknown;
    const pick = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v : undefined);
    if (body !== null && typeof body === 'object') {
      const b = body as { error?: unknown; message?: unknown; detail?: unknown };
      const err = b.error;
      const fromErr =
        err !== null && typeof err === 'object' ? pick((err as { message?: unknown }).message) : pick(err);
      text = fromErr ?? pick(b.message) ?? pick(b.detail) ?? text;
    }
  } catch {
    // Not JSON: quote the raw text.
  }
  return excerpt(text);
}

function excerpt(text: string): string {
  return quoteOutside(text.replace(/\s+/g, ' ').trim(), MAX_DETAIL);
}

/**
 * Text from the provider (an error body, a stream event) shortened to `max` characters for a
 * message, with the configured secrets scrubbed first (ADR 0017): cutting first could leave the
 * beginning of a key that the scrubber no longer recognises.
 */
export function quoteOutside(text: string, max: number): string {
  const clean = scrubSecrets(text);
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

function looksLikeUnknownModel(bodyText: string): boolean {
  if (/model_not_found/i.test(bodyText)) return true;
  return (
    /model/i.test(bodyText) &&
    /(not[ _-]?found|does not exist|doesn't exist|unknown model|no such model|not available)/i.test(bodyText)
  );
}
