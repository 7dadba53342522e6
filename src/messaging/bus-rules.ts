/**
 * What both buses (the single-node `MessageBus` and the cluster's `ClusterBus`) decide the same
 * way: how a body becomes a message, which errors are retried or dead-lettered, how a reply and a
 * new conversation look, how a message counts in its conversation, and what a duplicate answers.
 * One place, so the two cannot drift apart.
 */
import { checkSend, unknownPrincipal, type ActingPrincipals, type SendScope } from '../auth/index.js';
import { CaxtonError, isCaxtonError, type ErrorCode } from '../shared/errors.js';
import { backoffDelay } from '../shared/backoff.js';
import { COPY_ROOT } from '../shared/objects.js';
import type { InProcessReceiver } from './engine/engine.js';
import type { MessagingConfig } from './config.js';
import { isTerminal, type Conversation } from './conversation.js';
import { contentSize, newMessageId, replyAddress, withTraceContext, type AclMessage, type Content } from './message.js';
import { expectsReply, type Performative } from './performatives.js';
import type { RouteDecision, Router } from './router.js';
import type { StoredMessage } from './rows.js';
import type { SendHints, SubmitOptions, SubmitResult } from './submission.js';
import { parseMessage } from './validate.js';
import { iso as nowIso, isoClock } from './engine/step-work.js';

/** Errors worth another delivery attempt: the agent could succeed next time. */
export const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'llm_error',
  'isolation_failure',
  'not_ready',
  'rate_limited',
  'internal',
  'cancelled',
]);
/** Errors that make a message undeliverable until an operator acts: straight to the dead-letter queue. */
export const UNDELIVERABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'agent_not_found',
  'invalid_config',
  'configuration_error',
  'invalid_request',
  'payload_too_large',
  'tool_not_allowed',
  'forbidden',
]);

/** Conversation expiries (now + ttl): within one millisecond every new conversation gets the same. */
const expiryIso = isoClock();

/**
 * Whether and in how many ms a failed delivery is tried again; counts the attempt in `d`. A
 * delivery refused because its acting principal (or the agent, or the node: `max_in_flight`)
 * already runs as many executions as it may has not failed: it waits for a slot and tries again
 * without spending an attempt, so it is neither dead-lettered nor lost. Other retryable errors back off exponentially, at least as long
 * as a rate limit asks, until `max_attempts`. Undefined: no retry (dead letter or failure reply).
 */
export function retryDelay(cfg: MessagingConfig, d: { attempts: number }, e: unknown): number | undefined {
  const code: ErrorCode = isCaxtonError(e) ? e.code : 'internal';
  const details =
    isCaxtonError(e) && typeof e.details === 'object' && e.details !== null
      ? (e.details as Record<string, unknown>)
      : {};
  const jitter = (ms: number) => Math.round(ms * (0.8 + Math.random() * 0.4));
  const asked = code === 'rate_limited' && typeof details.retry_after === 'number' ? details.retry_after * 1000 : 0;
  if (code === 'rate_limited' && (details.limit === 'concurrency' || details.limit === 'in_flight'))
    return jitter(Math.min(cfg.retry_max, Math.max(cfg.retry_base, asked)));
  // The run waits for a person (src/execution/runs): asked again now and then, never spending an
  // attempt; once someone decides, the run goes on and the next delivery answers with its result.
  if (code === 'awaiting_approval') return jitter(cfg.retry_max);
  // The run was cancelled by an operator (src/execution/runs): asking again would find it cancelled.
  if (code === 'cancelled' && details.reason === 'run_cancelled') return undefined;
  d.attempts++;
  if (!RETRYABLE.has(code) || d.attempts >= cfg.max_attempts) return undefined;
  return jitter(
    Math.min(
      cfg.retry_max,
      Math.max(backoffDelay(d.attempts - 1, { baseMs: cfg.retry_base, maxMs: cfg.retry_max }), asked),
    ),
  );
}

/** Validates an untrusted body into a message (throws 'invalid_message' or 'payload_too_large'). */
export function parseBody(
  cfg: MessagingConfig,
  body: unknown,
  opts: { bodySize?: number; sender?: string } = {},
): AclMessage {
  return parseMessage(
    body,
    {
      maxMessageSize: cfg.max_message_size,
      defaultCfpDeadlineMs: cfg.cfp_deadline,
      ...(opts.sender !== undefined && { defaultSender: opts.sender }),
    },
    opts.bodySize,
  );
}

