/**
 * "PostgreSQL restarted during traffic: no accepted message lost; clients get a clear
 * error (not a hang) while it is down", with a real restart: three `caxton serve` processes on one
 * `nats-server -js` and a PostgreSQL server of this test's own (helpers/private-postgres.ts; the
 * machine's shared one is never restarted), stopped with `pg_ctl stop -m fast` and, in a second
 * round, `-m immediate` (a crash: every session dropped, recovery at the next start), while
 * submissions keep arriving at all three nodes.
 *
 * While it is down: every submission answers 503 `not_ready` naming the dependency
 * `cluster-postgresql` within FAST_503_MS (no hang, no 500), reads too, and every node's /ready
 * answers 503 naming `cluster-postgresql`. Once it is back: every node is ready again, every
 * accepted (202) message is delivered and answered exactly once, every refused one sent again with
 * its id is delivered once, and new traffic is accepted.
 *
 * Skipped, with the helper's one line, without nats-server or PostgreSQL's server binaries; in CI
 * (CI=true or CAXTON_TEST_REQUIRE_SYSTEM=1) their absence fails instead.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hasSystem } from '../helpers/system.js';
import { sleep } from '../helpers/wait.js';
import { startCluster, type ClusterNode, type TestCluster } from './helpers/nodes.js';
import { startPrivatePostgres, type PrivatePostgres } from './helpers/private-postgres.js';
import { accepted, call, statusCounts, trafficKit, WORKER, type Res, type Submitted } from './helpers/traffic.js';

const run = hasSystem('nats-server') && hasSystem('postgresql-server');

/** [cluster.delivery] ack_wait of every node, in ms. */
const ACK_WAIT_MS = 3_000;
/** What "a clear error, not a hang" means on this shared 2-core machine: a 503 within this. */
const FAST_503_MS = 4_000;
/** How long PostgreSQL stays down in each round. */
const DOWN_MS = 3_000;
const DEPENDENCY = 'cluster-postgresql';

let pg: PrivatePostgres | undefined;
let cluster: TestCluster;
const kit = trafficKit(() => cluster, 'pg-restart');
const { fail, newIds, submit, readyIs, traffic, waitDelivered, answersOf, expectAnsweredOnce, resendRefused } = kit;

/** The requests the nodes logged as failed with anything but not_ready (a 500's cause), for failure messages. */
function failedRequests(): string {
  return cluster.nodes
    .map(
      (n) =>
        `--- ${n.name}\n${n
          .output()
          .split('\n')
          .filter((l) => l.includes('"request failed"') && !l.includes('"not_ready"'))
          .slice(0, 5)
          .join('\n')}`,
    )
    .join('\n');
}

/** Polls every node's GET /ready until it answers `want`; resolves with each node's ms and last answer. */
async function allReady(
  want: 200 | 503,
  timeoutMs: number,
  what: string,
): Promise<{ node: string; ms: number; res: Res }[]> {
  const t0 = performance.now();
  return Promise.all(
    cluster.nodes.map(async (n: ClusterNode) => {
      const res = await readyIs(n, want, timeoutMs, what, 50);
      return { node: n.name, ms: Math.round(performance.now() - t0), res };
    }),
  );
}

