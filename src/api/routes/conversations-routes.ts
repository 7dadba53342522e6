import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  eventVisibleTo,
  isTerminal,
  readsFor,
  type BusEvent,
  type ConversationState,
  type MessagingBus,
} from '../../messaging/index.js';
import { conversationBids } from '../../messaging/index.js';
import { bidsSchema } from './bids-schema.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { keepOpen, openSse } from '../sse-stream.js';
import type { MessagingRouteContext } from './messaging-routes.js';
import {
  aclMessageSchema,
  conversationSchema,
  errors,
  idParams,
  messageView,
  pageQuery,
  stateQuery,
} from './messaging-schemas.js';
import { docResponses, onFirstRequest } from '../lazy-schemas.js';

/** GET /conversations, one conversation with its bids, and following one as server-sent events. */
export function conversationRoutes(app: FastifyInstance, ctx: MessagingRouteContext): void {
  const { bus } = ctx;
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/conversations',
    {
      schema: {
        summary: 'List conversations, newest first',
        tags: ['messaging'],
        querystring: onFirstRequest(() =>
          z.object({
            state: stateQuery(),
            participant: z
              .string()
              .min(1)
              .max(200)
              .optional()
              .describe('only conversations this party sent or received a message in'),
            ...pageQuery(),
          }),
        ),
        response: docResponses(() => ({
          200: z.object({
            conversations: z.array(conversationSchema()),
            total: z.number().int(),
            limit: z.number().int(),
            offset: z.number().int(),
          }),
          400: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const { state, participant, limit, offset } = req.query;
      const page = await readsFor(bus.reads, req.principal).listConversations({
        ...(state !== undefined && { state }),
        ...(participant !== undefined && { participant }),
        limit,
        offset,
      });
      return { conversations: page.items, total: page.total, limit, offset };
    },
  );

  r.get(
    '/conversations/:id',
    {
      schema: {
        summary: 'One conversation and its messages, oldest first',
        tags: ['messaging'],
        params: onFirstRequest(() => idParams()),
        querystring: onFirstRequest(() =>
          z.object({
            limit: z.coerce.number({ error: 'expected a number' }).int().min(1).max(100_000).default(1000),
            offset: pageQuery().offset,
          }),
        ),
        response: docResponses(() => ({
          200: z.object({
            conversation: conversationSchema(),
            messages: z.array(aclMessageSchema()),
            bids: bidsSchema().nullable(),
          }),
          ...errors,
        })),
      },
    },
    async (req) => {
      const reads = readsFor(bus.reads, req.principal);
      const { limit, offset } = req.query;
      const { conversation, messages } = await reads.getConversation(req.params.id, { limit, offset });
      // The bids are ranked over the whole conversation, whatever page of its messages is asked for.
      const whole =
        offset === 0 && messages.length < limit
          ? messages
          : (await reads.getConversation(req.params.id, { limit: 100_000 })).messages;
      const bids = conversationBids(
        conversation.protocol,
        whole.map((s) => s.message),
        ctx.selection ?? { rule: 'lowest', field: 'price' },
      );
      return { conversation, messages: messages.map(messageView), bids: bids ?? null };
    },
  );

  r.get(
    '/conversations/:id/events',
    {
      schema: {
        summary: 'Follow a conversation (server-sent events)',
        description:
          'Replays the stored messages as `message` events and the current state as a `state` event, then streams new messages and state changes as they happen. ' +
          'After a terminal state (completed, failed, expired) an `end` event closes the stream. Comment lines are sent every 15 s while idle.',
        tags: ['messaging'],
        params: onFirstRequest(() => idParams()),
        response: docResponses(() => ({ 200: z.string().describe('text/event-stream'), 404: errorEnvelopeSchema })),
      },
    },
    async (req, reply) => followConversation(bus, req, reply, req.params.id, ctx.streams),
  );
}

/**
 * SSE for one conversation. The listener is attached before the stored messages are read, and
 * what arrives meanwhile is held back and sent after them (skipping what the replay already had),
 * so no message is lost or sent twice.
 */
async function followConversation(
  bus: MessagingBus,
  req: FastifyRequest,
  reply: FastifyReply,
  id: string,
  streams: Set<() => void>,
): Promise<FastifyReply> {
  const held: BusEvent[] = [];
  let live = false;
  const visible = eventVisibleTo(req.principal);
  const onEvent = (e: BusEvent): void => {
    if (e.conversation_id !== id) return;
    if (live) send(e);
    else held.push(e);
  };
  bus.on('event', onEvent);
  let snapshot: Awaited<ReturnType<MessagingBus['reads']['getConversation']>>;
  try {
    await bus.listening();
    snapshot = await readsFor(bus.reads, req.principal).getConversation(id, { limit: 100_000 });
  } catch (e) {
    bus.off('event', onEvent);
    throw e; // 404 before the stream opens
  }
  const sse = openSse(req, reply);
  const end = keepOpen(sse, streams, () => bus.off('event', onEvent));
  const sent = new Set<string>();
  let lastState: ConversationState | undefined;
  let done = false;
  const send = (e: BusEvent): void => {
    if (done) return;
    if (!visible(e)) {
      // The conversation drew in an agent outside the caller's scope: the stream ends here.
      if (e.type === 'state') {
        done = true;
        end();
      }
      return;
    }
    if (e.type === 'message') {
      if (sent.has(e.message.id)) return;
      sent.add(e.message.id);
      sse.send('message', { ...e.message, routed_to: e.routed_to });
      return;
    }
    const c = e.conversation;
    if (c.state === lastState && !isTerminal(c.state)) return;
    lastState = c.state;
    sse.send('state', c);
    if (isTerminal(c.state)) {
      done = true;
      sse.send('end', { conversation_id: c.id, state: c.state, reason: c.reason });
      end();
    }
  };
  for (const s of snapshot.messages)
    send({ type: 'message', conversation_id: snapshot.conversation.id, message: s.message, routed_to: s.routed_to });
  send({ type: 'state', conversation_id: snapshot.conversation.id, conversation: snapshot.conversation });
  for (const e of held.splice(0)) send(e);
  live = true;
  return reply;
}
