/**
 * Typed protocol acts: when a model-driven agent answers a protocol step whose answer is a value
 * — a cfp (Contract Net, an auction round, an iterated call) or a query-ref — its model is offered
 * the acts the step allows as tools with JSON schemas (`propose {price, currency?, terms?,
 * valid_until?, ...the agent's bid fields}`, `refuse {reason}`, `inform {answer}`, `failure
 * {reason}`), and forced to call one where the provider follows tool_choice (run-agent.ts). The
 * call's arguments, checked here against the schema, become the reply's content: a bid is a typed
 * value that the selection rules read as such, never a number guessed from the model's prose.
 */
import type { AgentDefinition, BidField } from '../agents/index.js';
import type { JsonSchema, ToolCall, ToolSpec } from '../llm/index.js';
import { CaxtonError } from '../shared/errors.js';
import type { AclMessage, Content } from './message.js';
import { allowedReplies, type Performative } from './performatives.js';

const REASON: JsonSchema = {
  type: 'object',
  properties: { reason: { type: 'string', description: 'why, in one or two sentences' } },
  required: ['reason'],
  additionalProperties: false,
};

/** What the price of a proposal means in each protocol. */
const PRICE_MEANS: Record<string, string> = {
  'fipa-english-auction': 'your bid: the asking price of this round',
  'fipa-dutch-auction': 'your bid: the asking price of this round',
  'fipa-iterated-contract-net': 'your price for the task; to stay in the running, improve on best_offer',
};

/** The acts the step of `m` may be answered with, as tools; empty when its answer is free text. */
export function actsFor(m: AclMessage, def: Pick<AgentDefinition, 'messaging'>): ToolSpec[] {
  const allowed = new Set<Performative>(allowedReplies(m.performative));
  const acts: ToolSpec[] = [];
  if (m.performative === 'cfp') {
    if (allowed.has('propose')) acts.push(proposeAct(m, def.messaging.bid_fields ?? {}));
    if (allowed.has('refuse'))
      acts.push({ name: 'refuse', description: 'Decline to bid on this call, with the reason.', input_schema: REASON });
  } else if (m.performative === 'query-ref') {
    if (allowed.has('inform'))
      acts.push({
        name: 'inform',
        description: 'Answer the query with the object(s) it refers to.',
        input_schema: {
          type: 'object',
          properties: { answer: { description: 'the object(s) the query refers to: text, a number or JSON' } },
          required: ['answer'],
          additionalProperties: false,
        },
      });
    if (allowed.has('refuse'))
      acts.push({ name: 'refuse', description: 'Decline to answer, with the reason.', input_schema: REASON });
    if (allowed.has('failure'))
      acts.push({ name: 'failure', description: 'You tried and could not answer: say why.', input_schema: REASON });
  }
  return acts;
}

function proposeAct(m: AclMessage, own: Record<string, BidField>): ToolSpec {
  const properties: Record<string, JsonSchema> = {
    price: {
      type: 'number',
      description:
        m.protocol !== undefined && PRICE_MEANS[m.protocol] ? PRICE_MEANS[m.protocol] : 'your price for the task',
    },
    currency: { type: 'string', description: 'ISO 4217 currency code of the price, e.g. EUR' },
    terms: { type: 'string', description: 'your conditions, in words' },
    valid_until: { type: 'string', format: 'date-time', description: 'when the offer lapses (ISO 8601)' },
  };
  const required = ['price'];
  for (const [name, f] of Object.entries(own)) {
    properties[name] = {
      type: f.type,
      ...(f.description !== undefined && { description: f.description }),
      ...(f.minimum !== undefined && { minimum: f.minimum }),
      ...(f.maximum !== undefined && { maximum: f.maximum }),
    };
    if (f.required) required.push(name);
  }
  return {
    name: 'propose',
    description: 'Make your proposal: its price and terms, as values.',
    input_schema: { type: 'object', properties, required, additionalProperties: false },
  };
}

/**
 * The reply a call of one of `acts` makes: its performative, and its arguments as content (a
 * proposal's fields; a refusal's or failure's reason; an inform's answer). Undefined when no act
 * was called. Arguments that do not fit the act's schema are the model's error
 * (invalid_structured_output), so the delivery fails and is retried like any failed execution.
 */
export function answerFromActs(
  agent: string,
  calls: readonly ToolCall[],
  acts: readonly ToolSpec[],
  def: Pick<AgentDefinition, 'messaging'>,
): { performative: Performative; content: Content } | undefined {
  const call = calls.find((c) => acts.some((a) => a.name === c.name));
  if (!call) return undefined;
  const args = call.arguments;
  const bad = (field: string, what: string): CaxtonError =>
    new CaxtonError(
      'invalid_structured_output',
      `the model of agent "${agent}" called "${call.name}" with ${field} ${what}; the call was not sent as a reply`,
      { agent, act: call.name, field },
    );
  if (call.name === 'refuse' || call.name === 'failure') {
    if (typeof args.reason !== 'string' || args.reason.trim() === '') throw bad('reason', 'missing or not text');
    return { performative: call.name, content: args.reason };
  }
  if (call.name === 'inform') {
    if (!('answer' in args)) throw bad('answer', 'missing');
    return { performative: 'inform', content: args.answer as Content };
  }
  const content: Record<string, Content> = {};
  if (typeof args.price !== 'number' || !Number.isFinite(args.price)) throw bad('price', 'missing or not a number');
  content.price = args.price;
  for (const f of ['currency', 'terms', 'valid_until'] as const) {
    const v = args[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw bad(f, 'not text');
    if (f === 'valid_until' && Number.isNaN(Date.parse(v))) throw bad(f, 'not an ISO 8601 time');
    content[f] = v;
  }
  for (const [name, f] of Object.entries(def.messaging.bid_fields ?? {})) {
    const v = args[name];
    if (v === undefined || v === null) {
      if (f.required) throw bad(name, 'missing (the agent requires it)');
      continue;
    }
    content[name] = checkField(name, v, f, bad);
  }
  return { performative: 'propose', content };
}

function checkField(name: string, v: unknown, f: BidField, bad: (field: string, what: string) => CaxtonError): Content {
  if (f.type === 'string' || f.type === 'boolean') {
    if (typeof v !== f.type) throw bad(name, `not a ${f.type}`);
    return v as Content;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(name, 'not a number');
  if (f.type === 'integer' && !Number.isInteger(v)) throw bad(name, 'not an integer');
  if (f.minimum !== undefined && v < f.minimum) throw bad(name, `below its minimum ${f.minimum}`);
  if (f.maximum !== undefined && v > f.maximum) throw bad(name, `above its maximum ${f.maximum}`);
  return v;
}