describe.skipIf(!run)('PostgreSQL of three caxton serve nodes stopped and started again during traffic', () => {
  beforeAll(async () => {
    const t0 = performance.now();
    pg = await startPrivatePostgres();
    cluster = await startCluster({
      nodes: [{ name: 'node-a' }, { name: 'node-b' }, { name: 'node-c' }],
      pgUrl: pg.url,
      ackWait: `${ACK_WAIT_MS}ms`,
      publishTimeout: '1s',
    });
    const [A] = cluster.nodes;
    const r = await call(A!, 'POST', '/api/v1/agents', WORKER, { contentType: 'application/toml' });
    if (r.status !== 201) fail('deploying worker on node-a', r);
    for (const n of cluster.nodes) {
      const t = performance.now();
      while ((await call(n, 'GET', '/api/v1/agents/worker')).status !== 200) {
        if (performance.now() - t > 5000) fail(`worker not in ${n.name}'s registry within 5 s`);
        await sleep(20);
      }
    }
    console.log(
      `[pg-restart] PostgreSQL on ${pg.url} and three nodes up in ${Math.round(performance.now() - t0)} ms (schema ${cluster.schema})`,
    );
  }, 90_000);

  afterAll(async () => {
    try {
      await kit.stopTraffic();
      await cluster?.close();
    } finally {
      await pg?.cleanup();
    }
  }, 60_000);

  // A failed round leaves neither traffic nor a stopped PostgreSQL to the next one.
  afterEach(async () => {
    await kit.stopTraffic();
    if (pg && !pg.running) await pg.start();
  }, 60_000);

  for (const mode of ['fast', 'immediate'] as const) {
    it(`pg_ctl stop -m ${mode} under traffic: a fast 503 naming ${DEPENDENCY} and /ready 503 while it is down; after the start, ready again, every accepted message delivered once`, async () => {
      const t0 = performance.now();
      const nodes = cluster.nodes;
      // Eight loops over the three nodes; a refused one waits 150 ms, so the outage adds a
      // hundred or two refusals to send again, not several hundred.
      const load = traffic(() => nodes, `pg${mode}`, 8, 150);
      await sleep(2000);

      const stopAt = Date.now();
      await pg!.stop({ mode });
      const downAt = Date.now();

      // /ready on every node turns 503, naming the dependency.
      const notReady = await allReady(503, 10_000, `/ready 503 with PostgreSQL stopped (-m ${mode})`);
      for (const r of notReady) {
        const deps = (r.res.json?.dependencies ?? []) as { name: string; ok: boolean }[];
        expect(
          deps.find((d) => d.name === DEPENDENCY),
          `${r.node}: ${r.res.text}`,
        ).toMatchObject({ ok: false });
      }

      // A submission and a read at each node while it is down: a clear 503, fast.
      const probes = await Promise.all(nodes.map((n) => submit(n, newIds(`pg${mode}probe`, 1)[0]!, 15_000)));
      const reads = await Promise.all(
        nodes.map((n) => call(n, 'GET', '/api/v1/messages/anything', undefined, { timeoutMs: 15_000 })),
      );
      for (const p of probes)
        expect(p, JSON.stringify(p)).toMatchObject({ status: 503, code: 'not_ready', dependency: DEPENDENCY });
      for (const p of probes)
        expect(p.ms, `503 within ${FAST_503_MS} ms: ${JSON.stringify(p)}`).toBeLessThan(FAST_503_MS);
      for (const r of reads) {
        expect(r.status, r.text).toBe(503);
        expect(r.json?.error?.details?.dependency, r.text).toBe(DEPENDENCY);
        expect(r.ms, r.text).toBeLessThan(FAST_503_MS);
      }

      await sleep(Math.max(0, DOWN_MS - (Date.now() - downAt)));
      const startAt = Date.now();
      await pg!.start();
      const upAt = Date.now();
      const readyAgain = await allReady(200, 30_000, `/ready 200 after PostgreSQL started again (-m ${mode})`);
      await sleep(2000);
      const rs: Submitted[] = await load.stop();

      // While it was down (PostgreSQL's processes gone until it accepted connections again):
      // only fast 503s naming it.
      const during = rs.filter((r) => r.at >= downAt && r.at + r.ms < startAt);
      const after = rs.filter((r) => r.at > upAt + Math.max(...readyAgain.map((r) => r.ms)));
      const slowest = Math.round(Math.max(...during.map((r) => r.ms), ...probes.map((p) => p.ms)));
      console.log(
        `[pg-restart] -m ${mode}: stop took ${downAt - stopAt} ms, down ${startAt - downAt} ms, start took ${upAt - startAt} ms; ` +
          `/ready 503 after ${JSON.stringify(Object.fromEntries(notReady.map((r) => [r.node, r.ms])))} ms, 200 again ${JSON.stringify(Object.fromEntries(readyAgain.map((r) => [r.node, r.ms])))} ms after the start; ` +
          `${rs.length} submissions ${JSON.stringify(statusCounts(rs))}, while down ${JSON.stringify(statusCounts(during))} (slowest ${slowest} ms, probes ${probes.map((p) => Math.round(p.ms)).join('/')} ms), after ${JSON.stringify(statusCounts(after))}`,
      );
      expect(during.length, 'submissions made while PostgreSQL was down').toBeGreaterThan(0);
      for (const r of during) {
        expect(r, JSON.stringify(r)).toMatchObject({ status: 503, code: 'not_ready', dependency: DEPENDENCY });
        expect(r.ms, `503 within ${FAST_503_MS} ms: ${JSON.stringify(r)}`).toBeLessThan(FAST_503_MS);
      }
      // Around the stop and the start too: accepted, or a 503 (never a 500, a hang or a dropped connection).
      const other = rs.filter((r) => r.status !== 202 && r.status !== 503);
      if (other.length > 0)
        fail(
          `submissions neither accepted nor refused with 503: ${JSON.stringify(other.slice(0, 5))}; the nodes' failed requests:\n${failedRequests()}`,
        );
      expect(other, 'every submission either accepted or refused with 503').toEqual([]);
      expect(
        rs.filter((r) => r.status === 503 && r.dependency !== DEPENDENCY),
        `every 503 names ${DEPENDENCY}`,
      ).toEqual([]);
      expect(after.length, 'submissions once every node was ready again').toBeGreaterThan(0);
      expect(
        after.filter((r) => r.status !== 202),
        'every submission accepted once every node is ready again',
      ).toEqual([]);

      // No accepted message lost: each delivered and answered exactly once.
      const ids = accepted(rs);
      const deliveredMs = await waitDelivered(() => nodes[1]!, ids, 60_000);
      const perNode = expectAnsweredOnce(await answersOf(nodes[2]!, ids), `PostgreSQL stopped -m ${mode}`);
      console.log(
        `[pg-restart] -m ${mode}: ${ids.length} accepted messages all delivered ${Math.round(deliveredMs)} ms after the traffic stopped, answered once each by ${JSON.stringify(perNode)}`,
      );

      // A refused message sent again with its id (what the 503 says to do) is delivered once.
      const again = await resendRefused([...rs, ...probes], 8);
      await waitDelivered(() => nodes[0]!, again, 30_000);
      expectAnsweredOnce(
        await answersOf(nodes[1]!, again),
        `messages refused while PostgreSQL was stopped (-m ${mode}), sent again`,
      );
      console.log(
        `[pg-restart] -m ${mode}: ${ids.length + again.length} messages delivered once in all; the round took ${Math.round(performance.now() - t0)} ms`,
      );
    }, 120_000);
  }
});
