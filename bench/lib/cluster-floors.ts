/**
 * The baselines of bench/cluster.ts: raw JetStream (publish awaiting the PubAck, consume and ack,
 * in the driver's process) and the floor server's process (floor-server.ts: the component floor,
 * the rows floor of rows-floor.ts and the lean one of lean-rows-floor.ts), with how each counts
 * what it delivered.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { content, httpCall, SINK, wallNow } from './caxton-nodes.js';
import type { FloorStats, FromFloor, ToFloor } from './floor-server.js';
import { addWorkQueue } from './work-queue.js';

const FLOOR_WORKER = fileURLToPath(new URL('./floor-server.ts', import.meta.url));

export interface RawJetStream {
  publish(i: number): Promise<void>;
  consumedAt: number[];
  published: number;
}

export interface FloorProcess {
  url: string;
  child: ChildProcess;
}

/** The delivery of message i as a node puts it on the wire (row id, receiver, the ACL message), with `sent` (the publish time) in front. */
export function rawPayload(i: number, sent: number = wallNow()): string {
  const message = {
    id: `msg_raw${String(i).padStart(30, '0')}`,
    performative: 'agree',
    sender: 'key:admin',
    receivers: [SINK],
    content: content(i),
    conversation_id: `conv_raw${String(i).padStart(30, '0')}`,
    params: {},
    timestamp: new Date().toISOString(),
    chain: [],
  };
  return `{"sent":${sent},${JSON.stringify({ id: i + 1, receiver: SINK, message }).slice(1)}`;
}

export async function startRaw(nc: NatsConnection): Promise<RawJetStream> {
  await addWorkQueue(nc, 'BENCH_RAW', 'bench.raw', 'raw');
  const js = jetstream(nc);
  const raw: RawJetStream = {
    consumedAt: [],
    published: 0,
    async publish(i) {
      await js.publish(`bench.raw.${SINK}`, rawPayload(i), { msgID: `raw-${i}` });
      raw.published++;
    },
  };
  const it = await (await js.consumers.get('BENCH_RAW', 'raw')).consume({ max_messages: 256 });
  void (async () => {
    for await (const m of it) {
      m.json();
      m.ack();
      raw.consumedAt.push(wallNow());
    }
  })();
  return raw;
}

export async function startFloor(natsUrl: string, pgUrl: string): Promise<FloorProcess> {
  const child = fork(FLOOR_WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the floor server was not ready within 30 s')), 30_000);
    child.once('message', (m: FromFloor) => {
      clearTimeout(timer);
      if (m.type === 'ready') resolve(m.url);
      else reject(new Error(`the floor server failed: ${m.message}`));
    });
    child.once('exit', (code) => reject(new Error(`the floor server exited with ${code}`)));
    child.send({
      type: 'config',
      config: {
        natsUrl,
        pgUrl,
        stream: 'BENCH_FLOOR',
        subject: 'bench.floor',
        table: 'bench_floor',
        rows: { schema: `bench_rows_floor_${Date.now()}`, stream: 'BENCH_ROWS', subject: 'bench.rows' },
        lean: { schema: `bench_lean_floor_${Date.now()}`, stream: 'BENCH_LEAN', subject: 'bench.lean' },
        grouped: { stream: 'BENCH_GROUPED', subject: 'bench.grouped' },
      },
    } satisfies ToFloor);
  });
  return { url, child };
}

/** What the floor server (`kind` rows, lean or grouped: that floor) published and consumed, and consumed between `from` and `to` (wall ms). */
export async function floorStats(url: string, from: number, to: number, kind = 'floor'): Promise<FloorStats> {
  const r = await httpCall(url, 'GET', `/stats?from=${from}&to=${to || Number.MAX_SAFE_INTEGER}&kind=${kind}`);
  return r.json as FloorStats;
}
