import { EventEmitter } from 'node:events';
import { parseBody, submission, submitBody } from '../bus-rules.js';
import { CaxtonError } from '../../shared/errors.js';
import { checkSubmission, replayedSubmission, submissionSeenAs } from '../outside-signature.js';
import type { MessageSigner } from '../signature.js';
import type { MessagingConfig } from '../messaging-config.js';
import type { BusEvent } from '../bus-events.js';
import type { AclMessage } from '../message.js';
import type { SendHints, SubmitOptions, SubmitResult } from '../submission.js';
import { DeliveryEngine, type EngineOptions, type InProcessHandler, type MessageHandler } from './engine.js';

/** The adapters a bus gives its engine. */
type EngineParts = Pick<EngineOptions, 'store' | 'queue' | 'directory' | 'router' | 'log' | 'emit' | 'running'>;
/** What the bus's caller configures and the engine takes as it is. */
type EngineSettings = Pick<EngineOptions, 'principals' | 'agentHandler' | 'tracer' | 'metrics' | 'signer' | 'audit'>;

/** What both buses answer alike from their engine: handlers, parsing, submitting and sending. */
export abstract class EngineBus extends EventEmitter<{ event: [BusEvent] }> {
  /** Set by the bus's constructor. */
  protected engine!: DeliveryEngine;
  protected busConfig!: MessagingConfig;
  /** `[messaging] signing`: checks the signatures of messages from outside. */
  #signer: MessageSigner | undefined;

  constructor() {
    super();
    this.setMaxListeners(0);
  }

  /**
   * Resolves once what happens on any node from now on reaches this bus's listeners: at once on one
   * node; in a cluster, once NATS has the subscription a listener opened (ClusterBus).
   */
  listening(): Promise<void> {
    return Promise.resolve();
  }

  /** Builds the engine over this bus's adapters (`busConfig` set first). */
  protected buildEngine(parts: EngineParts, settings: EngineSettings): void {
    const { principals, agentHandler, tracer, metrics, signer, audit } = settings;
    this.#signer = signer;
    this.engine = new DeliveryEngine({
      config: this.busConfig,
      ...parts,
      principals,
      agentHandler,
      tracer,
      metrics,
      signer,
      audit,
    });
  }

  /** Sets the handler that runs configuration agents (the executor-backed one in the server). */
  setAgentHandler(handler: MessageHandler): void {
    this.engine.setAgentHandler(handler);
  }

  /** Registers an in-process handler for an agent name (system agents, benchmarks). */
  registerHandler(agent: string, handler: InProcessHandler): void {
    this.engine.registerHandler(agent, handler);
  }

  unregisterHandler(agent: string): void {
    this.engine.unregisterHandler(agent);
  }

  /** Validates an untrusted body into a message (throws 'invalid_message' or 'payload_too_large'). */
  parse(body: unknown, opts: { bodySize?: number; sender?: string } = {}): AclMessage {
    return parseBody(this.busConfig, body, opts);
  }

  /**
   * Validates an untrusted body (REST) and sends it. Nothing is stored when it is invalid.
   * `traceparent` (the submitting request's) is the message's trace context unless it has its own.
   */
  submit(body: unknown, opts: SubmitOptions = {}): Promise<SubmitResult> {
    if (typeof body === 'object' && body !== null && !Array.isArray(body) && 'signature' in body)
      return this.#submitSigned(body as Record<string, unknown>, opts);
    return submitBody(this.busConfig, body, opts, (m, hints) => this.send(m, hints));
  }

  /**
   * A message its caller signed (ADR 0115): the signature checked for the caller, the message
   * stored with who signed it, and accepted once — a copy sent again is refused as a replay.
   */
  async #submitSigned(body: Record<string, unknown>, opts: SubmitOptions): Promise<SubmitResult> {
    if (!this.#signer)
      throw new CaxtonError(
        'invalid_message',
        'invalid message: signature: this server does not take signed messages; its operator sets [messaging] signing = true',
        { issues: [{ field: 'signature', message: 'signing is off on this server' }], reason: 'signing_off' },
      );
    const principal = opts.principal?.id ?? (typeof body.sender === 'string' ? body.sender : 'user');
    const checked = checkSubmission(this.#signer.keys, body, principal);
    const sub = submission(this.busConfig, checked.body, opts);
    const m = { ...sub.message, signed_by: checked.signedBy };
    const seen = this.#signer.seen;
    const as = submissionSeenAs(checked.signedBy.key);
    if (seen && !(await seen.claim(m.id, as))) throw replayedSubmission(m.id);
    let out: SubmitResult;
    try {
      out = await this.send(m, sub.hints);
    } catch (e) {
      await seen?.release(m.id, as);
      throw e;
    }
    if (out.duplicate)
      throw new CaxtonError(
        'conflict',
        `message id ${m.id} is taken by another message; sign a new message with a new id`,
        { reason: 'id_taken', field: 'id', id: m.id },
      );
    return out;
  }

  /** Sends a typed message (see DeliveryEngine.send). */
  send(m: AclMessage, hints: SendHints = {}): Promise<SubmitResult> {
    return this.engine.send(m, hints);
  }
}
