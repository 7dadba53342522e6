import { annotateAudit } from '../../audit/index.js';
import type { FastifyInstance } from 'fastify';
import { requestTraceparent } from '../request-trace.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { PERFORMATIVES, readsFor } from '../../messaging/index.js';
import { withFailed } from '../../messaging/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { parseDuration } from '../../shared/units.js';
import { parseJsonBody } from '../json-body.js';
import { bodyTooLarge } from '../envelope.js';
import { batchResultSchema, batchRetryAfter, checkBatch, submitBatch } from './message-batch-routes.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { disconnectSignal } from '../sse-stream.js';
import type { MessagingRouteContext } from './messaging-routes.js';
import {
  aclMessageSchema,
  asPrincipal,
  conversationSchema,
  DEFAULT_WAIT_MS,
  definedOnly,
  deliverySchema,
  errors,
  idParams,
  messageView,
  pageQuery,
  signerSchema,
  submitResultSchema,
  waitSeconds,
} from './messaging-schemas.js';
import { docResponses, onFirstRequest } from '../lazy-schemas.js';

/** POST /messages: one message or a batch, optionally waiting for the conversation to end. */
export function sendMessageRoute(app: FastifyInstance, ctx: MessagingRouteContext): void {
  const { bus } = ctx;
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    '/messages',
    {
      bodyLimit: ctx.requestLimit,
      schema: {
        summary: 'Send a FIPA-ACL message, or a batch of them',
        description:
          'Validates, routes and durably stores the message, then answers 202 with where it went (200 for a message id seen before). ' +
          'A JSON array sends a batch (at most `[messaging] max_batch_messages` messages and `max_batch_size` bytes): it answers 202 with one result per message, in order; ' +
          'a message that is refused has its own `status` and `error` (naming its index and field) and the others are still sent. ' +
          'A message that cannot be routed is still recorded, with a `failure` reply, and its conversation fails. ' +
          'With `?wait=SECONDS` the answer comes when the conversation ends (or the time is up) and includes the conversation and its messages. ' +
          'The message acts for the caller: a receiver, capability or provider outside its scope is refused (403 forbidden), and it is refused at once when the caller has used up its tokens. ' +
          'Errors: 400 invalid_message (naming the field), 403 forbidden, 409 conversation_closed, 413 payload_too_large, 429 queue_full or rate_limited (with Retry-After).',
        tags: ['messaging'],
        querystring: onFirstRequest(() => z.object({ wait: waitSeconds })),
        response: docResponses(() => ({
          200: submitResultSchema().extend({
            conversation: conversationSchema().optional(),
            messages: z.array(aclMessageSchema()).optional(),
          }),
          202: z.union([submitResultSchema(), batchResultSchema(submitResultSchema())]),
          400: errorEnvelopeSchema,
          403: errorEnvelopeSchema,
          409: errorEnvelopeSchema,
          413: errorEnvelopeSchema,
          429: errorEnvelopeSchema,
          503: errorEnvelopeSchema,
        })),
      },
    },
    async (req, reply) => {
      const raw = Buffer.isBuffer(req.body) ? req.body : undefined;
      const body = parseJsonBody(raw, 'invalid_message');
      if (Array.isArray(body)) {
        checkBatch(body, ctx.batch, req.query.wait !== undefined);
        const out = await submitBatch(
          bus,
          req,
          body,
          (b) => asPrincipal(b, req.principal, req.log, req),
          ctx.requestLimit,
        );
        annotateAudit(req, { details: { messages: body.length, accepted: out.accepted, refused: out.refused } });
        const retry = batchRetryAfter(out);
        if (retry !== undefined) reply.header('retry-after', String(retry));
        return reply.code(202).send(out);
      }
      if (raw!.length > ctx.bodyLimit) throw bodyTooLarge(ctx.bodyLimit, true);
      asPrincipal(body, req.principal, req.log, req);
      const waitMs =
        req.query.wait === undefined
          ? undefined
          : req.query.wait === ''
            ? DEFAULT_WAIT_MS
            : parseDuration(req.query.wait)!;
      // Listen for the client going away before any await: the body is already read.
      const gone = waitMs !== undefined ? disconnectSignal(req, reply) : undefined;
      const tp = requestTraceparent(req);
      const result = await bus.submit(body, {
        bodySize: raw!.length,
        ...(tp !== undefined && { traceparent: tp }),
        ...(req.principal !== undefined && { principal: req.principal }),
        ...(req.credentialEnded !== undefined && { credentialEnded: req.credentialEnded }),
      });
      if (result.duplicate) req.log.debug({ message_id: result.id }, 'duplicate message');
      reply.header('location', `/api/v1/conversations/${encodeURIComponent(result.conversation_id)}`);
      if (waitMs === undefined) return reply.code(result.duplicate ? 200 : 202).send(result);
      const signal = AbortSignal.any([gone!, ctx.closing]);
      const conversation = await bus.wait(result.conversation_id, signal.aborted ? 0 : waitMs, signal);
      // What the caller may read of it: an agent may have drawn in others outside its scope.
      const { items } = await readsFor(bus.reads, req.principal).listMessages({
        conversation_id: result.conversation_id,
        limit: 100_000,
      });
      const ordered = items.reverse();
      return reply.code(200).send({
        ...result,
        conversation: withFailed({ ...conversation }, ordered),
        messages: ordered.map(messageView),
      });
    },
  );
}

/** GET /messages and GET /messages/{id}, as the caller may read them. */
export function messageReadRoutes(app: FastifyInstance, ctx: MessagingRouteContext): void {
  const { bus } = ctx;
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/messages',
    {
      schema: {
        summary: 'List messages, newest first, narrowed by performative, sender, receiver or conversation',
        tags: ['messaging'],
        querystring: onFirstRequest(() =>
          z.object({
            performative: z
              .enum(PERFORMATIVES, { error: `expected one of the FIPA acts: ${PERFORMATIVES.join(', ')}` })
              .optional(),
            sender: z.string().min(1).max(200).optional().describe('exactly this sender (any case)'),
            receiver: z
              .string()
              .min(1)
              .max(200)
              .optional()
              .describe('delivered, or being delivered, to this agent (any case)'),
            conversation_id: z.string().min(1).max(200).optional(),
            ...pageQuery(),
          }),
        ),
        response: docResponses(() => ({
          200: z.object({
            messages: z.array(aclMessageSchema()),
            total: z.number().int(),
            limit: z.number().int(),
            offset: z.number().int(),
          }),
          400: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const { limit, offset, ...filter } = req.query;
      const page = await readsFor(bus.reads, req.principal).listMessages({ ...definedOnly(filter), limit, offset });
      return { messages: page.items.map(messageView), total: page.total, limit, offset };
    },
  );

  r.get(
    '/messages/:id',
    {
      schema: {
        summary: 'One stored message, where it was routed and its deliveries',
        tags: ['messaging'],
        params: onFirstRequest(() => idParams()),
        response: docResponses(() => ({
          200: aclMessageSchema().extend({ deliveries: z.array(deliverySchema()), signer: signerSchema().optional() }),
          ...errors,
        })),
      },
    },
    async (req) => {
      const m = await readsFor(bus.reads, req.principal).getMessage(req.params.id);
      if (!m) throw new CaxtonError('not_found', `no message with id "${req.params.id}"`, { id: req.params.id });
      const signer = ctx.signer?.signer(m.message);
      return { ...messageView(m), deliveries: m.deliveries, ...(signer && { signer }) };
    },
  );
}
