import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { type DirectoryEvent } from '../../messaging/index.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { keepOpen, openSse } from '../sse-stream.js';
import type { MessagingRouteContext } from './messaging-routes.js';
import { directoryEntrySchema, directoryEventView, entryView } from './messaging-schemas.js';
import { docResponses, onFirstRequest } from '../lazy-schemas.js';

/** The directory facilitator: find agents, and follow the directory as server-sent events. */
export function directoryRoutes(app: FastifyInstance, ctx: MessagingRouteContext): void {
  const { bus } = ctx;
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/directory',
    {
      schema: {
        summary: 'Directory facilitator: agents by capability, protocol, ontology and content language',
        tags: ['messaging'],
        querystring: onFirstRequest(() =>
          z.object({
            capability: z.string().min(1).max(200).optional(),
            protocol: z.string().min(1).max(200).optional().describe('only agents taking part in this protocol'),
            ontology: z.string().min(1).max(256).optional(),
            language: z.string().min(1).max(256).optional(),
          }),
        ),
        response: docResponses(() => ({
          200: z.object({ entries: z.array(directoryEntrySchema()), total: z.number().int() }),
          400: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const q = req.query;
      const entries = bus.directory
        .find(
          {
            ...(q.capability !== undefined && { capability: q.capability }),
            ...(q.protocol !== undefined && { protocol: q.protocol }),
            ...(q.ontology !== undefined && { ontology: q.ontology }),
            ...(q.language !== undefined && { language: q.language }),
          },
          req.principal,
        )
        .map(entryView);
      return { entries, total: entries.length };
    },
  );

  r.get(
    '/directory/events',
    {
      schema: {
        summary: 'Follow the directory (server-sent events)',
        description:
          'Streams `registered`, `updated` and `deregistered` events as agents are deployed, changed and removed. Comment lines are sent every 15 s while idle.',
        tags: ['messaging'],
        response: docResponses(() => ({ 200: z.string().describe('text/event-stream') })),
      },
    },
    async (req, reply) => {
      // Headers are flushed in openSse but reach the client only after this synchronous block: a
      // client that has seen the 200 will see every later change.
      const sse = openSse(req, reply);
      const stop = bus.directory.follow(req.principal, (e: DirectoryEvent) => sse.send(e.type, directoryEventView(e)));
      keepOpen(sse, ctx.streams, stop);
      return reply;
    },
  );
}
