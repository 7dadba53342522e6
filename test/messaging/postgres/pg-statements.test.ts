/**
 * Statements per delivered message on a cluster node (src/messaging/cluster/), counted on the
 * pool's connections with the machine's PostgreSQL and a real `nats-server -js`: one-way informs,
 * each opening a conversation, accepted together and delivered to an in-process receiver, so the
 * node's steps form groups as under load. Also the bus events that went out on NATS per message.
 * The figures are printed; the bounds hold them to what the writes are made of (one statement per
 * kind and group, not per message), never to a speed.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../../src/agents/index.js';
import { clusterConfigSchema } from '../../../src/config/index.js';
import { ClusterBus } from '../../../src/messaging/cluster/index.js';
import { PgMessageReads, PgMessageStore } from '../../../src/messaging/postgres/index.js';
import { newConversationId, newMessageId, type AclMessage } from '../../../src/messaging/index.js';
import { aclMessage, agentDef, deploy, messagingConfig } from '../helpers.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { hasSystem, TEST_PG_URL } from '../../helpers/system.js';
import { removeTempDirs } from '../../helpers/tmp.js';
import { waitUntil } from '../../helpers/wait.js';
import { observedPool } from '../cluster/message-stores.js';

const run = hasSystem('nats-server') && hasSystem('postgresql');
const MESSAGES = 200;
const schema = `caxton_stmts_${process.pid}_${Date.now()}`;
let nats: NatsServer;

/** Each statement sent, by its first words (a multi-statement simple query counts each of its statements). */
const kinds = new Map<string, number>();
let counting = false;
/** Queries sent (a multi-statement simple query is one): the round trips. */
let roundTrips = 0;
function count(q: unknown): void {
  if (!counting) return;
  roundTrips++;
  const text = typeof q === 'string' ? q : ((q as { text?: string }).text ?? '');
  for (const st of text.split(/;\s*\n|;\s+(?=[A-Z])/)) {
    const words = st.trim().split(/\s+/);
    if (words[0] === '') continue;
    const from = /\bFROM\s+("[^"]*"\.)?(\w+)/i.exec(st)?.[2];
    const kind = /^(INSERT|UPDATE|DELETE)$/i.test(words[0]!)
      ? `${words[0]} ${(words[0] === 'INSERT' || words[0] === 'DELETE' ? words[2] : words[1])!.replace(/^"[^"]*"\./, '')}`
      : `${words[0]!.toUpperCase()}${from && words[0]!.toUpperCase() === 'SELECT' ? ` ${from}` : ''}`;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
}

beforeAll(async () => {
  if (run) nats = await startNatsServer();
});
afterAll(async () => {
  await nats?.stop();
  removeTempDirs();
});

describe.runIf(run)('statements per delivered message', () => {
  it('one-way informs: the writes go per group, not per message; events go out batched', async () => {
    const pool = observedPool(4, count);
    const check = new pg.Pool({ connectionString: TEST_PG_URL, max: 1 });
    const nc: NatsConnection = await connect({ servers: nats.url });
    const events = await connect({ servers: nats.url });
    let eventMessages = 0;
    events.subscribe(`d${schema}_events`, {
      callback: () => {
        eventMessages++;
      },
    });
    const store = await PgMessageStore.open({ pool, schema });
    const registry = new AgentRegistry();
    deploy(registry, agentDef('sink', ['sink']));
    const bus = new ClusterBus({
      store,
      reads: new PgMessageReads({ store }),
      nc,
      registry,
      config: messagingConfig({ agent_concurrency: 32 }),
      cluster: clusterConfigSchema.parse({
        node: 'n1',
        delivery: { stream: `S${schema}`, consumer: `c${schema}`, subject: `d${schema}` },
      }),
      // The deadline sweep and the republish sweep are timers, not per message: out of the count.
      sweepMs: 3_600_000,
      republish: { everyMs: 3_600_000 },
    });
    let delivered = 0;
    bus.registerHandler('sink', () => {
      delivered++;
      return undefined;
    });
    try {
      await bus.start();
      // Warm: the reserved delivery ids and the prepared connections.
      await bus.send({
        ...aclMessage({ sender: 'caller', receivers: ['sink'] }),
        conversation_id: newConversationId(),
        id: newMessageId(),
      });
      await waitUntil(() => delivered === 1, { what: 'the warm-up delivery' });
      // Its acknowledgement committed too, so none of its writes is counted below.
      await waitUntil(
        async () =>
          Number(
            (await check.query(`SELECT count(*) AS n FROM "${schema}".deliveries WHERE state = 'done'`)).rows[0].n,
          ) === 1,
        { what: 'the warm-up acknowledged' },
      );
      await events.flush();
      eventMessages = 0;
      counting = true;
      const sent: AclMessage[] = Array.from({ length: MESSAGES }, () => ({
        ...aclMessage({ sender: 'caller', receivers: ['sink'], performative: 'inform' }),
        id: newMessageId(),
        conversation_id: newConversationId(),
      }));
      await Promise.all(sent.map((m) => bus.send(m)));
      await waitUntil(() => delivered >= MESSAGES + 1, { what: `every delivery (${delivered})`, timeoutMs: 20_000 });
      const completed = async () =>
        Number(
          (
            await check.query(
              `SELECT count(*) AS n FROM "${schema}".conversations_read WHERE id = ANY($1) AND state = 'completed'`,
              [sent.map((m) => m.conversation_id)],
            )
          ).rows[0].n,
        );
      await waitUntil(async () => (await completed()) === MESSAGES, { what: 'every conversation completed' });
      // The PubAck marks and the events that were still on their way.
      await new Promise((r) => setTimeout(r, 1500));
      await events.flush();
      counting = false;
      const total = [...kinds.values()].reduce((a, b) => a + b, 0);
      const table = Object.fromEntries([...kinds.entries()].sort((a, b) => b[1] - a[1]));
      console.log(
        `statements per delivered one-way message: ${(total / MESSAGES).toFixed(2)} (${total} for ${MESSAGES}; bus events on NATS: ${eventMessages}, ${(eventMessages / MESSAGES).toFixed(2)} per message)`,
        table,
      );
      // Each kind of write at most once per transaction, whatever the groups' sizes: a group's
      // messages, deliveries and new conversations are one INSERT each, its done-markings and its
      // conversations' updates one UPDATE each; PubAck marks wait for deliveries still unfinished.
      const commits = kinds.get('COMMIT') ?? 0;
      expect(commits).toBeGreaterThan(0);
      for (const kind of ['INSERT messages', 'INSERT deliveries', 'INSERT conversations', 'UPDATE conversations'])
        expect(kinds.get(kind) ?? 0, kind).toBeLessThanOrEqual(commits);
      expect(kinds.get('UPDATE deliveries') ?? 0).toBeLessThanOrEqual(commits);
      // A one-way conversation completed by its delivery has no row: reads derive it (ADR 0138).
      expect(kinds.get('INSERT conversations') ?? 0).toBe(0);
      expect(kinds.get('UPDATE conversations') ?? 0).toBe(0);
      // Steps submitted in one turn start together (step-groups.ts), not one alone per free slot
      // first: well under one statement per message (1.84 when they did).
      expect(total / MESSAGES).toBeLessThan(1);
      // The bus events of a turn go out as one NATS message.
      expect(eventMessages).toBeLessThanOrEqual(commits);
    } finally {
      await bus.close();
      await nc.close();
      await events.close();
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
      await check.end();
    }
  });
  it('a REST submission without ids (new conversations): its accept steps take no lock, only the acknowledgements do', async () => {
    const pool = observedPool(4, count);
    const nc: NatsConnection = await connect({ servers: nats.url });
    const schema2 = `${schema}_rest`;
    const store = await PgMessageStore.open({ pool, schema: schema2 });
    const registry = new AgentRegistry();
    deploy(registry, agentDef('sink', ['sink']));
    const bus = new ClusterBus({
      store,
      reads: new PgMessageReads({ store }),
      nc,
      registry,
      config: messagingConfig({ agent_concurrency: 32 }),
      cluster: clusterConfigSchema.parse({
        node: 'n1',
        delivery: { stream: `S${schema2}`, consumer: `c${schema2}`, subject: `d${schema2}` },
      }),
      sweepMs: 3_600_000,
      republish: { everyMs: 3_600_000 },
    });
    let delivered = 0;
    bus.registerHandler('sink', () => {
      delivered++;
      return undefined;
    });
    /** Round trips and statements per delivered message for `MESSAGES` one-way `agree` acts submitted at once. */
    const measure = async (named: boolean) => {
      const before = delivered;
      kinds.clear();
      roundTrips = 0;
      counting = true;
      await Promise.all(
        Array.from({ length: MESSAGES }, (_, i) =>
          bus.submit({
            performative: 'agree',
            receiver: 'sink',
            content: `m${i}`,
            ...(named && { conversation_id: newConversationId() }),
          }),
        ),
      );
      await waitUntil(() => delivered >= before + MESSAGES, {
        what: `every delivery (${delivered})`,
        timeoutMs: 20_000,
      });
      await bus.settled();
      await new Promise((r) => setTimeout(r, 300));
      counting = false;
      const statements = [...kinds.values()].reduce((a, b) => a + b, 0);
      return {
        roundTrips: roundTrips / MESSAGES,
        statements: statements / MESSAGES,
        // A step's lock alone (`SELECT pg_advisory_xact_lock(…)`), or a group's (`… FROM (SELECT … FROM unnest(…))`).
        locks: (kinds.get('SELECT') ?? 0) + (kinds.get('SELECT unnest') ?? 0),
        doneMarks: kinds.get('UPDATE deliveries') ?? 0,
      };
    };
    try {
      await bus.start();
      await bus.submit({ performative: 'agree', receiver: 'sink', content: 'warm' });
      await waitUntil(() => delivered === 1, { what: 'the warm-up delivery' });
      const named = await measure(true);
      const fresh = await measure(false);
      console.log(
        `per delivered one-way act, named conversations: ${named.roundTrips.toFixed(2)} round trips, ${named.statements.toFixed(2)} statements; new conversations (no ids): ${fresh.roundTrips.toFixed(2)} round trips, ${fresh.statements.toFixed(2)} statements`,
      );
      // A new conversation's first step locks and reads nothing: a lock statement belongs to a group
      // that acknowledges (the group sizes, and so the figures above, vary with timing).
      expect(fresh.doneMarks).toBeGreaterThan(0);
      expect(fresh.locks).toBeLessThanOrEqual(fresh.doneMarks);
      expect(named.locks).toBeGreaterThan(0);
      // A batch's steps go in groups from its first message on: 0.46–0.49 round trips per message
      // when each free slot first took one step alone.
      expect(named.roundTrips).toBeLessThan(0.3);
      expect(fresh.roundTrips).toBeLessThan(0.3);
    } finally {
      await bus.close();
      await nc.close();
      await pool.query(`DROP SCHEMA IF EXISTS "${schema2}" CASCADE`);
      await pool.end();
    }
  });
});
