import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { MessagingBus, SubmitResult } from '../../messaging/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { retryAfterSeconds, toEnvelope, type ErrorEnvelope } from '../envelope.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { requestTraceparent } from '../request-trace.js';

/** The `[messaging]` keys bounding one batch. */
export interface BatchLimits {
  max_batch_messages: number;
  max_batch_size: number;
}

/** One message of a batch: its result (accepted or a duplicate) or why it was refused. */
export type BatchItem =
  | ({ index: number; status: 200 | 202 } & SubmitResult)
  | { index: number; status: number; error: ErrorEnvelope['error'] };

export interface BatchResult {
  results: BatchItem[];
  accepted: number;
  duplicates: number;
  refused: number;
}

/** The answer to a batch, for the OpenAPI document. */
export function batchResultSchema<T extends z.ZodRawShape>(submitResult: z.ZodObject<T>) {
  const accepted = submitResult.extend({
    index: z.number().int(),
    status: z.union([z.literal(200), z.literal(202)]).describe('202 accepted, 200 a message id seen before'),
  });
  const refused = z.object({
    index: z.number().int(),
    status: z.number().int().describe('the status this message alone would have had'),
    error: errorEnvelopeSchema.shape.error,
  });
  return z
    .object({
      results: z.array(z.union([accepted, refused])).describe('one per message, in the order sent'),
      accepted: z.number().int(),
      duplicates: z.number().int(),
      refused: z.number().int(),
    })
    .describe('The answer to a JSON array of messages');
}

/** Refuses a batch as a whole when it holds no message or more than `max_batch_messages`. */
export function checkBatch(items: readonly unknown[], limits: BatchLimits, hasWait: boolean): void {
  if (items.length === 0)
    throw new CaxtonError(
      'invalid_message',
      'the batch is empty; send a JSON object or an array of at least one message',
      { field: '(body)' },
    );
  if (items.length > limits.max_batch_messages) {
    throw new CaxtonError(
      'payload_too_large',
      `the batch holds ${items.length} messages; the server accepts at most ${limits.max_batch_messages} per request ([messaging] max_batch_messages)`,
      {
        field: '(body)',
        count: items.length,
        limit: limits.max_batch_messages,
      },
    );
  }
  if (hasWait)
    throw new CaxtonError(
      'invalid_message',
      '?wait applies to one message: send a single JSON object to wait for its conversation, or drop ?wait for a batch',
      { field: 'wait' },
    );
}

/**
 * Submits every message of a batch in the same event-loop turn, so the bus's group commit stores
 * them in as few transactions as it can. Each message is checked as if sent alone (its sender, its
 * scope and limits, the queue): one refused does not hold back the others, and its error names its
 * index. `prepare` applies the route's per-message rules (the sender) and throws to refuse one.
 */
export async function submitBatch(
  bus: MessagingBus,
  req: FastifyRequest,
  items: readonly unknown[],
  prepare: (body: unknown) => void,
  bodyLimit: number,
): Promise<BatchResult> {
  const tp = requestTraceparent(req);
  const opts = {
    ...(tp !== undefined && { traceparent: tp }),
    ...(req.principal !== undefined && { principal: req.principal }),
    ...(req.credentialEnded !== undefined && { credentialEnded: req.credentialEnded }),
  };
  const settled = await Promise.allSettled(
    items.map((body) => {
      try {
        prepare(body);
      } catch (e) {
        return Promise.reject(e);
      }
      return bus.submit(body, opts);
    }),
  );
  const out: BatchResult = { results: [], accepted: 0, duplicates: 0, refused: 0 };
  settled.forEach((s, index) => {
    if (s.status === 'fulfilled') {
      if (s.value.duplicate) out.duplicates++;
      else out.accepted++;
      out.results.push({ index, status: s.value.duplicate ? 200 : 202, ...s.value });
      return;
    }
    out.refused++;
    const { status, body } = toEnvelope(s.reason, req, bodyLimit);
    const details =
      body.error.details !== null && typeof body.error.details === 'object'
        ? { ...body.error.details, index }
        : { index };
    out.results.push({
      index,
      status,
      error: { ...body.error, message: `message [${index}]: ${body.error.message}`, details },
    });
  });
  return out;
}

/** Seconds a client should wait before sending the refused messages again (the longest any asks). */
export function batchRetryAfter(r: BatchResult): number | undefined {
  let most: number | undefined;
  for (const item of r.results) {
    if (!('error' in item)) continue;
    const s = retryAfterSeconds(item.error.details);
    if (s !== undefined) most = Math.max(most ?? 0, s);
  }
  return most;
}
