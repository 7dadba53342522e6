import { can, senderOf, type Principal } from '../../auth/index.js';
import { annotateAudit } from '../../audit/index.js';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { requestTraceparent } from '../request-trace.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  eventVisibleTo,
  isTerminal,
  PERFORMATIVES,
  readsFor,
  replayDeadLetter,
  TERMINAL_STATES,
  type BusEvent,
  type ConversationState,
  type DirectoryEntry,
  type DirectoryEvent,
  type MessagingBus,
  type StoredMessage,
} from '../../messaging/index.js';
import { MAX_ATTEMPT_ERRORS, withFailed, type AclMessage, type MessageSigner } from '../../messaging/index.js';
import { conversationBids, type Selection } from '../../messaging/index.js';
import { bidsSchema } from './bids-schema.js';
import { CaxtonError } from '../../shared/errors.js';
import { COPY_ROOT } from '../../shared/objects.js';
import { closest } from '../../shared/suggest.js';
import { parseDuration } from '../../shared/units.js';
import { parseJsonBody } from '../json-body.js';
import { bodyTooLarge } from '../envelope.js';
import { deadLetterBulkRoutes } from './dead-letter-bulk.js';
import { batchResultSchema, batchRetryAfter, checkBatch, submitBatch, type BatchLimits } from './message-batch.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { disconnectSignal, keepOpen, openSse } from '../sse.js';
import type { Check, Documents } from '../type-checks.js';

/** Longest `?wait` on POST /messages. */
export const MAX_WAIT_MS = 300_000;
/** `?wait` given without a value. */
export const DEFAULT_WAIT_MS = 60_000;
/** Comment lines on idle event streams, so proxies and clients keep the connection. */

const STATES = ['initiated', 'in_progress', ...TERMINAL_STATES] as [ConversationState, ...ConversationState[]];

// ------------------------------------------------------------------------------ schemas

const aclMessageSchema = z
  .object({
    id: z.string(),
    performative: z.string().describe('one of the 22 FIPA communicative acts'),
    sender: z.string(),
    receivers: z.array(z.string()).readonly(),
    capability: z.string().optional(),
    reply_to: z.array(z.string()).readonly().optional(),
    content: z.unknown().describe('text or any JSON value'),
    language: z.string().optional(),
    encoding: z.string().optional(),
    ontology: z.string().optional(),
    protocol: z.string().optional(),
    conversation_id: z.string(),
    reply_with: z.string().optional(),
    in_reply_to: z.string().optional(),
    reply_by: z.string().optional(),
    params: z.record(z.string(), z.string()),
    trace_context: z.object({ traceparent: z.string(), tracestate: z.string().optional() }).optional(),
    timestamp: z.string(),
    chain: z.array(z.string()).readonly().describe('agents whose executions led to this message'),
    on_behalf_of: z
      .string()
      .optional()
      .describe(
        'the principal the message acts for (set by the platform): its scope and limits apply to what the message causes',
      ),
    signature: z
      .object({ key: z.string(), value: z.string() })
      .readonly()
      .optional()
      .describe('with [messaging] signing: the Ed25519 signature of the canonical form and its key id (ADR 0059)'),
    signed_by: z
      .object({ key: z.string(), principal: z.string(), signed_at: z.string(), value: z.string() })
      .readonly()
      .optional()
      .describe(
        'a message from outside its caller signed (ADR 0115): the registered key, its principal, when it signed and the signature, checked when the message was submitted; the node signature covers it',
      ),
    routed_to: z.array(z.string()).describe('agents the message was delivered to'),
  })
  .describe('A stored FIPA-ACL message');

const signerSchema = z
  .object({
    key: z.string(),
    owner: z.string().describe('"node", or "agent:NAME"'),
    node: z.string(),
    valid: z.boolean().describe('whether the signature verifies against the message as stored'),
    problem: z.string().optional(),
  })
  .describe('who signed the message (absent: not signed)');

