import { randomUUID } from 'node:crypto';
import { CaxtonError } from '../shared/errors.js';

/**
 * Request ids. The id a request is logged, audited and answered under is always the server's own
 * (a UUID): a client choosing it could make its requests pass for another's in the logs and the
 * audit trail, or collide on purpose. A client's `X-Request-Id` is kept beside it as
 * `client_request_id`, to find the client's requests by its own ids. It is bounded, since it is
 * copied into every log line and audit row of the request.
 */

/** At most this many characters; only these characters (no spaces, quotes, markup or separators a log reader could misread). */
export const MAX_CLIENT_REQUEST_ID = 128;
const CLIENT_REQUEST_ID_RE = /^[A-Za-z0-9._:-]+$/;

/** A new server request id. */
export function newRequestId(): string {
  return randomUUID();
}

/** The client's request id from its `X-Request-Id` header; undefined when absent; a 400 `invalid_request` when outside the bounds. */
export function clientRequestId(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const value = Array.isArray(header) ? header : [header];
  if (value.length === 1 && value[0]!.length <= MAX_CLIENT_REQUEST_ID && CLIENT_REQUEST_ID_RE.test(value[0]!))
    return value[0];
  throw new CaxtonError(
    'invalid_request',
    `the X-Request-Id header must be one value of 1 to ${MAX_CLIENT_REQUEST_ID} characters: letters, digits, ".", "_", ":" and "-" (it is recorded as client_request_id); shorten it or leave it out`,
    { field: 'x-request-id' },
  );
}
