/**
 * The component floor of bench/cluster.ts: the parts a durable message passes through, composed
 * the way a message passes them and nothing else, in a process of its own (as a `caxton serve`
 * node is): a fastify server over keep-alive HTTP takes POST /messages, the message joins a
 * batch of at most 100 rows written with one INSERT (the next batch starts when the previous one
 * committed), then it is published on JetStream awaiting the PubAck, and the answer (202, the
 * message echoed with its id) goes back. A pull consumer in the same process takes each message
 * and acks it. No validation, no routing, no conversation state: what any server on these parts
 * would pay at least.
 *
 * The same process serves the rows floor (rows-floor.ts) on POST /rows and the lean rows floor
 * (lean-rows-floor.ts) on POST /lean, each over a stream of its own, and the grouped floor on POST
 * /grouped: the component floor with one stream message per committed group of rows instead of
 * one per message (published after the group's INSERT, consumed and acked once), what a delivery
 * unit of several messages would cost the parts.
 *
 * IPC: the parent sends `config`; the worker answers `ready` with its URL. GET /stats?from=&to=
 * (wall-clock ms; `kind=rows` or `lean`: that rows floor's) answers how many messages it published and
 * consumed, and how many were consumed in that window.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import Fastify, { type FastifyRequest } from 'fastify';
import pg from 'pg';
import { leanRowsFloor } from './lean-rows-floor.js';
import { rowsFloor } from './rows-floor.js';
import { addWorkQueue } from './work-queue.js';

export interface FloorConfig {
  natsUrl: string;
  pgUrl: string;
  /** Stream, subject prefix and durable consumer of its own, created here. */
  stream: string;
  subject: string;
  /** The table the rows go to, created here (public schema). */
  table: string;
  /** The rows floor (rows-floor.ts, POST /rows): its schema, stream and subject prefix, created here. */
  rows: { schema: string; stream: string; subject: string };
  /** The lean rows floor (lean-rows-floor.ts, POST /lean), the same way. */
  lean: { schema: string; stream: string; subject: string };
  /** The grouped floor (POST /grouped): its stream and subject prefix, created here. */
  grouped: { stream: string; subject: string };
}

export type ToFloor = { type: 'config'; config: FloorConfig };
export type FromFloor = { type: 'ready'; url: string } | { type: 'error'; message: string };

export interface FloorStats {
  published: number;
  consumed: number;
  consumed_in_window: number;
}

/** Rows per INSERT at most. */
const BATCH_ROWS = 100;

const wallNow = (): number => performance.timeOrigin + performance.now();

