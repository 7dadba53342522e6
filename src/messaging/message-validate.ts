import { z } from 'zod';
import { CAPABILITY_RE } from '../agents/index.js';
import { CaxtonError } from '../shared/errors.js';
import { closest } from '../shared/suggest.js';
import { parseDuration } from '../shared/units.js';
import {
  newConversationId,
  newMessageId,
  type AclMessage,
  type Content,
  type ConversationId,
  type MessageId,
} from './message.js';
import { PERFORMATIVES, PROTOCOLS, defaultProtocol, normalizePerformative, type Protocol } from './performatives.js';
import { parseSelect, roundTermIssues } from './protocols/index.js';

/** Keys accepted in a message body; FIPA's hyphenated spellings (`conversation-id`) are accepted too. */
const KEYS = [
  'id',
  'performative',
  'sender',
  'receiver',
  'receivers',
  'capability',
  'reply_to',
  'content',
  'language',
  'encoding',
  'ontology',
  'protocol',
  'conversation_id',
  'reply_with',
  'in_reply_to',
  'reply_by',
  'params',
  'trace_context',
] as const;

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
// Single inner spaces: agent names may hold them (Claude Code's "Code Reviewer"; AGENT_NAME_RE).
const NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9_.:@-]| (?=[A-Za-z0-9_.:@-])){0,127}$/;
const PARAM_RE = /^X-[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const TRACEPARENT_RE = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * The body's schema, built on the first message parsed: a start that receives none does not build
 * its two dozen zod schemas.
 */
let bodySchemaBuilt: ReturnType<typeof buildBodySchema> | undefined;
const bodySchema = () => (bodySchemaBuilt ??= buildBodySchema());

function buildBodySchema() {
  const id = z
    .string({ error: 'expected a string' })
    .regex(ID_RE, { message: 'expected 1-128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit' });
  const name = z.string({ error: 'expected a string' }).regex(NAME_RE, {
    message:
      'expected an agent name or party such as "user" (a letter or digit, then letters, digits, ".", "_", ":", "@", "-" or single spaces between words)',
  });
  const shortText = z
    .string({ error: 'expected a string' })
    .min(1, { message: 'must not be empty' })
    .max(256, { message: 'at most 256 characters' });

  const contentSchema: z.ZodType<Content> = z.json({
    error: 'expected a string or a JSON value',
  }) as z.ZodType<Content>;

  return z.strictObject({
    id: id.optional(),
    performative: z.string({ error: `expected one of the 22 FIPA acts, e.g. "request"` }),
    sender: name.optional(),
    receiver: name.optional(),
    receivers: z.array(name, { error: 'expected an array of agent names' }).max(1000).optional(),
    capability: z
      .string({ error: 'expected a string' })
      .regex(CAPABILITY_RE, { message: 'expected a capability such as "data-analysis"' })
      .optional(),
    reply_to: z
      .union([name.transform((s) => [s]), z.array(name).max(100)], {
        error: 'expected an agent name or an array of them',
      })
      .optional(),
    content: contentSchema.optional(),
    language: shortText.optional(),
    encoding: shortText.optional(),
    ontology: shortText.optional(),
    protocol: z.string({ error: 'expected a string' }).optional(),
    conversation_id: id.optional(),
    reply_with: id.optional(),
    in_reply_to: id.optional(),
    reply_by: z.string({ error: 'expected an ISO 8601 time or a duration such as "30s"' }).optional(),
    params: z
      .record(z.string(), z.string({ error: 'expected a string value' }), {
        error: 'expected an object of "X-..." string parameters',
      })
      .optional(),
    trace_context: z
      .strictObject({
        traceparent: z
          .string()
          .regex(TRACEPARENT_RE, { message: 'expected a W3C traceparent such as "00-<32 hex>-<16 hex>-01"' }),
        tracestate: z.string().max(512).optional(),
      })
      .optional(),
  });
}

export interface FieldIssue {
  field: string;
  message: string;
}

function invalid(issues: FieldIssue[]): CaxtonError {
  const first = issues[0]!;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return new CaxtonError('invalid_message', `invalid message: ${first.field}: ${first.message}${more}`, { issues });
}

function fieldOf(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(message)' : path.map(String).join('.');
}

export interface ParseMessageOptions {
  /** The platform-wide limit on the whole message, in bytes. */
  maxMessageSize: number;
  /** Sender when the body names none. */
  defaultSender?: string;
  /** Contract Net proposal deadline when a cfp names no reply_by, ms. */
  defaultCfpDeadlineMs?: number;
  now?: number;
}

/**
 * Turns an untrusted message body (already JSON-parsed) into an AclMessage, or throws a
 * CaxtonError 'invalid_message' / 'payload_too_large' naming the field. Nothing is stored here.
 */
export function parseMessage(body: unknown, opts: ParseMessageOptions, bodySize?: number): AclMessage {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw invalid([{ field: '(message)', message: 'expected a JSON object' }]);
  const size = bodySize ?? Buffer.byteLength(JSON.stringify(body));
  if (size > opts.maxMessageSize) {
    throw new CaxtonError(
      'payload_too_large',
      `the message is ${size} bytes; the server accepts at most ${opts.maxMessageSize} ([messaging] max_message_size)`,
      {
        size,
        limit: opts.maxMessageSize,
        field: 'content',
      },
    );
  }
  // Normalize FIPA spellings and gather X- parameters given at the top level.
  const normalized: Record<string, unknown> = {};
  const params: Record<string, unknown> = {};
  const issues: FieldIssue[] = [];
  for (const [k, v] of Object.entries(body)) {
    if (k.startsWith('X-') || k.startsWith('x-')) {
      params[`X-${k.slice(2)}`] = v;
      continue;
    }
    const key = k.replace(/-/g, '_');
    if (key === 'on_behalf_of') {
      issues.push({
        field: k,
        message: 'is set by the platform (the principal the message acts for: the authenticated sender); leave it out',
      });
      continue;
    }
    if (!(KEYS as readonly string[]).includes(key)) {
      const hint = closest(key, KEYS);
      // A hostile body's key can be as long as the body: named, but not echoed whole into the
      // response and the log.
      const field = k.length > 100 ? `${k.slice(0, 100)}… (${k.length} characters)` : k;
      issues.push({
        field,
        message: `unknown parameter${hint ? `; did you mean "${hint}"?` : ''} (user-defined parameters start with "X-")`,
      });
      continue;
    }
    normalized[key] = v;
  }
  if (issues.length > 0) throw invalid(issues);
  const parsed = bodySchema().safeParse(normalized);
  if (!parsed.success) throw invalid(parsed.error.issues.map((i) => ({ field: fieldOf(i.path), message: i.message })));
  const b = parsed.data;

  const performative = normalizePerformative(b.performative);
  if (!performative) {
    const hint = closest(b.performative.toLowerCase().replace(/_/g, '-'), PERFORMATIVES);
    throw invalid([
      {
        field: 'performative',
        message: `unknown performative "${b.performative}"${hint ? `; did you mean "${hint}"?` : ''}; expected one of: ${PERFORMATIVES.join(', ')}`,
      },
    ]);
  }
  let protocol: Protocol | undefined;
  if (b.protocol !== undefined) {
    protocol = PROTOCOLS.find((p) => p === b.protocol!.toLowerCase());
    if (!protocol)
      throw invalid([
        { field: 'protocol', message: `unknown protocol "${b.protocol}"; expected one of: ${PROTOCOLS.join(', ')}` },
      ]);
  }
  const receivers = [...(b.receivers ?? []), ...(b.receiver !== undefined ? [b.receiver] : [])];
  if (receivers.length === 0 && b.capability === undefined) {
    throw invalid([
      {
        field: 'receivers',
        message: 'a message needs a receiver (an agent name in "receiver"/"receivers") or a "capability" to address',
      },
    ]);
  }
  if (receivers.length > 0 && b.capability !== undefined) {
    throw invalid([{ field: 'capability', message: 'give either receivers or a capability, not both' }]);
  }
  if (b.content === undefined && performative !== 'cancel')
    throw invalid([{ field: 'content', message: 'is required' }]);
  for (const [k, v] of Object.entries({ ...(b.params ?? {}), ...params })) {
    if (!PARAM_RE.test(k))
      issues.push({
        field: `params.${k}`,
        message: 'user-defined parameter names start with "X-" followed by letters, digits, ".", "_" or "-"',
      });
    else if (typeof v !== 'string') issues.push({ field: k, message: 'expected a string value' });
  }
  if (issues.length > 0) throw invalid(issues);

  const now = opts.now ?? Date.now();
  let replyBy: string | undefined;
  if (b.reply_by !== undefined) {
    const rel = /[a-z]$/i.test(b.reply_by.trim()) ? parseDuration(b.reply_by) : undefined;
    const t = rel !== undefined ? now + rel : Date.parse(b.reply_by);
    if (!Number.isFinite(t))
      throw invalid([
        { field: 'reply_by', message: `"${b.reply_by}" is neither an ISO 8601 time nor a duration such as "30s"` },
      ]);
    // Date can represent ±8.64e15 ms; beyond that toISOString throws.
    if (Math.abs(t) > 8.64e15)
      throw invalid([
        {
          field: 'reply_by',
          message: `"${b.reply_by}" is out of range: use a time before the year 275760 or a shorter duration`,
        },
      ]);
    replyBy = new Date(t).toISOString();
  } else if (performative === 'cfp' && opts.defaultCfpDeadlineMs !== undefined) {
    replyBy = new Date(now + opts.defaultCfpDeadlineMs).toISOString();
  }
  protocol ??= b.in_reply_to === undefined ? defaultProtocol(performative) : undefined;
  const allParams = { ...(b.params ?? {}), ...(params as Record<string, string>) };
  const termIssues = roundTermIssues(protocol, performative, allParams, b.in_reply_to);
  if (termIssues.length > 0) throw invalid(termIssues);
  const select = allParams['X-select'];
  if (performative === 'cfp' && select !== undefined && parseSelect(select, 'price') === undefined)
    throw invalid([
      {
        field: 'params.X-select',
        message: `"${select}" is not a selection rule: expected "lowest", "highest" or "first" (ranking on X-select-field), or keys such as "lowest price, then fewest delivery_days"`,
      },
    ]);
  return {
    id: (b.id ?? newMessageId()) as MessageId,
    performative,
    sender: b.sender ?? opts.defaultSender ?? 'user',
    receivers: [...new Set(receivers)],
    ...(b.capability !== undefined && { capability: b.capability }),
    ...(b.reply_to !== undefined && { reply_to: b.reply_to }),
    // `=== undefined`, not `??`: a JSON null is a content value (Content includes null, the schema
    // accepts it, and it passed the "is required" check above) and must not become "".
    content: b.content === undefined ? '' : b.content,
    ...(b.language !== undefined && { language: b.language }),
    ...(b.encoding !== undefined && { encoding: b.encoding }),
    ...(b.ontology !== undefined && { ontology: b.ontology }),
    ...(protocol !== undefined && { protocol }),
    conversation_id: (b.conversation_id ?? newConversationId()) as ConversationId,
    ...(b.reply_with !== undefined && { reply_with: b.reply_with }),
    ...(b.in_reply_to !== undefined && { in_reply_to: b.in_reply_to }),
    ...(replyBy !== undefined && { reply_by: replyBy }),
    params: allParams,
    ...(b.trace_context !== undefined && { trace_context: b.trace_context }),
    timestamp: new Date(now).toISOString(),
    chain: [],
  };
}
