/**
 * The pulls of a delivery loop (src/messaging/cluster/pulls.ts) on a real `nats-server -js`, reached through
 * a relay that can lose one frame on its way to the client: the "408 Request Timeout" that ends a
 * fetch at its expiry, which nats-server before 2.9.15 sometimes never sends (a pull that expires
 * as a message arrives is dropped silently). The loop must pull again once that fetch is overdue,
 * not wait until nats.js gives up on it (two idle heartbeats missed, ~1 s later); what the overdue
 * fetch could still bring stays out of the loop's room until it ends.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { JsMsg } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDeliveryStream } from '../../../src/messaging/cluster/delivery-stream.js';
import { Pulls } from '../../../src/messaging/cluster/pulls.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { natsFrameDropper, type NatsFrame } from '../../helpers/nats-frames.js';
import { hasSystem } from '../../helpers/system.js';
import { startTcpProxy, type TcpProxy } from '../../helpers/tcp-proxy.js';
import { removeTempDirs } from '../../helpers/tmp.js';
import { waitUntil } from '../../helpers/wait.js';

const run = hasSystem('nats-server');
let nats: NatsServer;
let proxy: TcpProxy;
let nc: NatsConnection;
const dropper = natsFrameDropper();

beforeAll(async () => {
  if (!run) return;
  nats = await startNatsServer();
  proxy = await startTcpProxy({ host: '127.0.0.1', port: nats.port }, { down: dropper.filter });
  nc = await connect({ servers: `127.0.0.1:${proxy.port}`, noAsyncTraces: true });
});

afterAll(async () => {
  await nc?.close().catch(() => {});
  await proxy?.close();
  await nats?.stop();
  removeTempDirs();
});

/** The server's answer that ends a pull at its expiry ("NATS/1.0 408 Request Timeout"). */
const requestTimeout = (f: NatsFrame) => f.op === 'HMSG' && /^NATS\/1\.0 408/.test(f.payload?.toString('latin1') ?? '');

describe.runIf(run)('pulls of a delivery loop', () => {
  it('a pull whose end the server never sends does not hold the loop: the next pull goes out once it is overdue, and its room is kept until it ends', async () => {
    const { js, consumer } = await openDeliveryStream(nc, {
      stream: 'PULLS',
      subject: 'pulls',
      consumer: 'pulls',
      ackWaitMs: 30_000,
    });
    const overdue: { asked: number; got: number }[] = [];
    const pulls = new Pulls(consumer, {
      expiresMs: 1000,
      graceMs: 100,
      onOverdue: (asked, got) => overdue.push({ asked, got }),
    });
    const taken: { body: string; owed: number }[] = [];
    const take = (m: JsMsg) => {
      taken.push({ body: m.string(), owed: pulls.owed });
      m.ack();
    };
    const lapsed: string[] = [];
    let stopped = false;
    const loop = (async () => {
      while (!stopped) await pulls.pull(10, take).catch((e: unknown) => lapsed.push(String(e)));
    })();
    try {
      await js.publish('pulls.a', 'before');
      await waitUntil(() => taken.some((t) => t.body === 'before'));
      // The pull that brought it ends at its expiry, and the answer saying so is lost; a message
      // published after that waits for the next pull.
      dropper.drop(requestTimeout);
      await waitUntil(() => dropper.dropped === 1);
      await js.publish('pulls.a', 'during');
      await waitUntil(() => taken.some((t) => t.body === 'during'));
      // Taken while the unanswered fetch was still open (nats.js ends it only when it has missed two
      // idle heartbeats, ~1 s after the expiry): its 9 unfilled places were owed to it then.
      expect(overdue).toContainEqual({ asked: 10, got: 1 });
      expect(taken.find((t) => t.body === 'during')!.owed).toBeGreaterThanOrEqual(9);
      // nats.js does end it, as a pull whose heartbeats were missed: then nothing is owed to it.
      await waitUntil(() => pulls.owed === 0);
    } finally {
      stopped = true;
      pulls.stop();
      await loop;
    }
    expect(taken.map((t) => t.body)).toEqual(['before', 'during']);
  });

  it('a loop whose whole room is owed to an overdue fetch pulls again once that fetch ends (as on a link that went down)', async () => {
    const { js, consumer } = await openDeliveryStream(nc, {
      stream: 'PULLS2',
      subject: 'pulls2',
      consumer: 'pulls2',
      ackWaitMs: 30_000,
    });
    let wake: (() => void) | undefined;
    const released: number[] = [];
    const pulls = new Pulls(consumer, {
      expiresMs: 1000,
      graceMs: 100,
      onReleased: () => {
        released.push(pulls.owed);
        wake?.();
      },
    });
    const taken: string[] = [];
    const waited: number[] = [];
    let stopped = false;
    // The bus's loop: pull as much as there is room for, else wait to be woken.
    const loop = (async () => {
      while (!stopped) {
        const room = 10 - pulls.owed;
        if (room <= 0) {
          waited.push(room);
          await new Promise<void>((r) => (wake = r));
          continue;
        }
        await pulls.pull(room, (m) => (taken.push(m.string()), m.ack())).catch(() => {});
      }
    })();
    try {
      // An empty pull whose end is lost: all 10 places are owed to it, the loop waits.
      dropper.drop(requestTimeout);
      await waitUntil(() => waited.length > 0);
      // nats.js ends it (missed heartbeats), the loop is woken and pulls again.
      await waitUntil(() => released.length > 0);
      await js.publish('pulls2.a', 'after');
      await waitUntil(() => taken.includes('after'));
      expect(released).toEqual([0]);
    } finally {
      stopped = true;
      wake?.();
      pulls.stop();
      await loop;
    }
  });
});
