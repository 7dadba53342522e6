import type { z } from 'zod';
import { describeIssue } from '../shared/zod-issues.js';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { CaxtonError, type ErrorCode } from '../shared/errors.js';
import { scrubSecrets, scrubSecretsIn } from '../shared/secrets.js';
import { storeWriteError } from '../storage/index.js';

/** The one error shape of the whole API. */
export interface ErrorEnvelope {
  error: { code: string; message: string; details: unknown; request_id: string };
}

/** Message and details are scrubbed of the configured secrets (ADR 0017): they may quote outside text. */
export function envelope(code: string, message: string, details: unknown, requestId: string): ErrorEnvelope {
  return {
    error: { code, message: scrubSecrets(message), details: scrubSecretsIn(details ?? null), request_id: requestId },
  };
}

function humanSize(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${(bytes / 1024 / 1024).toFixed(bytes % (1024 * 1024) ? 1 : 0)} MiB`
    : `${Math.round(bytes / 1024)} KiB`;
}

/** Every content type some route of the API parses (agents, messages, memory imports, JSON). */
const KNOWN_CONTENT_TYPES = [
  'application/json',
  'application/toml',
  'application/x-toml',
  'text/toml',
  'text/x-toml',
  'text/markdown',
  'text/x-markdown',
  'application/x-ndjson',
  'application/jsonl',
  'application/x-jsonlines',
  'text/plain',
];

/**
 * The content types the route of this request accepts: asked of the route's own plugin context
 * (`req.server`), so the 415 lists exactly what would have been parsed — text/plain included.
 */
export function acceptedContentTypes(req: FastifyRequest): string[] {
  const list = KNOWN_CONTENT_TYPES.filter((t) => req.server.hasContentTypeParser(t));
  return list.length > 0 ? list : ['application/json'];
}

/** A body over `limit` bytes; `serverWide`: the limit is `[server] max_body_size`, not a route's own. */
export function bodyTooLarge(limit: number, serverWide: boolean): CaxtonError {
  const hint = serverWide
    ? 'raise [server] max_body_size in caxton.toml if this is intended'
    : 'send fewer or smaller items per request';
  return new CaxtonError('payload_too_large', `request body is larger than the ${humanSize(limit)} limit`, {
    limit_bytes: limit,
    hint,
  });
}

/** Maps any thrown error to (status, envelope). Unknown errors become 500 without internals. */
export function toEnvelope(
  err: unknown,
  req: FastifyRequest,
  bodyLimit: number,
): { status: number; body: ErrorEnvelope; code: ErrorCode | string } {
  const id = String(req.id);
  if (err instanceof CaxtonError)
    return { status: err.status, body: envelope(err.code, err.message, err.details, id), code: err.code };
  // A write on a request path the store refused: the disk full, or the data dir gone (ADR 0127).
  const stored = storeWriteError(err);
  if (stored)
    return {
      status: stored.status,
      body: envelope(stored.code, stored.message, stored.details, id),
      code: stored.code,
    };
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = err.validationContext ?? 'request';
    const source: unknown =
      where === 'body'
        ? req.body
        : where === 'querystring'
          ? req.query
          : where === 'params'
            ? req.params
            : where === 'headers'
              ? req.headers
              : undefined;
    // In our words (field, expected, got), never zod's default text.
    const issues = err.validation.map((v) => {
      const path = String(v.instancePath)
        .split('/')
        .filter((p: string) => p !== '');
      const text = describeIssue(
        { ...(v.params as object), code: v.keyword, path, message: v.message } as z.core.$ZodIssue,
        valueAt(source, path),
      );
      return {
        field: text.field ?? path.join('.'),
        message: text.message,
        ...(text.expected !== undefined && { expected: text.expected }),
      };
    });
    return {
      status: 400,
      body: envelope(
        'invalid_request',
        `invalid ${where}: ${issues.map((i) => `${i.field || where}: ${i.message}`).join('; ')}`,
        { issues },
        id,
      ),
      code: 'invalid_request',
    };
  }
  const fe = err as FastifyError;
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': {
      // A route may set its own limit (a batch of messages): the one that refused the body.
      const limit = req.routeOptions?.bodyLimit ?? bodyLimit;
      const e = bodyTooLarge(limit, limit === bodyLimit);
      return { status: e.status, body: envelope(e.code, e.message, e.details, id), code: e.code };
    }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
      const supported = acceptedContentTypes(req);
      return {
        status: 415,
        body: envelope(
          'unsupported_media_type',
          `unsupported content type "${req.headers['content-type'] ?? ''}"; send one of: ${supported.join(', ')}`,
          { supported },
          id,
        ),
        code: 'unsupported_media_type',
      };
    }
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return {
        status: 400,
        body: envelope('invalid_request', `request body is not valid JSON: ${fe.message}`, null, id),
        code: 'invalid_request',
      };
    default:
      break;
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: envelope('invalid_request', fe.message, null, id), code: 'invalid_request' };
  }
  return {
    status: 500,
    body: envelope('internal', 'internal server error; see the server log for this request id', null, id),
    code: 'internal',
  };
}

/** Seconds to wait before retrying, when the error's details say (`retry_after`, e.g. queue_full). */
export function retryAfterSeconds(details: unknown): number | undefined {
  if (details === null || typeof details !== 'object') return undefined;
  const v = (details as { retry_after?: unknown }).retry_after;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.ceil(v) : undefined;
}

export function sendError(reply: FastifyReply, status: number, body: ErrorEnvelope): FastifyReply {
  const retry = retryAfterSeconds(body.error.details);
  if (retry !== undefined) reply.header('retry-after', String(retry));
  return reply.code(status).header('content-type', 'application/json; charset=utf-8').send(body);
}

function valueAt(doc: unknown, path: readonly string[]): unknown {
  let cur = doc;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}
