/**
 * One client process of the raw JetStream baseline (bench/cluster-nodes.ts): forked once per node
 * being compared, it publishes its share of the payloads (awaiting each PubAck, a bounded number
 * in flight) and at the same time consumes and acks from the durable pull consumer every worker
 * shares: what a `caxton serve` node does on the wire, without HTTP, PostgreSQL or anything else.
 *
 * IPC: the parent sends `config`, the worker answers `ready`. Then rounds (a warm-up, the measured
 * one): the parent sends `go` with the payloads; the worker reports `progress` (messages it
 * consumed) every 100 ms and, after `stop`, the round's `result`. `exit` ends it.
 */
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

export interface RawWorkerConfig {
  url: string;
  stream: string;
  consumer: string;
  subject: string;
  /** This worker publishes the payloads i with i % workers === index. */
  index: number;
  workers: number;
  /** Publishes this worker keeps in flight. */
  inFlight: number;
}

export interface RawRound {
  name: string;
  /** The payload of each message of the round, as JSON text starting `{"sent":0,` (the publish time is filled in). */
  payloads: string[];
  /** Open loop: the whole round's messages a second (each worker its share), not awaiting PubAcks before the next; absent: `inFlight` at a time. */
  rate?: number;
}

export type ToWorker =
  { type: 'config'; config: RawWorkerConfig } | ({ type: 'go' } & RawRound) | { type: 'stop' } | { type: 'exit' };

export interface RawRoundResult {
  puback_ms: number[];
  e2e_ms: number[];
  first_publish_at: number;
  last_consumed_at: number;
  consumed: number;
}

export type FromWorker =
  | { type: 'ready' }
  | { type: 'progress'; consumed: number }
  | ({ type: 'result' } & RawRoundResult)
  | { type: 'error'; message: string };

/** A wall-clock time with sub-millisecond resolution, comparable across processes on one machine. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

const send = (m: FromWorker) => new Promise<void>((resolve) => process.send!(m, undefined, {}, () => resolve()));

async function main(cfg: RawWorkerConfig): Promise<void> {
  const nc = await connect({ servers: cfg.url });
  const js = jetstream(nc);
  const consumer = await js.consumers.get(cfg.stream, cfg.consumer);
  const inbox: ToWorker[] = [];
  let wake: (() => void) | undefined;
  process.on('message', (m: ToWorker) => {
    inbox.push(m);
    wake?.();
  });
  const next = async (): Promise<ToWorker> => {
    while (inbox.length === 0) await new Promise<void>((r) => (wake = r));
    return inbox.shift()!;
  };
  await send({ type: 'ready' });
  for (;;) {
    const m = await next();
    if (m.type === 'exit') break;
    if (m.type !== 'go') continue;
    const r: RawRoundResult = { puback_ms: [], e2e_ms: [], first_publish_at: 0, last_consumed_at: 0, consumed: 0 };
    const ticker = setInterval(() => void send({ type: 'progress', consumed: r.consumed }), 100);
    // Consuming: as the nodes do, from a pull consumer every worker shares, each message acked.
    const it = await consumer.consume({ max_messages: 256 });
    const consuming = (async () => {
      for await (const msg of it) {
        const body = msg.json<{ sent: number }>();
        const now = wallNow();
        r.e2e_ms.push(now - body.sent);
        r.last_consumed_at = now;
        r.consumed++;
        msg.ack();
      }
    })();
    // Publishing this worker's share, `inFlight` at a time.
    const mine: number[] = [];
    for (let i = cfg.index; i < m.payloads.length; i += cfg.workers) mine.push(i);
    const publish = async (i: number) => {
      const t = wallNow();
      await js.publish(`${cfg.subject}.bench-sink`, m.payloads[i]!.replace('{"sent":0,', `{"sent":${t},`), {
        msgID: `raw-${m.name}-${i}`,
      });
      r.puback_ms.push(wallNow() - t);
    };
    r.first_publish_at = wallNow();
    if (m.rate !== undefined) {
      // Message i of the round is due at i / rate seconds, whichever worker sends it.
      const sent: Promise<void>[] = [];
      for (const i of mine) {
        const wait = r.first_publish_at + (i * 1000) / m.rate - wallNow();
        if (wait > 1) await new Promise((res) => setTimeout(res, wait));
        sent.push(publish(i));
      }
      await Promise.all(sent);
    } else {
      let k = 0;
      await Promise.all(
        Array.from({ length: Math.min(cfg.inFlight, mine.length) }, async () => {
          for (let j = k++; j < mine.length; j = k++) await publish(mine[j]!);
        }),
      );
    }
    while ((await next()).type !== 'stop');
    clearInterval(ticker);
    await it.close();
    await consuming;
    await send({ type: 'result', ...r });
  }
  await nc.close();
}

if (process.send) {
  process.once('message', (m: ToWorker) => {
    if (m.type !== 'config') return;
    main(m.config).then(
      () => process.exit(0),
      (e: unknown) =>
        void send({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) }).then(() =>
          process.exit(1),
        ),
    );
  });
}
