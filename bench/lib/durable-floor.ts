/**
 * The floor of durable delivery for any engine that, like the bus, answers each send with a
 * promise and hands each message to a handler: the bare loop's statements (bench/messaging.ts)
 * run by the smallest such engine. A send queues its rows; once per event-loop turn one
 * transaction commits every queued message and delivery and resolves their sends (accepted =
 * committed); each message then goes to its handler, and the acknowledgements of a turn commit
 * together with their conversations' rows (delivered = acknowledged). No routing, retry, protocol, limit or event:
 * what it costs beyond the bare loop is what a promise, a queue and a turn per message cost, so
 * the bus's ratio to the bare loop can be read against this one's.
 */
import type { Database } from 'better-sqlite3';
import type { AclMessage } from '../../src/messaging/index.js';

/** The SQL the bus runs per one-way message: message, delivery, conversation upsert (once, at its end), acknowledgement. */
export const DURABLE_SQL = [
  'INSERT INTO messages (id, conversation_id, performative, sender, created_at, body, routed_to) VALUES (?, ?, ?, ?, ?, ?, ?)',
  "INSERT INTO deliveries (message_id, receiver, state, updated_at) VALUES (?, ?, 'pending', ?)",
  `INSERT INTO conversations (id, protocol, state, initiator, participants, capability, turns, max_turns, created_at, updated_at, expires_at, reason)
     VALUES (?, NULL, ?, ?, ?, NULL, 1, 100, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state, participants = excluded.participants, updated_at = excluded.updated_at, expires_at = excluded.expires_at, reason = excluded.reason`,
  "UPDATE deliveries SET state = 'done', attempts = attempts + 1, updated_at = ? WHERE id = ?",
] as const;

/** DURABLE_SQL[2]'s values: `m`'s one-way conversation in `state`, with its expiry and its reason. */
export const conversationRow = (m: AclMessage, state: string, expires: string | null, reason: string | null) => [
  m.conversation_id,
  state,
  m.sender,
  JSON.stringify([m.sender, m.receivers[0]]),
  m.timestamp,
  m.timestamp,
  expires,
  reason,
];

/**
 * The bare loop's statements, prepared once on `db`: the four the bus runs per one-way message.
 * The bus keeps a one-way conversation in memory with its message and writes its row once, when
 * the acknowledgement ends it (ADR 0090), so the loop writes the conversation once too, completed,
 * beside the acknowledgement: the same statements, the same rows, nothing the bus does not run.
 */
export function durableStatements(db: Database) {
  const insM = db.prepare(DURABLE_SQL[0]);
  const insD = db.prepare(DURABLE_SQL[1]);
  const upC = db.prepare(DURABLE_SQL[2]);
  const ack = db.prepare(DURABLE_SQL[3]);
  return {
    /** Message and delivery rows of `m`; the delivery's id. */
    accept(m: AclMessage): number {
      insM.run(
        m.id,
        m.conversation_id,
        m.performative,
        m.sender,
        m.timestamp,
        JSON.stringify(m),
        JSON.stringify(m.receivers),
      );
      return Number(insD.run(m.id, m.receivers[0], m.timestamp).lastInsertRowid);
    },
    /** The delivery done and its conversation's only row, completed. */
    done(m: AclMessage, delivery: number): void {
      ack.run(m.timestamp, delivery);
      upC.run(...conversationRow(m, 'completed', null, 'delivered'));
    },
  };
}

interface Accepting {
  m: AclMessage;
  resolve: () => void;
}

/** The smallest promise-per-message engine over `db`'s statements; `handler` is called once per message. */
export function minimalEngine(db: Database, handler: (m: AclMessage) => void) {
  const sql = durableStatements(db);
  let accepting: Accepting[] = [];
  let acking: { m: AclMessage; delivery: number }[] = [];
  const acceptTx = db.transaction((batch: Accepting[]) => batch.map((a) => sql.accept(a.m)));
  const ackTx = db.transaction((batch: { m: AclMessage; delivery: number }[]) => {
    for (const a of batch) sql.done(a.m, a.delivery);
  });
  const flushAccepts = () => {
    const batch = accepting;
    accepting = [];
    const ids = acceptTx(batch);
    for (let i = 0; i < batch.length; i++) {
      const a = batch[i]!;
      a.resolve();
      void Promise.resolve().then(() => {
        handler(a.m);
        if (acking.length === 0) setImmediate(flushAcks);
        acking.push({ m: a.m, delivery: ids[i]! });
      });
    }
  };
  const flushAcks = () => {
    const batch = acking;
    acking = [];
    ackTx(batch);
    for (const a of batch) acked(a.m);
  };
  let acked: (m: AclMessage) => void = () => {};
  return {
    send(m: AclMessage): Promise<void> {
      return new Promise<void>((resolve) => {
        if (accepting.length === 0) setImmediate(flushAccepts);
        accepting.push({ m, resolve });
      });
    },
    /** Called after each acknowledgement commits. */
    onAcked(fn: (m: AclMessage) => void): void {
      acked = fn;
    },
  };
}
