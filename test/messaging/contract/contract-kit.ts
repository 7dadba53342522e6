/**
 * What every part of the bus contract shares: the configuration's factory and its options, the
 * helpers that start, restart and wait on a bus, and the cleanup after each case.
 */
import type { Tracer } from '@opentelemetry/api';
import { expect, it } from 'vitest';
import type { AgentRegistry } from '../../../src/agents/index.js';
import type { ActingPrincipals } from '../../../src/auth/index.js';
import {
  type AclMessage,
  type Conversation,
  type ConversationId,
  type InProcessHandler,
  type MessagingBus,
  type MessagingConfig,
} from '../../../src/messaging/index.js';
import { CaxtonError } from '../../../src/shared/errors.js';

/** What a case asks of a configuration: agents deployed, handlers registered, and the options it varies. */
export interface ContractSetup {
  /** Agents deployed before the bus starts: [name, capabilities]. */
  agents: [string, string[]][];
  /** In-process handlers registered before the bus starts, by agent name. */
  handlers: Record<string, InProcessHandler>;
  config?: Partial<MessagingConfig>;
  /**
   * The most deliveries the node takes in hand at once (a cluster node's `max_held`); the rest wait
   * in the queue. One node's in-process queue holds every delivery: it ignores this.
   */
  inHandAtMost?: number;
  /** Spans go here when given. */
  tracer?: Tracer;
  /** Resolves `on_behalf_of` to the principal whose scope applies. */
  principals?: ActingPrincipals;
}

/** A started bus built by a configuration's factory. */
export interface ContractBus {
  bus: MessagingBus;
  registry: AgentRegistry;
  /** Closes this bus and starts a new one over the same store, with `handlers` registered instead. */
  restart(handlers: Record<string, InProcessHandler>): Promise<ContractBus>;
  /** Closes the bus and what the factory opened for it. */
  close(): Promise<void>;
}

export type BusFactory = (setup: ContractSetup) => Promise<ContractBus>;

/** The cases of the contract, by name (the keys of a configuration's `differs`). */
export type ContractCase =
  | 'request'
  | 'inform'
  | 'capability'
  | 'retry'
  | 'backoff'
  | 'dead-letter'
  | 'replay'
  | 'reroute'
  | 'undeliverable'
  | 'turn-limit'
  | 'closed'
  | 'duplicate'
  | 'restart'
  | 'trace'
  | 'trace-retry'
  | 'contract-net'
  | 'contract-net-sync'
  | 'scope'
  | 'unroutable'
  | 'query'
  | 'failure-reply'
  | 'expiry'
  | 'subscribe'
  | 'history'
  | 'stats-retrying'
  | 'queue-full'
  | 'queue-full-message'
  | 'queue-full-waiting';

export interface ContractOptions {
  /** Whether the configuration can run here (its system parts are installed). */
  runs?: boolean;
  /** Cases this configuration does not keep yet, each with what differs: run as `it.fails`. */
  differs?: Partial<Record<ContractCase, string>>;
}

/** The deadline of one wait for a conversation to end: generous, a cluster test on two busy cores is slow. */
export const WAIT_MS = 20_000;
export const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

export const terminal = (c: Conversation) => c.state !== 'initiated' && c.state !== 'in_progress';

export async function errorOf(p: Promise<unknown>): Promise<CaxtonError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CaxtonError);
  return e as CaxtonError;
}

/** A handler's error the bus retries (an overloaded model). */
export const overloaded = () => new CaxtonError('llm_error', 'model overloaded');

/** A promise and its resolver: holds a handler until the case lets it go. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

/** Waits for `g` or the bus stopping the delivery (so close never waits on a held handler). */
export const held = (g: { wait: Promise<void> }, signal: AbortSignal) =>
  Promise.race([
    g.wait,
    new Promise<never>((_, reject) =>
      signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true }),
    ),
  ]);

/** What a part of the contract is given: buses it starts are closed and held handlers released after each case. */
export interface Harness {
  readonly open: ContractBus[];
  start(setup: ContractSetup): Promise<ContractBus>;
  restart(t: ContractBus, handlers: Record<string, InProcessHandler>): Promise<ContractBus>;
  hold(): { wait: Promise<void>; open: () => void };
  /** `it`, or `it.fails` with the reason when this configuration differs in `c`. */
  kept(c: ContractCase): typeof it | typeof it.fails;
  conversation(bus: MessagingBus, id: ConversationId): ReturnType<MessagingBus['reads']['getConversation']>;
  acts(messages: { message: AclMessage }[]): string[];
  /** Releases held handlers and closes open buses, newest first. */
  cleanup(): Promise<void>;
}

export function harness(factory: BusFactory, opts: ContractOptions): Harness {
  const differs = opts.differs ?? {};
  const open: ContractBus[] = [];
  const gates: (() => void)[] = [];

  const start = async (setup: ContractSetup): Promise<ContractBus> => {
    const t = await factory(setup);
    open.push(t);
    return t;
  };
  const restart = async (t: ContractBus, handlers: Record<string, InProcessHandler>): Promise<ContractBus> => {
    open.splice(open.indexOf(t), 1);
    const next = await t.restart(handlers);
    open.push(next);
    return next;
  };
  const hold = () => {
    const g = gate();
    gates.push(g.open);
    return g;
  };
  /** `it`, or `it.fails` with the reason when this configuration differs in `c`. */
  const kept = (c: ContractCase) => (differs[c] === undefined ? it : it.fails);

  const conversation = async (bus: MessagingBus, id: ConversationId) => {
    const c = await bus.wait(id, WAIT_MS);
    expect(terminal(c), `conversation ${id} still ${c.state} after ${WAIT_MS} ms`).toBe(true);
    return bus.reads.getConversation(id);
  };
  const acts = (messages: { message: AclMessage }[]) =>
    messages.map((s) => `${s.message.performative}:${s.message.sender}`);

  const cleanup = async () => {
    for (const g of gates.splice(0)) g();
    for (const t of open.splice(0).reverse()) await t.close();
  };
  return { open, start, restart, hold, kept, conversation, acts, cleanup };
}
