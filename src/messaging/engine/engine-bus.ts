import { EventEmitter } from 'node:events';
import { parseBody, submitBody } from '../bus-rules.js';
import type { MessagingConfig } from '../config.js';
import type { BusEvent } from '../events.js';
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

  constructor() {
    super();
    this.setMaxListeners(0);
  }

  /** Builds the engine over this bus's adapters (`busConfig` set first). */
  protected buildEngine(parts: EngineParts, settings: EngineSettings): void {
    const { principals, agentHandler, tracer, metrics, signer, audit } = settings;
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
    return submitBody(this.busConfig, body, opts, (m, hints) => this.send(m, hints));
  }

  /** Sends a typed message (see DeliveryEngine.send). */
  send(m: AclMessage, hints: SendHints = {}): Promise<SubmitResult> {
    return this.engine.send(m, hints);
  }
}