async function main(cfg: FloorConfig): Promise<string> {
  // Enough connections for the rows floor's groups beside its reads. Idle sessions are never
  // closed: an exiting backend's CPU is counted for the postmaster (it reaps it) in whatever
  // repetition it exits, which would charge this server's work to the workload after it.
  const pool = new pg.Pool({ connectionString: cfg.pgUrl, max: 12, idleTimeoutMillis: 0 });
  await pool.query(
    `CREATE TABLE IF NOT EXISTS "${cfg.table}" (id text PRIMARY KEY, body text NOT NULL, created_at text NOT NULL)`,
  );
  const nc = await connect({ servers: cfg.natsUrl });
  await addWorkQueue(nc, cfg.stream, cfg.subject, 'floor');
  await addWorkQueue(nc, cfg.rows.stream, cfg.rows.subject, 'rows');
  await addWorkQueue(nc, cfg.lean.stream, cfg.lean.subject, 'lean');
  await addWorkQueue(nc, cfg.grouped.stream, cfg.grouped.subject, 'grouped');
  const js = jetstream(nc);

  type Pending = { id: string; body: string; at: string; done: (e?: unknown) => void };
  const settle = (batch: readonly Pending[], e?: unknown) => {
    for (const r of batch) r.done(e);
  };
  /**
   * Group commit: rows wait while a batch is being written, then go together (at most BATCH_ROWS).
   * `committed` settles each committed batch's rows, at once or later (the grouped floor: at its
   * PubAck, while the next batch is written).
   */
  const groupCommit = (committed: (batch: Pending[]) => void) => {
    const queue: Pending[] = [];
    let writing = false;
    const write = async () => {
      writing = true;
      while (queue.length > 0) {
        const batch = queue.splice(0, BATCH_ROWS);
        try {
          await pool.query(
            `INSERT INTO "${cfg.table}" (id, body, created_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])`,
            [batch.map((r) => r.id), batch.map((r) => r.body), batch.map((r) => r.at)],
          );
          committed(batch);
        } catch (e) {
          settle(batch, e);
        }
      }
      writing = false;
    };
    return (id: string, body: string) =>
      new Promise<void>((resolve, reject) => {
        queue.push({ id, body, at: new Date().toISOString(), done: (e) => (e ? reject(e as Error) : resolve()) });
        if (!writing) void write();
      });
  };
  const insert = groupCommit((batch) => settle(batch));

  // The grouped floor: each committed group is one stream message.
  const grouped = { published: 0, consumedAt: [] as number[] };
  const insertGrouped = groupCommit((batch) => {
    js.publish(
      `${cfg.grouped.subject}.any`,
      `{"sent":${wallNow()},"messages":[${batch.map((r) => r.body).join(',')}]}`,
      {
        msgID: batch[0]!.id,
      },
    ).then(
      () => {
        grouped.published += batch.length;
        settle(batch);
      },
      (e: unknown) => settle(batch, e),
    );
  });

  let published = 0;
  const consumedAt: number[] = [];

  const app = Fastify({ logger: false });
  /** The message a POST gave, with an id of the server's, and its JSON. */
  const received = (req: FastifyRequest) => {
    const message: Record<string, unknown> & { id: string } = {
      id: `msg_${randomUUID()}`,
      ...(req.body as Record<string, unknown>),
    };
    return { message, body: JSON.stringify(message) };
  };
  app.post('/messages', async (req, reply) => {
    const { message, body } = received(req);
    await insert(message.id, body);
    await js.publish(`${cfg.subject}.${String(message.receiver ?? 'any')}`, `{"sent":${wallNow()},"message":${body}}`, {
      msgID: message.id,
    });
    published++;
    return reply.code(202).send(message);
  });
  app.post('/grouped', async (req, reply) => {
    const { message, body } = received(req);
    await insertGrouped(message.id, body);
    return reply.code(202).send(message);
  });
  const rows = await rowsFloor(
    app,
    pool,
    js,
    async () => (await js.consumers.get(cfg.rows.stream, 'rows')).consume({ max_messages: 256 }),
    { schema: cfg.rows.schema, subject: cfg.rows.subject, wallNow },
  );
  const lean = await leanRowsFloor(
    app,
    pool,
    js,
    async () => (await js.consumers.get(cfg.lean.stream, 'lean')).consume({ max_messages: 256 }),
    { schema: cfg.lean.schema, subject: cfg.lean.subject, wallNow },
  );
  app.get('/stats', async (req): Promise<FloorStats> => {
    const q = req.query as { from?: string; to?: string; kind?: string };
    const from = Number(q.from ?? 0);
    const to = Number(q.to ?? Number.MAX_SAFE_INTEGER);
    const of =
      q.kind === 'rows' ? rows : q.kind === 'lean' ? lean : q.kind === 'grouped' ? grouped : { published, consumedAt };
    const [p, at] = [of.published, of.consumedAt];
    return {
      published: p,
      consumed: at.length,
      consumed_in_window: at.filter((t) => t >= from && t <= to).length,
    };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });

  const consumer = await js.consumers.get(cfg.stream, 'floor');
  const it = await consumer.consume({ max_messages: 256 });
  void (async () => {
    for await (const m of it) {
      m.json();
      m.ack();
      consumedAt.push(wallNow());
    }
  })();

  const groupIt = await (await js.consumers.get(cfg.grouped.stream, 'grouped')).consume({ max_messages: 256 });
  void (async () => {
    for await (const m of groupIt) {
      const n = m.json<{ messages: unknown[] }>().messages.length;
      m.ack();
      const at = wallNow();
      for (let i = 0; i < n; i++) grouped.consumedAt.push(at);
    }
  })();

  process.on('disconnect', () => {
    void (async () => {
      await it.close().catch(() => {});
      await groupIt.close().catch(() => {});
      await app.close();
      await nc.close();
      await pool.query(`DROP TABLE IF EXISTS "${cfg.table}"`).catch(() => {});
      await pool.query(`DROP SCHEMA IF EXISTS "${cfg.rows.schema}" CASCADE`).catch(() => {});
      await pool.query(`DROP SCHEMA IF EXISTS "${cfg.lean.schema}" CASCADE`).catch(() => {});
      await pool.end();
      process.exit(0);
    })();
  });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

if (process.send) {
  process.once('message', (m: ToFloor) => {
    if (m.type !== 'config') return;
    main(m.config).then(
      (url) => process.send!({ type: 'ready', url } satisfies FromFloor),
      (e: unknown) => {
        process.send!({
          type: 'error',
          message: e instanceof Error ? (e.stack ?? e.message) : String(e),
        } satisfies FromFloor);
        process.exit(1);
      },
    );
  });
}