/** The schema documents AclMessage (plus where it was routed); does not compile otherwise. */
export type AclMessageDocumented = Check<Documents<Omit<z.output<typeof aclMessageSchema>, 'routed_to'>, AclMessage>>;

const conversationSchema = z.object({
  id: z.string(),
  protocol: z.string().nullable(),
  state: z.enum(STATES),
  initiator: z.string(),
  participants: z.array(z.string()),
  capability: z.string().nullable(),
  turns: z.number().int(),
  max_turns: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  expires_at: z.string().nullable(),
  reason: z.string().nullable(),
  failed_participants: z
    .array(
      z.object({
        agent: z.string(),
        reason: z.string(),
        dead_letter: z.number().int().nullable(),
        at: z.string(),
      }),
    )
    .optional()
    .describe('participants the protocol went on without: their delivery was dead-lettered'),
});

const submitResultSchema = z.object({
  id: z.string(),
  conversation_id: z.string(),
  performative: z.string(),
  routed_to: z.array(z.string()),
  routing: z.enum(['named', 'one', 'all', 'none']),
  duplicate: z.boolean().describe('the message id was accepted before: nothing new was stored or delivered'),
  failure: z
    .object({ reason: z.string(), message: z.string(), reply_id: z.string() })
    .optional()
    .describe('why the message could not be routed (the conversation failed)'),
});

const deliverySchema = z.object({
  id: z.number().int(),
  message_id: z.string(),
  receiver: z.string(),
  state: z.enum(['pending', 'done', 'dead']),
  attempts: z.number().int(),
  next_at: z.number(),
  last_error: z.string().nullable(),
  updated_at: z.string(),
  attempt_errors: z
    .array(z.object({ at: z.string(), error: z.string() }))
    .describe(`each failed attempt, oldest first: when it failed and why (the last ${MAX_ATTEMPT_ERRORS} kept)`),
});

const deadLetterSchema = deliverySchema.extend({ message: aclMessageSchema.omit({ routed_to: true }) });

const directoryEntrySchema = z.object({
  agent: z.string(),
  description: z.string(),
  capabilities: z.array(z.string()),
  protocols: z.array(z.string()).describe('empty: every protocol'),
  ontologies: z.array(z.string()).describe('empty: any ontology'),
  languages: z.array(z.string()).describe('empty: any content language'),
  max_concurrency: z.number().int().nullable(),
});

/** The body of POST /api/v1/messages, for the OpenAPI document (the route parses the raw body itself). */
export const messageBodyDocSchema = z
  .object({
    performative: z.string().describe('one of the 22 FIPA acts, e.g. "request", "query-ref", "inform", "cfp"'),
    capability: z.string().optional().describe('the capability to address (or receiver/receivers, not both)'),
    receiver: z.string().optional().describe('an agent name'),
    receivers: z.array(z.string()).optional(),
    content: z.unknown().describe('text or any JSON value (required except for cancel)'),
    id: z
      .string()
      .optional()
      .describe('a client-chosen id makes retries safe: the same id is stored and delivered once'),
    sender: z.string().optional().describe('default "user"'),
    reply_to: z.union([z.string(), z.array(z.string())]).optional(),
    language: z.string().optional(),
    encoding: z.string().optional(),
    ontology: z.string().optional(),
    protocol: z
      .string()
      .optional()
      .describe(
        'fipa-request, fipa-query, fipa-contract-net, fipa-subscribe, fipa-english-auction, fipa-dutch-auction, fipa-iterated-contract-net; default from the performative',
      ),
    conversation_id: z.string().optional().describe('continue a conversation; absent: a new one'),
    reply_with: z.string().optional(),
    in_reply_to: z.string().optional(),
    reply_by: z.string().optional().describe('ISO 8601 time or a duration such as "30s"'),
    params: z
      .record(z.string(), z.string())
      .optional()
      .describe('user-defined parameters, names start with "X-" (also accepted at the top level)'),
    trace_context: z.object({ traceparent: z.string(), tracestate: z.string().optional() }).optional(),
    signature: z
      .object({ key: z.string(), signed_at: z.string(), value: z.string() })
      .optional()
      .describe(
        'with [messaging] signing: the caller signs the message with its registered key (ADR 0115, docs/messaging.md): Ed25519 over JSON.stringify(["caxton-signed-message-v1", key, signed_at, the message without signature, keys sorted]); needs id and sender; signed_at within 5 minutes of the server clock; accepted once',
      ),
  })
  .describe('A FIPA-ACL message; FIPA spellings such as "conversation-id" are accepted too');

