import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { readsFor, replayDeadLetter } from '../../messaging/index.js';
import { deadLetterBulkRoutes } from './dead-letter-bulk-routes.js';
import { errorEnvelopeSchema } from '../schemas.js';
import type { MessagingRouteContext } from './messaging-routes.js';
import { deadLetterParams, deadLetterSchema, definedOnly, errors, pageQuery } from './messaging-schemas.js';
import { docResponses, onFirstRequest } from '../lazy-schemas.js';

/** The dead-letter queue: list, read and replay one; the bulk actions (dead-letter-bulk-routes.ts). */
export function deadLetterRoutes(app: FastifyInstance, ctx: MessagingRouteContext): void {
  const { bus } = ctx;
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/dead-letters',
    {
      schema: {
        summary: 'Deliveries that failed for good, oldest first, narrowed by receiver or error text',
        tags: ['messaging'],
        querystring: onFirstRequest(() =>
          z.object({
            receiver: z
              .string()
              .min(1)
              .max(200)
              .optional()
              .describe("this text anywhere in the receiver's name (any case)"),
            error: z.string().min(1).max(200).optional().describe('this text anywhere in the last error (any case)'),
            ...pageQuery(),
          }),
        ),
        response: docResponses(() => ({
          200: z.object({
            dead_letters: z.array(deadLetterSchema()),
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
      const page = await readsFor(bus.reads, req.principal).deadLetters({ ...definedOnly(filter), limit, offset });
      return { dead_letters: page.items, total: page.total, limit, offset };
    },
  );

  r.get(
    '/dead-letters/:id',
    {
      schema: {
        summary: 'One dead letter',
        tags: ['messaging'],
        params: onFirstRequest(() => deadLetterParams()),
        response: docResponses(() => ({ 200: deadLetterSchema(), ...errors })),
      },
    },
    async (req) => readsFor(bus.reads, req.principal).deadLetter(Number(req.params.id)),
  );

  r.post(
    '/dead-letters/:id/replay',
    {
      schema: {
        summary: 'Deliver a dead letter again',
        description:
          'Puts the delivery back on the queue with fresh attempts; a conversation that failed because of it is reopened, so the reply can complete it.',
        tags: ['messaging'],
        params: onFirstRequest(() => deadLetterParams()),
        response: docResponses(() => ({
          202: z.object({
            id: z.number().int(),
            message_id: z.string(),
            receiver: z.string(),
            conversation_id: z.string(),
          }),
          ...errors,
          409: errorEnvelopeSchema,
        })),
      },
    },
    async (req, reply) => {
      const out = await replayDeadLetter(bus, req.principal, Number(req.params.id));
      req.log.info({ dead_letter: out.id, message_id: out.message_id, receiver: out.receiver }, 'dead letter replayed');
      return reply.code(202).send(out);
    },
  );
  deadLetterBulkRoutes(app, bus);
}
