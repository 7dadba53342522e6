/**
 * The delivery engine's contract with the buses that build it and the agents it runs: what an
 * answer is, the handlers, and the engine's options.
 */
import type { AuditSink } from '../../audit/index.js';
import type { ActingPrincipals } from '../../auth/index.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Tracer } from '../../observability/trace-context.js';
import type { MessagingConfig } from '../messaging-config.js';
import type { DirectoryEntry, Directory } from '../directory.js';
import type { BusEvent } from '../bus-events.js';
import type { AclMessage, Content } from '../message.js';
import type { Delivery } from '../dispatcher.js';
import type { Performative } from '../performatives.js';
import type { Router } from '../router.js';
import type { MessageSigner } from '../signature.js';
import type { DeliveryQueue, StepStore } from './ports.js';

/** What an agent answered: the reply act and its content (undefined: no reply). */
export type AgentAnswer = { performative?: Performative; content: Content } | undefined;

/** What a handler gets with the message: the bus's stop signal, the delivery, and the delivery span's trace context. */
export interface HandlerContext {
  signal: AbortSignal;
  delivery: Delivery;
  traceparent?: string;
}

/** Runs a message on one receiver. Configuration agents get the executor-backed handler. */
export type MessageHandler = (
  m: AclMessage,
  receiver: DirectoryEntry,
  ctx: HandlerContext,
) => Promise<AgentAnswer> | AgentAnswer;

/**
 * The receiver an in-process handler gets: its directory entry, or, for a name that is not a
 * deployed agent (a system agent, a benchmark sink), the same fields without a definition.
 */
export type InProcessReceiver = Omit<DirectoryEntry, 'definition'> & {
  readonly definition?: DirectoryEntry['definition'];
};

/** Runs messages for an agent name inside the server (system agents, benchmarks): see `registerHandler`. */
export type InProcessHandler = (
  m: AclMessage,
  receiver: InProcessReceiver,
  ctx: HandlerContext,
) => Promise<AgentAnswer> | AgentAnswer;

/** What became of one delivery attempt (the `status` label of caxton_messages_processed_total). */
export type DeliveryOutcome = 'delivered' | 'failed' | 'retried' | 'dead_letter' | 'rerouted' | 'stopped';

export interface EngineLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
}

export interface EngineOptions {
  config: MessagingConfig;
  store: StepStore;
  queue: DeliveryQueue;
  directory: Directory;
  router: Router;
  principals?: ActingPrincipals | undefined;
  agentHandler?: MessageHandler | undefined;
  log: EngineLog;
  /** Spans: `message.route` on acceptance, `message.deliver` around each delivery. */
  tracer?: Tracer | undefined;
  /** caxton_messages_processed_total and caxton_message_processing_duration_seconds. */
  metrics?: Metrics | undefined;
  /** `[messaging] signing` (ADR 0059): signs what is stored, verifies what is delivered. */
  signer?: MessageSigner | undefined;
  /** Where a refused signature and a participant failed alone are recorded (the audit trail). */
  audit?: AuditSink | undefined;
  /** Tells listeners what a committed step did, in order. */
  emit(events: readonly BusEvent[]): void;
  /** Whether the bus is running (accepting messages and finishing deliveries). */
  running(): boolean;
}