/** The query's fields that were given (exactOptionalPropertyTypes: an absent filter is no key, not undefined). */
function definedOnly<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

const pageQuery = {
  limit: z.coerce
    .number({ error: 'expected a number' })
    .int({ error: 'expected a whole number' })
    .min(1, { error: 'at least 1' })
    .max(1000, { error: 'at most 1000' })
    .default(50),
  offset: z.coerce
    .number({ error: 'expected a number' })
    .int({ error: 'expected a whole number' })
    .min(0, { error: 'at least 0' })
    .default(0),
};

const waitSeconds = z
  .string()
  .refine((s) => s === '' || (parseDuration(s) ?? Infinity) <= MAX_WAIT_MS, {
    message: `expected seconds to wait (e.g. 30) or a duration (e.g. "2m"), at most ${MAX_WAIT_MS / 1000} s`,
  })
  .optional()
  .describe(
    `wait up to this many seconds (at most ${MAX_WAIT_MS / 1000}) for the conversation to end; then 200 with the conversation and its messages. Without a value: ${DEFAULT_WAIT_MS / 1000} s`,
  );

const idParams = z.object({ id: z.string().min(1).max(200) });
const deadLetterParams = z.object({
  id: z.string().regex(/^[1-9]\d{0,14}$/, { message: 'expected a dead-letter id (a positive integer)' }),
});

const stateQuery = z
  .enum(STATES, {
    error: (iss) =>
      `unknown state ${JSON.stringify(iss.input)}${typeof iss.input === 'string' && closest(iss.input, STATES) ? `; did you mean "${closest(iss.input, STATES)}"?` : ''}; expected one of: ${STATES.join(', ')}`,
  })
  .optional();

const errors = { 400: errorEnvelopeSchema, 404: errorEnvelopeSchema };

/**
 * The ACL sender of a message from outside is the authenticated caller: absent, it is filled in;
 * another party needs the impersonate permission (system integrations), and is logged and audited.
 * With authentication off (the local principal) the client's sender stands. Where the message may
 * go is decided by the bus for the principal it acts for (src/auth/scope-send.ts), not here.
 */
function asPrincipal(body: unknown, p: Principal | undefined, log: FastifyBaseLogger, req?: FastifyRequest): void {
  if (p === undefined || typeof body !== 'object' || body === null || Array.isArray(body)) return;
  const b = body as Record<string, unknown>;
  if (p.kind !== 'local') {
    const own = senderOf(p);
    // A signed message names its sender itself (the signature covers it): left for the bus to refuse.
    if (b.sender === undefined) {
      if (b.signature === undefined) b.sender = own;
    } else if (b.sender !== own) {
      if (!can(p, 'impersonate'))
        throw new CaxtonError(
          'forbidden',
          `the sender of a message you send is you (${own}); sending as ${JSON.stringify(String(b.sender).slice(0, 100))} needs the impersonate permission`,
          {
            reason: 'impersonate',
            field: 'sender',
          },
        );
      log.warn({ principal: p.id, sender: b.sender }, 'message sent on behalf of another party');
      if (req) annotateAudit(req, { action: 'message.send_as', details: { as: String(b.sender).slice(0, 200) } });
    }
  }
}

// ------------------------------------------------------------------------------ views

export function messageView(s: StoredMessage) {
  return { ...COPY_ROOT, ...s.message, routed_to: s.routed_to };
}

export function entryView(e: DirectoryEntry) {
  return {
    agent: e.agent,
    description: e.description,
    capabilities: [...e.capabilities],
    protocols: [...e.protocols],
    ontologies: [...e.ontologies],
    languages: [...e.languages],
    max_concurrency: e.max_concurrency ?? null,
  };
}

