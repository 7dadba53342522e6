/** The messaging routes' request and response schemas, the sender rule and the views they answer with. */
import { can, senderOf, type Principal } from '../../auth/index.js';
import { annotateAudit } from '../../audit/index.js';
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  TERMINAL_STATES,
  type ConversationState,
  type DirectoryEntry,
  type DirectoryEvent,
  type StoredMessage,
} from '../../messaging/index.js';
import { MAX_ATTEMPT_ERRORS, type AclMessage } from '../../messaging/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { closest } from '../../shared/suggest.js';
import { parseDuration } from '../../shared/units.js';
import { errorEnvelopeSchema } from '../schemas.js';
import type { Check, Documents } from '../type-checks.js';
import { onUse } from '../lazy-schemas.js';

/** Longest `?wait` on POST /messages. */
export const MAX_WAIT_MS = 300_000;
/** `?wait` given without a value. */
export const DEFAULT_WAIT_MS = 60_000;

export const STATES = ['initiated', 'in_progress', ...TERMINAL_STATES] as [ConversationState, ...ConversationState[]];

// ------------------------------------------------------------------------------ schemas

export const aclMessageSchema = onUse(() =>
  z
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
    .describe('A stored FIPA-ACL message'),
);

export const signerSchema = onUse(() =>
  z
    .object({
      key: z.string(),
      owner: z.string().describe('"node", or "agent:NAME"'),
      node: z.string(),
      valid: z.boolean().describe('whether the signature verifies against the message as stored'),
      problem: z.string().optional(),
    })
    .describe('who signed the message (absent: not signed)'),
);

/** The schema documents AclMessage (plus where it was routed); does not compile otherwise. */
export type AclMessageDocumented = Check<
  Documents<Omit<z.output<ReturnType<typeof aclMessageSchema>>, 'routed_to'>, AclMessage>
>;

export const conversationSchema = onUse(() =>
  z.object({
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
  }),
);

export const submitResultSchema = onUse(() =>
  z.object({
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
  }),
);

export const deliverySchema = onUse(() =>
  z.object({
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
  }),
);

export const deadLetterSchema = onUse(() =>
  deliverySchema().extend({ message: aclMessageSchema().omit({ routed_to: true }) }),
);

export const directoryEntrySchema = onUse(() =>
  z.object({
    agent: z.string(),
    description: z.string(),
    capabilities: z.array(z.string()),
    protocols: z.array(z.string()).describe('empty: every protocol'),
    ontologies: z.array(z.string()).describe('empty: any ontology'),
    languages: z.array(z.string()).describe('empty: any content language'),
    max_concurrency: z.number().int().nullable(),
  }),
);

/** The body of POST /api/v1/messages, for the OpenAPI document (the route parses the raw body itself). */
export const messageBodyDocSchema = onUse(() =>
  z
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
    .describe('A FIPA-ACL message; FIPA spellings such as "conversation-id" are accepted too'),
);

/** The query's fields that were given (exactOptionalPropertyTypes: an absent filter is no key, not undefined). */
export function definedOnly<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

export const pageQuery = onUse(() => ({
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
}));

export const waitSeconds = z
  .string()
  .refine((s) => s === '' || (parseDuration(s) ?? Infinity) <= MAX_WAIT_MS, {
    message: `expected seconds to wait (e.g. 30) or a duration (e.g. "2m"), at most ${MAX_WAIT_MS / 1000} s`,
  })
  .optional()
  .describe(
    `wait up to this many seconds (at most ${MAX_WAIT_MS / 1000}) for the conversation to end; then 200 with the conversation and its messages. Without a value: ${DEFAULT_WAIT_MS / 1000} s`,
  );

export const idParams = onUse(() => z.object({ id: z.string().min(1).max(200) }));
export const deadLetterParams = onUse(() =>
  z.object({
    id: z.string().regex(/^[1-9]\d{0,14}$/, { message: 'expected a dead-letter id (a positive integer)' }),
  }),
);

export const stateQuery = onUse(() =>
  z
    .enum(STATES, {
      error: (iss) =>
        `unknown state ${JSON.stringify(iss.input)}${typeof iss.input === 'string' && closest(iss.input, STATES) ? `; did you mean "${closest(iss.input, STATES)}"?` : ''}; expected one of: ${STATES.join(', ')}`,
    })
    .optional(),
);

export const errors = { 400: errorEnvelopeSchema, 404: errorEnvelopeSchema };

/**
 * The ACL sender of a message from outside is the authenticated caller: absent, it is filled in;
 * another party needs the impersonate permission (system integrations), and is logged and audited.
 * With authentication off (the local principal) the client's sender stands. Where the message may
 * go is decided by the bus for the principal it acts for (src/auth/scope-send.ts), not here.
 */
export function asPrincipal(
  body: unknown,
  p: Principal | undefined,
  log: FastifyBaseLogger,
  req?: FastifyRequest,
): void {
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
  return { ...s.message, routed_to: s.routed_to };
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

export function directoryEventView(e: DirectoryEvent) {
  return e.type === 'updated'
    ? { type: e.type, entry: entryView(e.entry), previous: entryView(e.previous) }
    : { type: e.type, entry: entryView(e.entry) };
}
