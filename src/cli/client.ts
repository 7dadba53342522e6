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
  constructor(base: string) {
    this.base = base.replace(/\/+$/, '');
  }

  async request<T>(method: string, path: string, opts: { body?: string | Uint8Array; contentType?: string; timeoutMs?: number } = {}): Promise<{ status: number; data: T }> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: opts.contentType ? { 'content-type': opts.contentType } : {},
        ...(opts.body !== undefined && { body: opts.body }),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
      });
    } catch (e) {
      const c = (e as { cause?: { code?: string; message?: string } }).cause;
      const cause = c?.code ?? c?.message ?? (e as Error).name;
      throw new CliError(`cannot reach the Caxton server at ${this.base} (${cause === 'TimeoutError' ? 'timed out' : cause === 'ECONNREFUSED' ? 'connection refused' : cause})`, {
        lines: ['start it with `caxton serve`, or point to it with --server URL (or $CAXTON_SERVER_URL)'],
        json: { error: { code: 'server_unreachable', message: `cannot reach ${this.base}`, details: { cause } } },
      });
    }
    const text = await res.text();
    let data: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json') && text.length > 0) {
      try {
        data = JSON.parse(text);
      } catch {
        throw new CliError(`the server at ${this.base} sent malformed JSON (HTTP ${res.status})`);
      }
    }
    if (res.status >= 400) {
      const body = data as Partial<ApiErrorBody>;
      if (body && typeof body === 'object' && body.error) throw new ApiError(res.status, body as ApiErrorBody);
      throw new CliError(`HTTP ${res.status} from ${this.base}${path}: ${String(text).slice(0, 200)}`);
    }
    return { status: res.status, data: data as T };
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path).then((r) => r.data);
  }
}
