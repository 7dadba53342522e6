import { CliError } from './errors.js';

export interface ApiErrorBody {
  error: { code: string; message: string; details: unknown; request_id: string };
}

export class ApiError extends CliError {
  readonly status: number;
  readonly body: ApiErrorBody;
  constructor(status: number, body: ApiErrorBody) {
    super(body.error.message, { json: body });
    this.status = status;
    this.body = body;
  }
}

export const DEFAULT_SERVER_URL = 'http://127.0.0.1:8080';

/** A thin client of the REST API: the CLI never touches the server's state any other way. */
export class ApiClient {
  readonly base: string;
  readonly #apiKey: string | undefined;
  /** Where the address came from (e.g. "[server] in ./caxton.toml"), named when it cannot be reached. */
  readonly #source: string | undefined;
  constructor(base: string, opts: { apiKey?: string | undefined; source?: string | undefined } = {}) {
    this.base = base.replace(/\/+$/, '');
    this.#apiKey = opts.apiKey;
    this.#source = opts.source;
  }

  /** Headers carrying the API key (for callers that fetch themselves). */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.#apiKey ? { ...extra, authorization: `Bearer ${this.#apiKey}` } : extra;
  }

  /** A 401/403 explained with what the CLI can do about it. */
  #authError(status: number, body: ApiErrorBody): ApiError {
    const e = new ApiError(status, body);
    if (status === 401) {
      e.lines.push(
        this.#apiKey
          ? 'the key sent was refused: check $CAXTON_API_KEY or run `caxton login` again'
          : 'no API key was sent: set $CAXTON_API_KEY, or run `caxton login --server URL` (a server on this machine is found automatically while it runs)',
      );
    }
    return e;
  }

  #unreachable(e: unknown): CliError {
    const c = (e as { cause?: { code?: string; message?: string } }).cause;
    const cause = c?.code ?? c?.message ?? (e as Error).name;
    return new CliError(
      `cannot reach the Caxton server at ${this.base} (${cause === 'TimeoutError' ? 'timed out' : cause === 'ECONNREFUSED' ? 'connection refused' : cause})`,
      {
        lines: [
          ...(this.#source ? [`this address comes from ${this.#source}`] : []),
          'start it with `caxton serve`, or point to it with --server URL (or $CAXTON_SERVER_URL)',
        ],
        json: { error: { code: 'server_unreachable', message: `cannot reach ${this.base}`, details: { cause } } },
      },
    );
  }

  /**
   * Something answered at the address, but not Caxton: every answer of a Caxton server carries an
   * `x-request-id` header, and its errors the `{ error: { code, message } }` envelope. Said in
   * words, with where the address came from, rather than as another program's error page.
   */
  #notCaxton(status: number, path: string, contentType: string, text: string): CliError {
    const sample = text.replace(/\s+/g, ' ').trim().slice(0, 80);
    const message = `the program answering at ${this.base} is not a Caxton server (HTTP ${status} for ${path}${contentType ? `, ${contentType.split(';')[0]}` : ''}${sample ? `: "${sample}"` : ''})`;
    return new CliError(message, {
      lines: [
        ...(this.#source ? [`this address comes from ${this.#source}`] : []),
        'another program holds that port: point the CLI at the Caxton server with --server URL (or $CAXTON_SERVER_URL); `caxton serve` prints its address when it starts',
      ],
      json: { error: { code: 'not_caxton', message, details: { status, path } } },
    });
  }

  /** `accept`: error statuses whose body the caller reads itself (a 503 from /ready) instead of an error. */
  async request<T>(
    method: string,
    path: string,
    opts: {
      body?: string | Uint8Array;
      contentType?: string;
      timeoutMs?: number;
      accept?: readonly number[];
      headers?: Record<string, string>;
    } = {},
  ): Promise<{ status: number; data: T }> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: this.headers({
          ...opts.headers,
          ...(opts.contentType && { 'content-type': opts.contentType }),
        }),
        ...(opts.body !== undefined && { body: opts.body }),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
      });
    } catch (e) {
      throw this.#unreachable(e);
    }
    const text = await res.text();
    let data: unknown = text;
    const type = res.headers.get('content-type') ?? '';
    if (!res.headers.has('x-request-id') && (res.status >= 400 || !type.includes('json')))
      throw this.#notCaxton(res.status, path, type, text);
    if (type.includes('json') && text.length > 0) {
      try {
        data = JSON.parse(text);
      } catch {
        throw new CliError(`the server at ${this.base} sent malformed JSON (HTTP ${res.status})`);
      }
    }
    if (res.status >= 400 && !opts.accept?.includes(res.status)) {
      const body = data as Partial<ApiErrorBody>;
      if (body && typeof body === 'object' && body.error) throw this.#authError(res.status, body as ApiErrorBody);
      throw new CliError(`HTTP ${res.status} from ${this.base}${path}: ${String(text).slice(0, 200)}`);
    }
    return { status: res.status, data: data as T };
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path).then((r) => r.data);
  }

  /** POSTs a JSON body (or none). */
  post<T>(
    path: string,
    body?: unknown,
    opts: { timeoutMs?: number; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; data: T }> {
    return this.request<T>('POST', path, {
      ...(body !== undefined && { body: JSON.stringify(body), contentType: 'application/json' }),
      ...opts,
    });
  }

  /**
   * Follows a server-sent-events stream (a GET, or a POST of `body`), calling `on` for each event
   * (comment lines are skipped), until the server ends it or `on` returns true. Errors before the
   * stream opens are API errors.
   */
  async events(
    path: string,
    on: (event: string, data: string) => boolean | void,
    opts: { signal?: AbortSignal; method?: 'GET' | 'POST'; body?: string; contentType?: string } = {},
  ): Promise<void> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method: opts.method ?? 'GET',
        headers: this.headers({
          accept: 'text/event-stream',
          ...(opts.contentType && { 'content-type': opts.contentType }),
        }),
        ...(opts.body !== undefined && { body: opts.body }),
        ...(opts.signal && { signal: opts.signal }),
      });
    } catch (e) {
      throw this.#unreachable(e);
    }
    if (res.status >= 400 || !(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
      const text = await res.text();
      if (!res.headers.has('x-request-id'))
        throw this.#notCaxton(res.status, path, res.headers.get('content-type') ?? '', text);
      let body: Partial<ApiErrorBody> | undefined;
      try {
        body = JSON.parse(text) as Partial<ApiErrorBody>;
      } catch {
        body = undefined;
      }
      if (body?.error) throw this.#authError(res.status, body as ApiErrorBody);
      throw new CliError(`HTTP ${res.status} from ${this.base}${path}: expected an event stream`);
    }
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true }).replace(/\r\n/g, '\n');
        let at: number;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          let event = 'message';
          const data: string[] = [];
          let any = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            any = true;
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (any && on(event, data.join('\n')) === true) return;
        }
      }
    } catch (e) {
      if (opts.signal?.aborted) return;
      throw new CliError(
        `the event stream from ${this.base}${path} broke off: ${e instanceof Error ? e.message : String(e)}`,
      );
    } finally {
      await reader.cancel().catch(() => {});
    }
  }
}
