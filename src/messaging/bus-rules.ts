/**
 * What both buses (the single-node `MessageBus` and the cluster's `ClusterBus`) decide the same
 * way about a submission: how a body becomes a message, whom it may go to, how a reply looks and
 * what a duplicate answers. One place, so the two cannot drift apart. Retries are
 * delivery-retries.ts's, conversations conversation-rules.ts's.
 */
import { checkSend, unknownPrincipal, type ActingPrincipals, type SendScope } from '../auth/index.js';
import { CaxtonError, isCaxtonError } from '../shared/errors.js';
import type { InProcessReceiver } from './engine/engine.js';
import type { MessagingConfig } from './messaging-config.js';
import { contentSize, newMessageId, replyAddress, withTraceContext, type AclMessage, type Content } from './message.js';
import type { Performative } from './performatives.js';
import type { RouteDecision, Router } from './router.js';
import type { StoredMessage } from './rows.js';
import type { SendHints, SubmitOptions, SubmitResult } from './submission.js';
import { parseMessage } from './message-validate.js';
import { iso as nowIso } from './engine/step-work.js';

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
  if (opts.principal !== undefined) m = { ...m, on_behalf_of: opts.principal.id };
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
export function checkCredential(ended: Pick<AbortSignal, 'aborted' | 'reason'> | undefined): void {
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