/**
 * A REST body as a message and the hints for sending it: `traceparent` (the submitting request's)
 * is the message's trace context unless it has its own; ids the body left out were generated here.
 */
export function submission(
  cfg: MessagingConfig,
  body: unknown,
  opts: SubmitOptions,
): { message: AclMessage; hints: SendHints } {
  let m = parseBody(cfg, body, opts);
  if (m.trace_context === undefined && opts.traceparent !== undefined)
    m = withTraceContext(m, { traceparent: opts.traceparent });
  if (opts.principal !== undefined) m = { ...COPY_ROOT, ...m, on_behalf_of: opts.principal.id };
  const b = body as Record<string, unknown>;
  return {
    message: m,
    hints: {
      newId: b.id === undefined,
      newConversation: b.conversation_id === undefined && b['conversation-id'] === undefined,
      ...(opts.principal !== undefined && { principal: opts.principal }),
      ...(opts.credentialEnded !== undefined && { credentialEnded: opts.credentialEnded }),
    },
  };
}

/**
 * What the principal a message acts for may send (src/auth/scope-send.ts): throws 403 when a named
 * receiver or the capability is outside its scope, 403 principal_unknown when the id no longer
 * names a valid principal, 429 when it has used up its tokens; else the routing filter for the
 * router. Both buses call it for every message they accept, whoever sent it. Without
 * `principals` (a bus built without authentication: tests, benchmarks) nothing is checked.
 */
export function sendScopeOf(
  m: AclMessage,
  hints: SendHints,
  principals: ActingPrincipals | undefined,
  admit = true,
): SendScope | undefined {
  const id = m.on_behalf_of;
  if (id === undefined || principals === undefined) return undefined;
  const p = hints.principal?.id === id ? hints.principal : principals.resolve(id);
  if (p === undefined) throw unknownPrincipal(id);
  const scope = checkSend(p, m);
  if (admit) principals.admitSend(p);
  return scope;
}

/**
 * Routes a message the platform moves on its own (a delivery whose receiver was removed, a Contract
 * Net's award), as its acting principal may send it: a refusal (the principal's scope changed, or
 * it is no longer valid) is a route failure rather than an error, as nobody waits to be told.
 */
