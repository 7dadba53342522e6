/**
 * The cluster's bus on a NATS cluster of three JetStream servers (Debian's nats-server, routes on
 * loopback, a store each) with `[cluster] replicas = 3`: two Caxton nodes, each connected with all
 * three URLs, keep delivering while one NATS server is killed (SIGKILL) and after it comes back.
 * Every message that got its 202 is delivered and run exactly once; a submission refused while
 * JetStream elects new leaders gets a clear 503 and is delivered once when sent again with its id.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../src/agents/index.js';
import { clusterConfigSchema } from '../../src/config/index.js';
import { ClusterBus } from '../../src/messaging/cluster/index.js';
import { PgMessageReads, PgMessageStore } from '../../src/messaging/postgres/index.js';
import type { Conversation } from '../../src/messaging/index.js';
import { agentDef, deploy, messagingConfig } from '../messaging/helpers.js';
import { startNatsCluster, type NatsCluster } from '../helpers/nats-server.js';
import { hasSystem, TEST_PG_URL } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

const run = hasSystem('nats-server') && hasSystem('postgresql');
const schema = `cnats_${process.pid}_${Date.now()}`;
let nats: NatsCluster;
const open: { bus: ClusterBus; nc: NatsConnection; pool: pg.Pool }[] = [];

async function node(name: string, ran: string[]): Promise<ClusterBus> {
  const nc = await connect({ servers: nats.urls, reconnectTimeWait: 200, maxReconnectAttempts: -1 });
  const pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 4 });
  pool.on('error', () => {});
  const store = await PgMessageStore.open({ pool, schema });
  const registry = new AgentRegistry();
  deploy(registry, agentDef('worker', ['work']));
  const cluster = clusterConfigSchema.parse({
    node: name,
    replicas: 3,
    delivery: { stream: `S${schema}`, consumer: `c${schema}`, subject: `d${schema}`, ack_wait: 5, publish_timeout: 2 },
  });
  const bus = new ClusterBus({
    store,
    reads: new PgMessageReads({ store }),
    nc,
    registry,
    config: messagingConfig({ retry_base: 50 }),
    cluster,
    sweepMs: 200,
    republish: { everyMs: 500, afterMs: 4000 },
  });
  bus.registerHandler('worker', (m) => void ran.push(String(m.content)));
  open.push({ bus, nc, pool });
  await bus.start();
  return bus;
}

beforeAll(async () => {
  if (!run) return;
  nats = await startNatsCluster(3);
  // JetStream's meta leader is elected after the routes connect, and learns its peers after that:
  // wait until a stream of three replicas can be placed ("no suitable peers for placement" until then).
  const nc = await connect({ servers: nats.urls });
  const probe = `probe${process.pid}`;
  await waitUntil(
    async () => {
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.add({ name: probe, subjects: [`${probe}.>`], num_replicas: 3 });
        await jsm.streams.delete(probe);
        return true;
      } catch {
        return false;
      }
    },
    { timeoutMs: 30_000, what: 'a NATS cluster that places three replicas' },
  );
  await nc.close();
}, 60_000);

afterAll(async () => {
  for (const o of open.splice(0)) {
    await o.bus.close();
    await o.nc.close();
    await o.pool.end();
  }
  if (run) {
    const pool = new pg.Pool({ connectionString: TEST_PG_URL, max: 1 });
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
    await nats?.stop();
  }
  removeTempDirs();
});

describe.runIf(run)('ClusterBus on a NATS cluster of three servers (replicas 3)', () => {
  it('one NATS server killed and restarted under traffic: every accepted message is run once; refusals are 503s', async () => {
    const ran: string[] = [];
    const buses = [await node('a', ran), await node('b', ran)];
    const jsm = await jetstreamManager(open[0]!.nc);
    expect((await jsm.streams.info(`S${schema}`)).config.num_replicas).toBe(3);

    const accepted = new Map<string, string>(); // message id → conversation id
    const refused = new Set<string>();
    const other: unknown[] = [];
    let sent = 0;
    let refusals = 0;
    const everRefused = new Set<string>();
    let firstRefusal: number | undefined;
    let lastRefusal = 0;
    const send = async (i: number): Promise<void> => {
      const id = `m-${i}`;
      try {
        const r = await buses[i % 2]!.submit({
          id,
          performative: 'inform',
          sender: 'client',
          receivers: ['worker'],
          content: id,
        });
        accepted.set(id, r.conversation_id);
        refused.delete(id);
      } catch (e) {
        if ((e as { code?: string }).code === 'not_ready') {
          refused.add(id);
          everRefused.add(id);
          refusals++;
          firstRefusal ??= Date.now();
          lastRefusal = Date.now();
        } else other.push(e);
      }
    };
    const burst = async (n: number) => {
      for (let k = 0; k < n; k += 10) await Promise.all(Array.from({ length: 10 }, () => send(sent++)));
    };
    await burst(100);
    // Kill the server the stream's leader is on: JetStream elects another among the two left.
    const leader = (await jsm.streams.info(`S${schema}`)).cluster?.leader;
    const victim = nats.servers.find((_, i) => `n${i}` === leader) ?? nats.servers[0]!;
    await victim.stop();
    // With one server of three down, submissions are accepted again (a new leader; replicas 3).
    const before = accepted.size;
    const { elapsedMs } = await waitUntil(
      async () => {
        await burst(10);
        return accepted.size - before >= 100;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    console.log(`NATS cluster: 100 messages accepted with ${leader} down, ${elapsedMs.toFixed(0)} ms after the kill`);
    await victim.restart();
    await burst(100);
    expect(other).toEqual([]);
    // What was refused is sent again with its id (as a client told "not ready, retry" would).
    for (const id of [...refused]) {
      await waitUntil(
        async () => {
          await send(Number(id.slice(2)));
          return !refused.has(id);
        },
        { timeoutMs: 30_000 },
      );
    }
    expect(accepted.size).toBe(sent);
    const done = (c: Conversation) => c.state === 'completed';
    for (const [id, conv] of accepted) {
      const c = await buses[0]!.wait(conv as Conversation['id'], 30_000);
      expect(done(c), `${id}: ${c.state}`).toBe(true);
    }
    // Each accepted message ran exactly once, whichever node and NATS server carried it.
    const counts = new Map<string, number>();
    for (const r of ran) counts.set(r, (counts.get(r) ?? 0) + 1);
    expect([...counts.values()].filter((n) => n !== 1)).toEqual([]);
    expect(counts.size).toBe(sent);
    console.log(
      `NATS cluster: stream leader ${leader} killed under traffic; ${everRefused.size} messages answered 503 (${refusals} answers over ${firstRefusal === undefined ? 0 : lastRefusal - firstRefusal} ms) and were sent again; ${sent} delivered once`,
    );
  }, 180_000);
});
