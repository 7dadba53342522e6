import { request } from 'node:http';
import { expect } from 'vitest';

export interface HttpResult<T = unknown> {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed body when it is JSON, else undefined. */
  json: T;
}

export interface ErrorBody {
  error: { code: string; message: string; details: unknown; request_id: string };
}

/** One HTTP request against a running server; the body is read fully. */
export async function http<T = unknown>(
  base: string,
  method: string,
  path: string,
  opts: { body?: string | Uint8Array; contentType?: string; headers?: Record<string, string> } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.contentType !== undefined) headers['content-type'] = opts.contentType;
  const res = await fetch(base + path, { method, headers, ...(opts.body !== undefined && { body: opts.body }) });
  const text = await res.text();
  let json: unknown;
  if ((res.headers.get('content-type') ?? '').includes('json') && text.length > 0) json = JSON.parse(text);
  return { status: res.status, headers: res.headers, text, json: json as T };
}

export const getJson = <T = unknown>(base: string, path: string): Promise<HttpResult<T>> => http<T>(base, 'GET', path);

export const postAgent = <T = unknown>(
  base: string,
  body: string | Uint8Array,
  contentType = 'application/toml',
): Promise<HttpResult<T>> => http<T>(base, 'POST', '/api/v1/agents', { body, contentType });

export const putAgent = <T = unknown>(
  base: string,
  name: string,
  body: string | Uint8Array,
  contentType = 'application/toml',
): Promise<HttpResult<T>> => http<T>(base, 'PUT', `/api/v1/agents/${encodeURIComponent(name)}`, { body, contentType });

/** Asserts the one error shape of the API, with the x-request-id header matching the body. Returns the error. */
/** `openai`: a /v1/* route, whose envelope also carries OpenAI's `type` and `param`. */
export function expectErrorEnvelope(
  res: HttpResult,
  status: number,
  code: string,
  shape: 'caxton' | 'openai' = 'caxton',
): ErrorBody['error'] {
  expect(res.status, `status for ${code}: ${res.text.slice(0, 300)}`).toBe(status);
  expect(res.headers.get('content-type') ?? '').toContain('application/json');
  const body = res.json as ErrorBody;
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(
    shape === 'openai'
      ? ['code', 'details', 'message', 'param', 'request_id', 'type']
      : ['code', 'details', 'message', 'request_id'],
  );
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(body.error.message.length).toBeGreaterThan(10);
  expect(body.error.request_id).toMatch(/\S/);
  expect(res.headers.get('x-request-id')).toBe(body.error.request_id);
  return body.error;
}

/** A minimal valid TOML agent. */
export function tomlAgent(name: string, extra = ''): string {
  return `name = "${name}"\ndescription = "test agent ${name}"\ncapabilities = ["testing"]\nsystem_prompt = "You are ${name}."\n${extra}`;
}

/**
 * A request with the path sent exactly as given (fetch would normalise `..` and `%2e%2e`), on its
 * own connection.
 */
export function rawRequest(
  base: string,
  method: string,
  path: string,
  opts: { body?: string | Uint8Array; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, method, path, agent: false, headers: opts.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers))
            if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
          let json: unknown;
          if ((headers.get('content-type') ?? '').includes('json') && text.length > 0) json = JSON.parse(text);
          resolve({ status: res.statusCode ?? 0, headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}
