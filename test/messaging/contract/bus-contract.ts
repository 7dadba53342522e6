/**
 * The contract every `MessagingBus` keeps, written once and run against each configuration (as
 * Hono runs one router suite against each of its routers): single-node.test.ts (SQLite) and
 * cluster.test.ts (PostgreSQL + JetStream). Each case builds a started bus through the
 * configuration's factory, drives it with in-process handlers, and checks what anyone can observe:
 * the conversation's state and reason, the stored messages and deliveries, dead letters, events,
 * errors and spans. A case a configuration does not keep yet is named in its `differs` with what
 * differs; it runs as `it.fails`, so it turns red the day the difference is gone and the entry can go.
 *
 * The cases are in parts beside this file: delivery-cases.ts, retry-cases.ts,
 * conversation-cases.ts, round-protocols.ts, participant-failure.ts and fipa-sequences.ts.
 */
import { afterEach, describe } from 'vitest';
import { conversationCases } from './conversation-cases.js';
import { harness, type BusFactory, type ContractOptions } from './contract-kit.js';
import { deliveryCases } from './delivery-cases.js';
import { fipaSequenceCases } from './fipa-sequences.js';
import { participantFailureCases } from './participant-failure.js';
import { retryCases } from './retry-cases.js';
import { runRoundContract } from './round-protocols.js';

export type { BusFactory, ContractBus, ContractCase, ContractOptions, ContractSetup } from './contract-kit.js';

export function runBusContract(name: string, factory: BusFactory, opts: ContractOptions = {}): void {
  runRoundContract(name, factory, opts);
  participantFailureCases(name, factory, opts);
  fipaSequenceCases(name, factory, opts);
  const h = harness(factory, opts);
  describe.runIf(opts.runs ?? true)(`bus contract: ${name}`, () => {
    afterEach(() => h.cleanup());
    deliveryCases(h);
    retryCases(h);
    conversationCases(h);
  });
}
