import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { type MessagingBus } from '../../messaging/index.js';
import { type MessageSigner } from '../../messaging/index.js';
import { type Selection } from '../../messaging/index.js';
import { type BatchLimits } from './message-batch-routes.js';
import { conversationRoutes } from './conversations-routes.js';
import { deadLetterRoutes } from './dead-letters-routes.js';
import { directoryRoutes } from './directory-routes.js';
import { messageReadRoutes, sendMessageRoute } from './messages-routes.js';
import { docResponses } from '../lazy-schemas.js';

export { messageBodyDocSchema } from './messaging-schemas.js';

/** What the messaging resources' routes share. */
export interface MessagingRouteContext {
  readonly bus: MessagingBus;
  readonly batch: BatchLimits;
  /** One message's bound in bytes. */
  readonly bodyLimit: number;
  /** A request's bound: a batch may be larger than one request body elsewhere; each of its messages is still bounded by max_message_size. */
  readonly requestLimit: number;
  readonly signer?: MessageSigner | undefined;
  /** `[messaging] cfp_select` / `cfp_field`: the rule of a cfp that names none, for `bids`. */
  readonly selection?: Selection | undefined;
  /** Aborted when the server stops: waiting requests end then. */
  readonly closing: AbortSignal;
  /** Open event streams, ended when the server stops. */
  readonly streams: Set<() => void>;
}

/**
 * Messaging: send FIPA-ACL messages, follow conversations (JSON and server-sent events), the
 * dead-letter queue, the directory facilitator and queue statistics.
 */
export async function messagingRoutes(
  app: FastifyInstance,
  opts: {
    bus: MessagingBus;
    batch: BatchLimits;
    bodyLimit: number;
    signer?: MessageSigner | undefined;
    /** `[messaging] cfp_select` / `cfp_field`: the rule of a cfp that names none, for `bids`. */
    selection?: Selection | undefined;
  },
): Promise<void> {
  // Open event streams and waiting requests end when the server stops, so shutdown never waits
  // for a client that follows a conversation.
  const closing = new AbortController();
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    closing.abort();
    for (const end of [...streams]) end();
  });

  // Message bodies are read raw: the byte length is the message size, and a JSON syntax error is
  // reported with its line and column (and as invalid_message, like every other bad message).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const ctx: MessagingRouteContext = {
    bus: opts.bus,
    batch: opts.batch,
    bodyLimit: opts.bodyLimit,
    requestLimit: Math.max(opts.bodyLimit, opts.batch.max_batch_size),
    signer: opts.signer,
    selection: opts.selection,
    closing: closing.signal,
    streams,
  };
  sendMessageRoute(app, ctx);
  messageReadRoutes(app, ctx);
  conversationRoutes(app, ctx);
  deadLetterRoutes(app, ctx);
  directoryRoutes(app, ctx);
  const { bus } = opts;
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/messaging/stats',
    {
      schema: {
        summary: 'Message queue statistics',
        tags: ['messaging'],
        response: docResponses(() => ({
          200: z.object({
            queued: z.number().int(),
            running: z.number().int(),
            retrying: z.number().int(),
            open_conversations: z.number().int(),
            dead_letters: z.number().int(),
            max_queue: z.number().int(),
          }),
        })),
      },
    },
    async () => bus.stats(),
  );
}
