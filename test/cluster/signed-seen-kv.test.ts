/**
 * The cluster's seen-set of signed deliveries (ADR 0114) on a real nats-server: what one node
 * marks as delivered, every other node refuses to deliver again, whatever the message store says.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvSignedSeen } from '../../src/cluster/index.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';

const run = hasSystem('nats-server');

let nats: NatsServer;
const connections: NatsConnection[] = [];

beforeAll(async () => {
  if (run) nats = await startNatsServer();
});

afterAll(async () => {
  for (const nc of connections) await nc.close().catch(() => {});
  await nats?.stop();
  removeTempDirs();
});

async function nodeSeen(bucket: string): Promise<KvSignedSeen> {
  const nc = await connect({ servers: nats.url });
  connections.push(nc);
  return new KvSignedSeen({ nc, bucket, ttlMs: 3_600_000 });
}

describe.skipIf(!run)('signed deliveries seen across nodes', () => {
  it('a delivery marked on node A is seen on node B, per receiver; another bucket knows nothing of it', async () => {
    const a = await nodeSeen('seen_a');
    const b = await nodeSeen('seen_a');
    const other = await nodeSeen('seen_b');
    const id = 'msg_01JABCDEF/with.odd chars';
    expect(await b.delivered(id, 'payee')).toBe(false);
    await a.mark(id, 'payee');
    expect(await b.delivered(id, 'payee')).toBe(true);
    expect(await b.delivered(id, 'PAYEE')).toBe(true);
    expect(await b.delivered(id, 'other')).toBe(false);
    expect(await other.delivered(id, 'payee')).toBe(false);
  });

  it('a signed submission is claimed once across nodes, even at once; a released claim may be taken again', async () => {
    const a = await nodeSeen('seen_claim');
    const b = await nodeSeen('seen_claim');
    const taken = await Promise.all([a.claim('pay-1', 'submitted:sk_x'), b.claim('pay-1', 'submitted:sk_x')]);
    expect(taken.filter(Boolean)).toHaveLength(1);
    expect(await a.claim('pay-1', 'submitted:sk_x')).toBe(false);
    expect(await b.claim('pay-1', 'submitted:sk_other')).toBe(true);
    await b.release('pay-1', 'submitted:sk_x');
    expect(await a.claim('pay-1', 'submitted:sk_x')).toBe(true);
    expect(await b.claim('pay-1', 'submitted:sk_x')).toBe(false);
  });
});
