/**
 * The smallest server that does a REST message submission's durable work, the floor of the
 * submit target: fastify, the JSON body parsed and checked, the capability looked up in a Map,
 * the message's rows (message, delivery, conversation) committed before the 202, the message
 * handed to a no-op handler and its acknowledgement committed, and the records a submission
 * leaves (an audit row, `message.sent` and `message.received` events). One transaction per
 * event-loop turn holds all of it (turnEngine). No authentication, routing rules, limits,
 * protocols, spans or logging. The transaction runs on the event loop, as Caxton's single node
 * runs its writes.
 */
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Fastify from 'fastify';
import { AUDIT_MIGRATIONS } from '../../src/audit/index.js';
import { newConversationId, newMessageId, type AclMessage } from '../../src/messaging/index.js';
import { MESSAGING_MIGRATIONS } from '../../src/messaging/sqlite/index.js';
import { EVENTS_MIGRATIONS } from '../../src/observability/sqlite-agent-events.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { conversationRow, DURABLE_SQL } from './durable-floor.js';
import { AUDIT_SQL, EVENT_SQL } from './invoke-floor.js';

/** A statement's index in the floor's list and its parameters. */
type SqlOp = [statement: number, params: unknown[]];

export interface SubmitFloor {
  readonly url: string;
  /** Messages accepted (committed before their 202). */
  accepted(): number;
  /** Messages acknowledged (their delivery done), after `close()`: every one accepted. */
  acknowledged(): number;
  close(): Promise<void>;
}

const CAPABILITIES = new Map([['sink', 'sink']]);
const PERFORMATIVES = new Set(['inform', 'request', 'query-if', 'cfp', 'propose']);

// Statement indexes: DURABLE_SQL's four, then the records'.
const MESSAGE = 0;
const DELIVERY = 1;
const CONVERSATION = 2;
const ACK = 3;
const AUDIT = 4;
const EVENT = 5;

const started = (m: AclMessage) => conversationRow(m, 'initiated', m.timestamp, null);
const completed = (m: AclMessage) => conversationRow(m, 'completed', null, 'delivered');

/**
 * The smallest engine with the bus's guarantees: per event-loop turn ONE transaction holds the
 * acknowledgements of the messages handled since the last one, the accepts of the messages sent
 * in this turn and the records; each send resolves once its rows
 * committed, then its message goes to the handler.
 */
function turnEngine(commit: (ops: SqlOp[]) => number[], handler: (m: AclMessage) => void, acked: () => void) {
  let accepting: { m: AclMessage; resolve: () => void }[] = [];
  let ops: SqlOp[] = [];
  let acks = 0;
  let scheduled = false;
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  };
  const flush = () => {
    scheduled = false;
    const batch = accepting;
    const n = acks;
    const turn = ops;
    accepting = [];
    ops = [];
    acks = 0;
    const base = turn.length;
    for (const { m } of batch)
      turn.push(
        [
          MESSAGE,
          [
            m.id,
            m.conversation_id,
            m.performative,
            m.sender,
            m.timestamp,
            JSON.stringify(m),
            JSON.stringify(m.receivers),
          ],
        ],
        [DELIVERY, [m.id, m.receivers[0], m.timestamp]],
        [CONVERSATION, started(m)],
      );
    const done = (ids: number[]) => {
      for (let i = 0; i < n; i++) acked();
      for (let i = 0; i < batch.length; i++) {
        const { m, resolve } = batch[i]!;
        resolve();
        handler(m);
        ops.push([ACK, [m.timestamp, ids[base + i * 3 + 1]]], [CONVERSATION, completed(m)]);
        acks++;
      }
      if (ops.length > 0) schedule();
    };
    done(commit(turn));
  };
  return {
    send(m: AclMessage): Promise<void> {
      return new Promise<void>((resolve) => {
        accepting.push({ m, resolve });
        schedule();
      });
    },
    /** Queues a record into the next turn's transaction. */
    record(op: SqlOp): void {
      ops.push(op);
      schedule();
    },
  };
}

export async function startSubmitFloor(dir: string): Promise<SubmitFloor> {
  const db = openDatabase(join(dir, 'floor.db'));
  migrate(db, MESSAGING_MIGRATIONS);
  migrate(db, AUDIT_MIGRATIONS);
  migrate(db, EVENTS_MIGRATIONS);
  let accepted = 0;
  let acknowledged = 0;
  const statements = [...DURABLE_SQL, AUDIT_SQL, EVENT_SQL].map((q) => db.prepare(q));
  const commit = db.transaction((ops: SqlOp[]) => {
    const ids = new Array<number>(ops.length);
    for (let i = 0; i < ops.length; i++) {
      const [st, params] = ops[i]!;
      ids[i] = Number(statements[st]!.run(...params).lastInsertRowid);
    }
    return ids;
  });
  const record = (op: SqlOp) => engine.record(op);
  const eventRow = (type: string, agent: string, m: AclMessage) =>
    record([
      EVENT,
      [
        Date.now(),
        type,
        'communication',
        agent,
        null,
        null,
        JSON.stringify({ message_id: m.id, conversation_id: m.conversation_id, performative: m.performative }),
      ],
    ]);
  const engine = turnEngine(
    commit,
    (m) => eventRow('message.received', m.receivers[0]!, m),
    () => void acknowledged++,
  );

  const app = Fastify({ logger: false });
  app.post<{ Body: { performative?: unknown; capability?: unknown; content?: unknown } }>(
    '/api/v1/messages',
    async (req, reply) => {
      const b = req.body;
      if (typeof b?.performative !== 'string' || !PERFORMATIVES.has(b.performative))
        return reply.code(400).send({ error: 'performative' });
      const receiver = typeof b.capability === 'string' ? CAPABILITIES.get(b.capability) : undefined;
      if (receiver === undefined) return reply.code(400).send({ error: 'capability' });
      if (typeof b.content !== 'string') return reply.code(400).send({ error: 'content' });
      const m: AclMessage = {
        id: newMessageId(),
        performative: b.performative as AclMessage['performative'],
        sender: 'api',
        receivers: [receiver],
        capability: b.capability as string,
        content: b.content,
        conversation_id: newConversationId(),
        params: {},
        timestamp: new Date().toISOString(),
        chain: [],
      };
      await engine.send(m);
      accepted++;
      record([
        AUDIT,
        [
          Date.now(),
          null,
          null,
          req.ip,
          String(req.id),
          'message.send',
          'POST',
          '/api/v1/messages',
          receiver,
          'ok',
          202,
        ],
      ]);
      eventRow('message.sent', 'api', m);
      return reply.code(202).send({
        id: m.id,
        conversation_id: m.conversation_id,
        performative: m.performative,
        routed_to: m.receivers,
        routing: 'one',
        duplicate: false,
      });
    },
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    accepted: () => accepted,
    acknowledged: () => acknowledged,
    async close() {
      await app.close();
      // Let the last acknowledgements be handed over, then the records.
      for (let waited = 0; acknowledged < accepted; waited += 5) {
        if (waited > 30_000) throw new Error(`submit floor: ${acknowledged} of ${accepted} acknowledged after 30 s`);
        await new Promise((r) => setTimeout(r, 5));
      }
      // The records of the last turn.
      await new Promise((r) => setImmediate(r));
      db.close();
    },
  };
}