export function routeForPrincipal(
  router: Router,
  m: AclMessage,
  principals: ActingPrincipals | undefined,
): RouteDecision {
  try {
    // The message was admitted when it was sent: only where it may go is decided again.
    return router.route(m, sendScopeOf(m, {}, principals, false));
  } catch (e) {
    return { ok: false, reason: 'out_of_scope', message: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * Throws why the sender's credential ended, when it has: a message is refused unless its
 * credential is still valid when it is stored. Once stored it stands (its caller was answered,
 * or is waiting for the conversation), and a revoke ends only the wait.
 */
export function checkCredential(ended: AbortSignal | undefined): void {
  if (!ended?.aborted) return;
  throw isCaxtonError(ended.reason)
    ? ended.reason
    : new CaxtonError(
        'unauthenticated',
        'the credential this message was sent with ended before the message was stored; send it again with a valid one',
        { reason: 'credential_ended' },
      );
}

/** Validates a REST body and hands it to `send`; an invalid body rejects and nothing is sent. */
export function submitBody(
  cfg: MessagingConfig,
  body: unknown,
  opts: SubmitOptions,
  send: (m: AclMessage, hints: SendHints) => Promise<SubmitResult>,
): Promise<SubmitResult> {
  let sub: ReturnType<typeof submission>;
  try {
    sub = submission(cfg, body, opts);
  } catch (e) {
    return Promise.reject(e);
  }
  return send(sub.message, sub.hints);
}

/** Refuses content larger than a receiver accepts (its `limits.max_message_size`). */
export function checkReceiverLimits(m: AclMessage, decision: RouteDecision): void {
  if (!decision.ok) return;
  const size = contentSize(m.content);
  for (const r of decision.receivers) {
    const limit = r.definition.limits.max_message_size;
    if (size > limit) {
      throw new CaxtonError(
        'payload_too_large',
        `the content is ${size} bytes; agent "${r.agent}" accepts at most ${limit} (its limits.max_message_size)`,
        {
          size,
          limit,
          field: 'content',
          agent: r.agent,
        },
      );
    }
  }
}

/** What a message id sent again answers: the stored message's result, marked as a duplicate. */
export function duplicateResult(s: StoredMessage, duplicate: boolean): SubmitResult {
  const m = s.message;
  return {
    id: m.id,
    conversation_id: m.conversation_id,
    performative: m.performative,
    routed_to: s.routed_to,
    routing:
      s.routed_to.length === 0 ? 'none' : m.receivers.length > 0 ? 'named' : s.routed_to.length > 1 ? 'all' : 'one',
    duplicate,
  };
}

/** A new conversation started by `m`: its turn budget is the tightest of its receivers' (not for endless protocols). */
export function newConversation(
  m: AclMessage,
  now: string,
  decision: RouteDecision,
  cfg: MessagingConfig,
  endless: boolean,
): Conversation {
  let maxTurns = cfg.max_conversation_turns;
  if (decision.ok && !endless)
    for (const r of decision.receivers) maxTurns = Math.min(maxTurns, Math.max(2, r.definition.conversation.max_turns));
  // The one receiver most messages have is listed already, as `touchConversation` would add it:
  // the list is then made at its size instead of grown.
  const only = decision.ok && decision.receivers.length === 1 ? decision.receivers[0]!.agent : m.sender;
  return {
    id: m.conversation_id,
    protocol: m.protocol ?? null,
    state: 'initiated',
    initiator: m.sender,
    participants: only === m.sender ? [m.sender] : [m.sender, only],
    capability: m.capability ?? null,
    turns: 0,
    max_turns: maxTurns,
    created_at: now,
    updated_at: now,
    expires_at: expiryIso(Date.now() + cfg.conversation_ttl),
    reason: null,
  };
}

/**
 * Counts a message in its conversation: turns, participants, activity, and its expiry (the ttl, or
 * the reply_by of a message expecting a reply; none for an endless protocol).
 */
export function touchConversation(
  conv: Conversation,
  m: AclMessage,
  receivers: readonly string[],
  now: string,
  ttl: number,
  endless: boolean,
): void {
  conv.turns++;
  conv.updated_at = now;
  if (!conv.participants.includes(m.sender)) conv.participants.push(m.sender);
  for (const r of receivers) if (!conv.participants.includes(r)) conv.participants.push(r);
  if (isTerminal(conv.state)) return;
  if (endless) {
    conv.expires_at = null;
    return;
  }
  let expires = Date.now() + ttl;
  if (m.reply_by && m.performative !== 'cfp' && expectsReply(m.performative))
    expires = Math.min(expires, Date.parse(m.reply_by));
  conv.expires_at = expiryIso(expires);
}

/** A reply to `to` from `sender`, in its conversation and trace. */
export function replyTo(
  to: AclMessage,
  sender: string,
  performative: Performative,
  content: Content,
  extra: Partial<AclMessage> = {},
): AclMessage {
  return {
    id: newMessageId(),
    performative,
    sender,
    receivers: replyAddress(to),
    content,
    conversation_id: to.conversation_id,
    in_reply_to: to.reply_with ?? to.id,
    ...(to.protocol !== undefined && { protocol: to.protocol }),
    ...(to.ontology !== undefined && { ontology: to.ontology }),
    ...(to.language !== undefined && typeof content === 'string' && { language: to.language }),
    ...(to.trace_context !== undefined && { trace_context: to.trace_context }),
    params: {},
    timestamp: nowIso(),
    chain: to.chain,
    ...(to.on_behalf_of !== undefined && { on_behalf_of: to.on_behalf_of }),
    ...extra,
  };
}

/** The receiver an in-process handler gets for a name that is not a deployed agent. */
export function undeployedReceiver(agent: string): InProcessReceiver {
  return {
    agent,
    description: '',
    capabilities: [],
    protocols: [],
    ontologies: [],
    languages: [],
    max_concurrency: undefined,
  };
}
