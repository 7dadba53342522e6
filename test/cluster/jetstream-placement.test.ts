/**
 * A node's JetStream assets on a NATS cluster still forming: two of three routed nats-servers up
 * (a meta leader, but no third peer for a replica), then the third. The delivery stream and a
 * bucket of three replicas are created once the third server joins, the wait said once in the log;
 * a cluster that never gets its third server fails after the bound, naming the asset, the replicas
 * and what to check. And the rule itself: which answers are a forming cluster's.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterEach, describe, expect, it } from 'vitest';
import { createKv } from '../../src/cluster/nats.js';
import { openDeliveryStream, untilPlaced, whileForming } from '../../src/messaging/cluster/index.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { startNatsCluster, type NatsCluster } from '../helpers/nats-server.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';

const run = hasSystem('nats-server');
const opened: { nats: NatsCluster; nc?: NatsConnection }[] = [];

afterEach(async () => {
  for (const o of opened.splice(0)) {
    await o.nc?.close();
    await o.nats.stop();
  }
  removeTempDirs();
});

/** Two of three servers up; a client connected to them. */
async function forming() {
  const nats = await startNatsCluster(3, { started: 2 });
  const o: (typeof opened)[number] = { nats };
  opened.push(o);
  o.nc = await connect({ servers: nats.urls.slice(0, 2) });
  return { nats, nc: o.nc };
}

function logged() {
  const warned: string[] = [];
  return { warned, log: { warn: (_: object, msg: string) => void warned.push(msg) } };
}

describe('untilPlaced', () => {
  const forming10005 = Object.assign(new Error('no suitable peers for placement'), { code: 10005 });

  it("retries a forming cluster's answers and returns the first success", async () => {
    let calls = 0;
    const { warned, log } = logged();
    const out = await untilPlaced(
      async () => {
        if (++calls < 3) throw forming10005;
        return 'made';
      },
      { what: 'the bucket "b"', waitMs: 10_000, log },
    );
    expect(out).toBe('made');
    expect(calls).toBe(3);
    expect(warned).toEqual([
      'the NATS cluster cannot place the bucket "b" yet (it may still be forming); trying again until it can',
    ]);
  });

  it('passes any other failure through at once', async () => {
    let calls = 0;
    const refused = Object.assign(new Error('insufficient resources'), { code: 10023 });
    await expect(
      untilPlaced(
        async () => {
          calls++;
          throw refused;
        },
        { what: 'x', waitMs: 10_000 },
      ),
    ).rejects.toBe(refused);
    expect(calls).toBe(1);
  });

  it('tells the answers of a forming cluster from the others', () => {
    expect(whileForming(forming10005)).toBe(true);
    expect(whileForming(Object.assign(new Error('x'), { code: 10008 }))).toBe(true);
    expect(whileForming(Object.assign(new Error('timeout'), { name: 'TimeoutError' }))).toBe(true);
    expect(whileForming(new Error('JetStream system temporarily unavailable'))).toBe(true);
    expect(whileForming(Object.assign(new Error('stream name already in use'), { code: 10058 }))).toBe(false);
    expect(whileForming(new Error('jetstream is not enabled'))).toBe(false);
    expect(whileForming(undefined)).toBe(false);
  });
});

describe.runIf(run)('JetStream assets on a NATS cluster still forming (nats-server)', () => {
  it('the delivery stream and a bucket of three replicas are made once the third server joins', async () => {
    const { nats, nc } = await forming();
    const { warned, log } = logged();
    const stream = openDeliveryStream(nc, {
      stream: 'Splace',
      subject: 'dplace',
      consumer: 'cplace',
      ackWaitMs: 5_000,
      replicas: 3,
      placement: { waitMs: 60_000, log },
    });
    const kv = createKv(nc, 'place_kv', { history: 1, replicas: 3 }, { waitMs: 60_000, log });
    const settled = { stream: false, kv: false };
    void stream.then(() => (settled.stream = true));
    void kv.then(() => (settled.kv = true));
    // Refused while two servers are up: each creation has said once that it waits.
    const until = Date.now() + 30_000;
    while (warned.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(warned.sort()).toEqual([
      'the NATS cluster cannot place the delivery stream "Splace" yet (it may still be forming); trying again until it can',
      'the NATS cluster cannot place the key-value bucket "place_kv" yet (it may still be forming); trying again until it can',
    ]);
    expect(settled).toEqual({ stream: false, kv: false });
    await nats.startRest();
    await Promise.all([stream, kv]);
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info('Splace')).config.num_replicas).toBe(3);
    expect((await jsm.streams.info('KV_place_kv')).config.num_replicas).toBe(3);
    expect(warned).toHaveLength(2);
  }, 90_000);

  it('a cluster that never gets its third server: the node fails after the bound, naming what and why', async () => {
    const { nc } = await forming();
    const failed = await createKv(nc, 'never_kv', { history: 1, replicas: 3 }, { waitMs: 3_000 }).catch(
      (e: unknown) => e,
    );
    expect(failed).toBeInstanceOf(CaxtonError);
    expect((failed as CaxtonError).code).toBe('not_ready');
    expect((failed as Error).message).toMatch(
      /^the NATS cluster could not place the key-value bucket "never_kv" with 3 replicas within 3 s \(.+\): check that at least 3 NATS servers with JetStream are up and routed to each other, or lower \[cluster\] replicas$/,
    );
  }, 60_000);
});