function directoryEventView(e: DirectoryEvent) {
  return e.type === 'updated'
    ? { type: e.type, entry: entryView(e.entry), previous: entryView(e.previous) }
    : { type: e.type, entry: entryView(e.entry) };
}

// ------------------------------------------------------------------------------ routes

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
  const { bus } = opts;
  // A batch may be larger than one request body elsewhere; each of its messages is still bounded by max_message_size.
  const bodyLimit = Math.max(opts.bodyLimit, opts.batch.max_batch_size);
  const r = app.withTypeProvider<ZodTypeProvider>();

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

  r.post(
    '/messages',
    {
      bodyLimit,
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
        querystring: z.object({ wait: waitSeconds }),
        response: {
          200: submitResultSchema.extend({
            conversation: conversationSchema.optional(),
            messages: z.array(aclMessageSchema).optional(),
          }),
          202: z.union([submitResultSchema, batchResultSchema(submitResultSchema)]),
          400: errorEnvelopeSchema,
          403: errorEnvelopeSchema,
          409: errorEnvelopeSchema,
          413: errorEnvelopeSchema,
          429: errorEnvelopeSchema,
          503: errorEnvelopeSchema,
        },
      },
    },
    async (req, reply) => {
      const raw = Buffer.isBuffer(req.body) ? req.body : undefined;
      const body = parseJsonBody(raw, 'invalid_message');
      if (Array.isArray(body)) {
        checkBatch(body, opts.batch, req.query.wait !== undefined);
        const out = await submitBatch(bus, req, body, (b) => asPrincipal(b, req.principal, req.log, req), bodyLimit);
        annotateAudit(req, { details: { messages: body.length, accepted: out.accepted, refused: out.refused } });
        const retry = batchRetryAfter(out);
        if (retry !== undefined) reply.header('retry-after', String(retry));
        return reply.code(202).send(out);
      }
      if (raw!.length > opts.bodyLimit) throw bodyTooLarge(opts.bodyLimit, true);
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
      const signal = AbortSignal.any([gone!, closing.signal]);
      const conversation = await bus.wait(result.conversation_id, signal.aborted ? 0 : waitMs, signal);
      // What the caller may read of it: an agent may have drawn in others outside its scope.
      const { items } = await readsFor(bus.reads, req.principal).listMessages({
        conversation_id: result.conversation_id,
        limit: 100_000,
      });
      const ordered = items.reverse();
      return reply.code(200).send({
        ...COPY_ROOT,
        ...result,
        conversation: withFailed({ ...conversation }, ordered),
        messages: ordered.map(messageView),
      });
    },
  );

  r.get(
    '/messages',
    {
      schema: {
        summary: 'List messages, newest first, narrowed by performative, sender, receiver or conversation',
        tags: ['messaging'],
        querystring: z.object({
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
          ...pageQuery,
        }),
        response: {
          200: z.object({
            messages: z.array(aclMessageSchema),
            total: z.number().int(),
            limit: z.number().int(),
            offset: z.number().int(),
          }),
          400: errorEnvelopeSchema,
        },
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
        params: idParams,
        response: {
          200: aclMessageSchema.extend({ deliveries: z.array(deliverySchema), signer: signerSchema.optional() }),
          ...errors,
        },
      },
    },
    async (req) => {
      const m = await readsFor(bus.reads, req.principal).getMessage(req.params.id);
      if (!m) throw new CaxtonError('not_found', `no message with id "${req.params.id}"`, { id: req.params.id });
      const signer = opts.signer?.signer(m.message);
      return { ...COPY_ROOT, ...messageView(m), deliveries: m.deliveries, ...(signer && { signer }) };
    },
  );

  r.get(
    '/conversations',
    {
      schema: {
        summary: 'List conversations, newest first',
        tags: ['messaging'],
        querystring: z.object({
          state: stateQuery,
          participant: z
            .string()
            .min(1)
            .max(200)
            .optional()
            .describe('only conversations this party sent or received a message in'),
          ...pageQuery,
        }),
        response: {
          200: z.object({
            conversations: z.array(conversationSchema),
            total: z.number().int(),
            limit: z.number().int(),
            offset: z.number().int(),
          }),
          400: errorEnvelopeSchema,
        },
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
        params: idParams,
        querystring: z.object({
          limit: z.coerce.number({ error: 'expected a number' }).int().min(1).max(100_000).default(1000),
          offset: pageQuery.offset,
        }),
        response: {
          200: z.object({
            conversation: conversationSchema,
            messages: z.array(aclMessageSchema),
            bids: bidsSchema.nullable(),
          }),
          ...errors,
        },
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
        opts.selection ?? { rule: 'lowest', field: 'price' },
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
        params: idParams,
        response: { 200: z.string().describe('text/event-stream'), 404: errorEnvelopeSchema },
      },
    },
    async (req, reply) => followConversation(bus, req, reply, req.params.id, streams),
  );

  r.get(
    '/dead-letters',
    {
      schema: {
        summary: 'Deliveries that failed for good, oldest first, narrowed by receiver or error text',
        tags: ['messaging'],
        querystring: z.object({
          receiver: z
            .string()
            .min(1)
            .max(200)
            .optional()
            .describe("this text anywhere in the receiver's name (any case)"),
          error: z.string().min(1).max(200).optional().describe('this text anywhere in the last error (any case)'),
          ...pageQuery,
        }),
        response: {
          200: z.object({
            dead_letters: z.array(deadLetterSchema),
            total: z.number().int(),
            limit: z.number().int(),
            offset: z.number().int(),
          }),
          400: errorEnvelopeSchema,
        },
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
        params: deadLetterParams,
        response: { 200: deadLetterSchema, ...errors },
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
        params: deadLetterParams,
        response: {
          202: z.object({
            id: z.number().int(),
            message_id: z.string(),
            receiver: z.string(),
            conversation_id: z.string(),
          }),
          ...errors,
          409: errorEnvelopeSchema,
        },
      },
    },
    async (req, reply) => {
      const out = await replayDeadLetter(bus, req.principal, Number(req.params.id));
      req.log.info({ dead_letter: out.id, message_id: out.message_id, receiver: out.receiver }, 'dead letter replayed');
      return reply.code(202).send(out);
    },
  );
  deadLetterBulkRoutes(app, bus);

  r.get(
    '/directory',
    {
      schema: {
        summary: 'Directory facilitator: agents by capability, protocol, ontology and content language',
        tags: ['messaging'],
        querystring: z.object({
          capability: z.string().min(1).max(200).optional(),
          protocol: z.string().min(1).max(200).optional().describe('only agents taking part in this protocol'),
          ontology: z.string().min(1).max(256).optional(),
          language: z.string().min(1).max(256).optional(),
        }),
        response: {
          200: z.object({ entries: z.array(directoryEntrySchema), total: z.number().int() }),
          400: errorEnvelopeSchema,
        },
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
        response: { 200: z.string().describe('text/event-stream') },
      },
    },
    async (req, reply) => {
      // Headers are flushed in openSse but reach the client only after this synchronous block: a
      // client that has seen the 200 will see every later change.
      const sse = openSse(req, reply);
      const stop = bus.directory.follow(req.principal, (e: DirectoryEvent) => sse.send(e.type, directoryEventView(e)));
      keepOpen(sse, streams, stop);
      return reply;
    },
  );

  r.get(
    '/messaging/stats',
    {
      schema: {
        summary: 'Message queue statistics',
        tags: ['messaging'],
        response: {
          200: z.object({
            queued: z.number().int(),
            running: z.number().int(),
            retrying: z.number().int(),
            open_conversations: z.number().int(),
            dead_letters: z.number().int(),
            max_queue: z.number().int(),
          }),
        },
      },
    },
    async () => bus.stats(),
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
      sse.send('message', { ...COPY_ROOT, ...e.message, routed_to: e.routed_to });
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
