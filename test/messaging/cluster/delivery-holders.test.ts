/**
 * Asking the other nodes whether they still hold a delivery (src/messaging/cluster/delivery-holders.ts),
 * on a real `nats-server`: a node holding it says so (and is told to keep it alive), the others say
 * no, a node that is gone costs nothing (NATS answers at once that no one listens), and a node that
 * listens but does not answer is waited for at most the wait, then taken for dead, with a warning.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeliveryHolders } from '../../../src/messaging/cluster/delivery-holders.js';
import { startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { hasSystem } from '../../helpers/system.js';
import { removeTempDirs } from '../../helpers/tmp.js';

const run = hasSystem('nats-server');
let nats: NatsServer;
const conns: NatsConnection[] = [];

async function conn(): Promise<NatsConnection> {
  const nc = await connect({ servers: nats.url, noAsyncTraces: true });
  conns.push(nc);
  return nc;
}

beforeAll(async () => {
  if (run) nats = await startNatsServer();
});

afterAll(async () => {
  for (const nc of conns) await nc.close().catch(() => {});
  await nats?.stop();
  removeTempDirs();
});

interface Node {
  holders: DeliveryHolders;
  /** The row ids it holds, and how often it was asked about each it holds. */
  held: Set<number>;
  kept: Map<number, number>;
  warnings: { obj: object; msg: string }[];
}

async function node(name: string, peers: string[], timeoutMs = 3000): Promise<Node> {
  const held = new Set<number>();
  const kept = new Map<number, number>();
  const warnings: Node['warnings'] = [];
  const holders = new DeliveryHolders({
    nc: await conn(),
    subject: 'holders_test',
    node: name,
    holds: (id) => {
      if (held.has(id)) kept.set(id, (kept.get(id) ?? 0) + 1);
      return held.has(id);
    },
    peers: () => peers,
    timeoutMs,
    log: { warn: (obj, msg) => warnings.push({ obj, msg }) },
  });
  return { holders, held, kept, warnings };
}

describe.runIf(run)('DeliveryHolders', () => {
  it('names the node holding a delivery and tells it to keep it; none when no node holds it; a node gone costs nothing', async () => {
    // node-gone is asked but never started: no one listens on its subject.
    const peers = ['node-a', 'node-b', 'node-c', 'node-gone'];
    // A wait far past the test's own timeout: an answer that did not come at once fails the test.
    const wait = 120_000;
    const [a, b, c] = (await Promise.all(peers.slice(0, 3).map((p) => node(p, peers, wait)))) as [Node, Node, Node];
    await Promise.all(conns.map((nc) => nc.flush()));
    b.held.add(7);

    expect(await a.holders.holder(7)).toBe('node-b');
    expect(b.kept.get(7)).toBe(1);
    // Every node answers no at once, the missing one by NATS's 503.
    expect(await a.holders.holder(8)).toBeUndefined();
    // A node never asks itself (it knows what it holds).
    b.held.add(9);
    expect(await b.holders.holder(9)).toBeUndefined();
    expect(b.kept.get(9)).toBeUndefined();
    expect([...a.warnings, ...b.warnings, ...c.warnings]).toEqual([]);
    // What caxton_cluster_redeliveries_asked_total counts.
    expect(a.holders.answers).toEqual({ held: 1, free: 1, unanswered: 0 });
    expect(b.holders.answers).toEqual({ held: 0, free: 1, unanswered: 0 });
    for (const n of [a, b, c]) n.holders.stop();
  }, 30_000);

  it('waits at most its wait for a node that listens but does not answer, then says no one holds it, with a warning', async () => {
    const peers = ['node-x', 'node-stuck'];
    const x = await node('node-x', peers, 400);
    // A node whose process is stopped: its subscription is still there, and nothing answers.
    const stuck = await conn();
    stuck.subscribe('holders_test_holding.node-stuck', { callback: () => {} });
    await stuck.flush();

    const t0 = performance.now();
    expect(await x.holders.holder(1)).toBeUndefined();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(350);
    expect(x.warnings).toEqual([
      {
        obj: expect.objectContaining({ node: 'node-stuck', delivery: 1, wait_ms: 400 }),
        msg: expect.stringContaining('did not say within the wait'),
      },
    ]);
    expect(x.holders.answers).toEqual({ held: 0, free: 0, unanswered: 1 });
    x.holders.stop();
  });
});
