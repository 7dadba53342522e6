/**
 * A participant failed alone is audited (`conversation.participant_failed`) and shown by the
 * conversation read, on one node's bus over a real SQLite file. (The protocol's side of it runs in
 * the bus contract, test/messaging/contract/participant-failure.ts, on both configurations.)
 */
import { afterAll, afterEach, expect, it } from 'vitest';
import { AgentRegistry } from '../../src/agents/index.js';
import { MemoryAuditSink } from '../../src/audit/index.js';
import { MESSAGING_MIGRATIONS, MessageBus } from '../../src/messaging/sqlite/index.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { agentDef, deploy, messagingConfig } from './helpers.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});
afterAll(() => removeTempDirs());

it('a dead bidder of a Contract Net is audited once per dead letter, and listed once by the conversation', async () => {
  const db = openDatabase(makeTempDir('caxton-participant-'));
  migrate(db, MESSAGING_MIGRATIONS);
  const registry = new AgentRegistry();
  for (const name of ['c1', 'c5']) deploy(registry, agentDef(name, ['ship']));
  const audit = new MemoryAuditSink();
  const bus = new MessageBus({
    db,
    registry,
    config: messagingConfig({ max_attempts: 2, retry_base: 10, retry_max: 20 }),
    audit,
  });
  bus.registerHandler('c1', (m) =>
    m.performative === 'cfp' ? { performative: 'propose', content: { price: 4 } } : { content: 'done' },
  );
  bus.registerHandler('c5', () => {
    throw new CaxtonError('llm_error', 'connect ECONNREFUSED 127.0.0.1:9');
  });
  bus.start();
  closers.push(async () => {
    await bus.close();
    db.close();
  });
  const r = await bus.submit({
    performative: 'cfp',
    protocol: 'fipa-contract-net',
    sender: 'buyer',
    capability: 'ship',
    content: 'x',
  });
  expect((await bus.wait(r.conversation_id, 20_000)).state).toBe('completed');

  const [dead] = (await bus.reads.deadLetters()).items;
  const rows = audit.entries.filter((e) => e.action === 'conversation.participant_failed');
  expect(rows).toEqual([
    expect.objectContaining({
      action: 'conversation.participant_failed',
      target: r.conversation_id,
      outcome: 'error',
      details: expect.objectContaining({ participant: 'c5', dead_letter: dead!.id }),
    }),
  ]);
  const { conversation } = await bus.reads.getConversation(r.conversation_id);
  expect(conversation.failed_participants).toEqual([
    {
      agent: 'c5',
      reason: expect.stringMatching(/^delivery to "c5" failed 2 times; last error: .*ECONNREFUSED/),
      dead_letter: dead!.id,
      at: expect.any(String),
    },
  ]);
});
