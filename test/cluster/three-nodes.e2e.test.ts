/**
 * End to end: three `caxton serve` processes on one `nats-server -js` and one PostgreSQL
 * schema act as one system. Each node answers through its own scripted provider whose replies name
 * the node, so a reply shows where its message ran (test/cluster/helpers/nodes.ts).
 *
 * - an agent deployed on A is invoked on C;
 * - a tool package deployed through A's API is called through C's, replaced through C's and
 *   removed through B's, every node following;
 * - capability requests submitted at A run on the other nodes too;
 * - a Contract Net whose proposals come from several nodes awards exactly once;
 * - kill -9 of a node with accepted messages in flight: every message ends delivered, and answered
 *   exactly once, after the others take over its deliveries (ack_wait);
 * - nats-server killed and restarted during traffic: no accepted (202) message lost, a fast 503
 *   while it is down; one node's PostgreSQL link cut (TCP relay): 503 naming PostgreSQL, /ready
 *   503, then recovery;
 * - one node cut off from NATS: /ready 503, it takes no work (the others deliver), ready again
 *   once the link is back.
 *
 * CAXTON_TEST_CLUSTER_MESSAGES sets the size of the kill -9 run (default 5,000:
 * about 30 s on a quiet 2-core machine). CAXTON_TEST_CLUSTER_LOG=info shows the nodes' logs in
 * failure messages. The tests of this file build on each other: run the file, not one test.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hasSystem } from '../helpers/system.js';
import { sleep, waitUntil } from '../helpers/wait.js';
import { ensureToolsBuilt, EXAMPLE_DIR } from '../tools/servers/helpers.js';
import { nodeOf, nodeScript, startCluster, type ClusterNode, type TestCluster } from './helpers/nodes.js';
import {
  accepted,
  call,
  pool,
  statusCounts,
  trafficKit,
  workRequest,
  type Json,
  type Reply,
} from './helpers/traffic.js';

const run = hasSystem('nats-server') && hasSystem('postgresql');
if (!run)
  console.log(
    '[caxton tests] test/cluster/three-nodes.e2e.test.ts skipped: it needs nats-server and PostgreSQL (see the lines above)',
  );

const MESSAGES = Number(process.env.CAXTON_TEST_CLUSTER_MESSAGES ?? 5000);
/** [cluster.delivery] ack_wait of every node, in ms. */
const ACK_WAIT_MS = 3_000;
/** [cluster.delivery] publish_timeout, in ms: how long a submission may wait for JetStream before its 503. */
const PUBLISH_TIMEOUT_MS = 1_000;
/** What "fast" means for a 503 on this (shared, 2-core) machine: the publish timeout plus slack. */
const FAST_503_MS = PUBLISH_TIMEOUT_MS + 3_000;
const NODES = ['node-a', 'node-b', 'node-c'] as const;

let cluster: TestCluster;
let A: ClusterNode;
let B: ClusterNode;
let C: ClusterNode;

// ------------------------------------------------------------------------------------------ traffic

// HTTP calls, submissions, traffic loops and the delivered-once checks: shared with the
// PostgreSQL restart test (helpers/traffic.ts).
const {
  fail,
  newIds,
  submit,
  readyIs,
  traffic,
  stopTraffic,
  waitDelivered,
  answersOf,
  expectAnsweredOnce,
  resendRefused,
} = trafficKit(() => cluster, 'three-nodes');

/** nats-server accepts connections on its port. */
const natsUp = () =>
  new Promise<boolean>((resolve) => {
    const sock = connect(cluster.nats.port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });

const ready = async (n: ClusterNode) => (await call(n, 'GET', '/ready', undefined, { timeoutMs: 5000 })).status === 200;

/** Every node lists all three nodes as up in GET /api/v1/cluster. */
async function clusterWhole(timeoutMs = 15_000): Promise<void> {
  await waitUntil(
    async () => {
      for (const n of cluster.nodes) {
        const r = await call(n, 'GET', '/api/v1/cluster', undefined, { timeoutMs: 3000 });
        if (r.status !== 200) return false;
        const up = (r.json.nodes as { node: string; state: string }[])
          .filter((x) => x.state === 'up')
          .map((x) => x.node);
        if (!NODES.every((name) => up.includes(name))) return false;
      }
      return true;
    },
    { timeoutMs, intervalMs: 200, what: 'every node listing node-a, node-b and node-c as up in GET /api/v1/cluster' },
  );
}

// ------------------------------------------------------------------------------------------ agents

const WORKER = `name = "worker"
description = "does the work; its answer names the node that ran it"
capabilities = ["work"]
system_prompt = "You are worker."

[messaging]
max_concurrency = 16
`;

const bidder = (n: number) => `name = "bidder-${n}"
description = "bids in Contract Nets; its proposal names the node that made it"
capabilities = ["bid"]
system_prompt = "You are bidder-${n}."
`;

async function deploy(node: ClusterNode, toml: string): Promise<string> {
  const r = await call(node, 'POST', '/api/v1/agents', toml, { contentType: 'application/toml' });
  if (r.status !== 201) fail(`deploying on ${node.name}`, r);
  return r.json.agent?.name ?? r.json.name;
}

/** Resolves with the ms until `name` is in every node's registry. */
async function everywhere(name: string, timeoutMs = 5000): Promise<number> {
  const t0 = performance.now();
  await waitUntil(
    async () =>
      (
        await Promise.all(
          cluster.nodes.map(async (n) => (await call(n, 'GET', `/api/v1/agents/${name}`)).status === 200),
        )
      ).every(Boolean),
    {
      timeoutMs,
      intervalMs: 10,
      what: `agent ${name} on every node`,
    },
  );
  return performance.now() - t0;
}

// ------------------------------------------------------------------------------------------ tests

describe.skipIf(!run)('three caxton serve nodes on NATS JetStream and PostgreSQL', () => {
  beforeAll(async () => {
    const t0 = performance.now();
    cluster = await startCluster({
      nodes: [{ name: 'node-a', proxyPg: true }, { name: 'node-b' }, { name: 'node-c', proxyNats: true }],
      ackWait: `${ACK_WAIT_MS}ms`,
      publishTimeout: `${PUBLISH_TIMEOUT_MS}ms`,
    });
    [A, B, C] = [cluster.node('node-a'), cluster.node('node-b'), cluster.node('node-c')];
    await clusterWhole();
    console.log(
      `[three-nodes] cluster up in ${Math.round(performance.now() - t0)} ms (schema ${cluster.schema}, NATS ${cluster.nats.url})`,
    );
  }, 90_000);

  afterAll(async () => {
    await cluster?.close();
  }, 60_000);

  // A failed test leaves no cut link, stopped nats-server or dead node to the next one.
  afterEach(async () => {
    if (!cluster) return;
    await stopTraffic();
    A.pgProxy!.restore();
    C.natsProxy!.restore();
    if (!(await natsUp())) await cluster.nats.restart();
    for (const n of cluster.nodes) if (!n.alive) await cluster.restart(n.name);
  }, 60_000);

  it('lists the three nodes with their advertised URLs; an agent deployed on A reaches B and C at once and is invoked on C', async () => {
    const r = await call(B, 'GET', '/api/v1/cluster');
    expect(r.status).toBe(200);
    expect(r.json.clustered).toBe(true);
    expect(r.json.node).toBe('node-b');
    const listed = Object.fromEntries(
      (r.json.nodes as { node: string; url: string; self: boolean }[]).map((n) => [n.node, n]),
    );
    for (const n of cluster.nodes)
      expect(listed[n.name], JSON.stringify(r.json)).toMatchObject({ url: n.url, self: n.name === 'node-b' });

    const t0 = performance.now();
    expect(await deploy(A, WORKER)).toBe('worker');
    const lag = await everywhere('worker');
    console.log(
      `[three-nodes] worker deployed on node-a: in every registry after ${Math.round(lag)} ms (deploy answered in ${Math.round(performance.now() - t0 - lag)} ms)`,
    );
    expect(lag, 'directory propagation (~100 ms expected)').toBeLessThan(2000);

    const inv = await call(C, 'POST', '/api/v1/agents/worker/invoke', { request: 'say who you are' });
    if (inv.status !== 200) fail('invoke on node-c', inv);
    expect(inv.json).toMatchObject({ agent: 'worker', content: 'node-c did it', finish_reason: 'stop' });

    // The bidders of the Contract Net test, deployed on B this time.
    for (const n of [1, 2, 3]) await deploy(B, bidder(n));
    await Promise.all([1, 2, 3].map((n) => everywhere(`bidder-${n}`)));
  });

  it("a tool package deployed through A's API is called through C's; a replacement through C and a removal through B reach every node", async () => {
    ensureToolsBuilt();
    const manifest = readFileSync(join(EXAMPLE_DIR, 'caxton-tool.toml'), 'utf8');
    const wasm = readFileSync(join(EXAMPLE_DIR, 'build/text.wasm')).toString('base64');
    const version = async (n: ClusterNode) => {
      const r = await call(n, 'GET', '/api/v1/tools/text');
      return r.status === 200 ? (r.json.version as string) : r.status;
    };
    const onEvery = async (want: string | number, what: string) => {
      const t0 = performance.now();
      await waitUntil(async () => (await Promise.all(cluster.nodes.map(version))).every((v) => v === want), {
        timeoutMs: 10_000,
        intervalMs: 10,
        what,
      });
      return performance.now() - t0;
    };

    const dep = await call(A, 'POST', '/api/v1/tools', { manifest, wasm });
    if (dep.status !== 201) fail('deploying the text tool package on node-a', dep);
    const lag = await onEvery(dep.json.version, 'the text package on every node');
    console.log(`[three-nodes] text tool package deployed on node-a: on every node after ${Math.round(lag)} ms`);
    const called = await call(C, 'POST', '/api/v1/tools/text/echo/call', { args: { via: 'node-c' } });
    if (called.status !== 200) fail('calling text.echo on node-c', called);
    expect(called.json).toMatchObject({ content: '{"via":"node-c"}', is_error: false, outcome: 'ok' });

    const replaced = await call(C, 'POST', '/api/v1/tools', {
      manifest: manifest.replace(/^version = "[^"]*"/m, 'version = "7.7.7"'),
      wasm,
    });
    if (replaced.status !== 200) fail('replacing the text tool package on node-c', replaced);
    await onEvery('7.7.7', 'the replacement on every node');
    expect((await call(A, 'POST', '/api/v1/tools/text/stats/call', { args: { text: 'a b' } })).json).toMatchObject({
      is_error: false,
    });

    const removed = await call(B, 'DELETE', '/api/v1/tools/text');
    if (removed.status !== 200) fail('removing the text tool package on node-b', removed);
    await onEvery(404, 'the removal on every node');
  });

  it('capability requests submitted at A run on B or C as well, and all complete', async () => {
    const ids = newIds('cap', 30);
    const runs = await pool(ids, 6, async (id) => {
      const r = await call(A, 'POST', '/api/v1/messages?wait=30', workRequest(id), { timeoutMs: 40_000 });
      if (r.status !== 200) fail(`POST ${id} ?wait`, r);
      if (r.json.conversation?.state !== 'completed') fail(`conversation of ${id} did not complete`, r);
      const informs = (r.json.messages as Reply[]).filter((m) => m.performative === 'inform' && m.in_reply_to === id);
      expect(informs, JSON.stringify(r.json.messages)).toHaveLength(1);
      return nodeOf(informs[0]!.content);
    });
    const perNode: Record<string, number> = {};
    for (const n of runs) perNode[String(n)] = (perNode[String(n)] ?? 0) + 1;
    console.log(`[three-nodes] 30 capability requests at node-a ran on: ${JSON.stringify(perNode)}`);
    expect(
      Object.keys(perNode).every((n) => (NODES as readonly string[]).includes(n)),
      JSON.stringify(perNode),
    ).toBe(true);
    expect(
      runs.filter((n) => n !== 'node-a').length,
      `requests run on a node other than node-a: ${JSON.stringify(perNode)}`,
    ).toBeGreaterThan(0);
  });

  it('a Contract Net whose proposals come from different nodes awards exactly once', async () => {
    // Proposals are spread over the nodes by JetStream; rounds of three calls until one of them
    // had its proposals made on at least two nodes (every call must award exactly once either way).
    const seen: string[] = [];
    let spread: string | undefined;
    for (let round = 0; round < 5 && !spread; round++) {
      const convs = await Promise.all(
        [0, 1, 2].map(async (i) => {
          const node = cluster.nodes[(round + i) % 3]!;
          const r = await call(
            node,
            'POST',
            '/api/v1/messages?wait=30',
            {
              performative: 'cfp',
              protocol: 'fipa-contract-net',
              sender: 'buyer',
              capability: 'bid',
              content: 'build a shed',
              reply_by: '15s',
            },
            { timeoutMs: 40_000 },
          );
          if (r.status !== 200) fail(`cfp at ${node.name}`, r);
          return { node, id: r.json.conversation_id as string, state: r.json.conversation?.state as string };
        }),
      );
      for (const c of convs) {
        // Read back from another node than the one the cfp was submitted at: the state is shared.
        const other = cluster.nodes[(cluster.nodes.indexOf(cluster.node(c.node.name)) + 1) % 3]!;
        const r = await call(other, 'GET', `/api/v1/conversations/${c.id}`);
        if (r.status !== 200) fail(`GET conversation ${c.id} on ${other.name}`, r);
        const msgs = r.json.messages as Reply[];
        const summary = `conversation ${c.id} (cfp at ${c.node.name}, read on ${other.name}): ${JSON.stringify({ state: r.json.conversation.state, reason: r.json.conversation.reason, messages: msgs.map((m) => `${m.performative} ${m.sender}: ${String(m.content).slice(0, 40)}`) })}`;
        expect(
          msgs.filter((m) => m.performative === 'accept-proposal'),
          summary,
        ).toHaveLength(1);
        expect(
          msgs.filter((m) => m.performative === 'propose'),
          summary,
        ).toHaveLength(3);
        expect(
          msgs.filter((m) => m.performative === 'reject-proposal'),
          summary,
        ).toHaveLength(2);
        expect(
          msgs.filter((m) => m.performative === 'inform'),
          summary,
        ).toHaveLength(1);
        expect(r.json.conversation.state, summary).toBe('completed');
        const bidders = new Set(msgs.filter((m) => m.performative === 'propose').map((m) => m.sender));
        expect([...bidders].sort(), summary).toEqual(['bidder-1', 'bidder-2', 'bidder-3']);
        const nodes = new Set(msgs.filter((m) => m.performative === 'propose').map((m) => nodeOf(m.content)));
        seen.push(`${c.id}: proposals from ${[...nodes].join(', ')}`);
        if (nodes.size >= 2) spread = summary;
      }
    }
    console.log(`[three-nodes] Contract Nets: ${seen.join('; ')}`);
    expect(spread, `no Contract Net had proposals made on two nodes: ${seen.join('; ')}`).toBeDefined();
  }, 120_000);

  it(
    `kill -9 of a node with accepted messages in flight: all ${MESSAGES} messages delivered, each answered exactly once`,
    async () => {
      // Slower answers (150 ms) for this test: a backlog builds up and node-b holds work when it dies.
      for (const n of cluster.nodes) cluster.setScript(n.name, nodeScript(n.name, 150));
      try {
        const t0 = performance.now();
        const ids = newIds('kill', MESSAGES);
        let done = 0;
        let killed: { at: number; stats: Json } | undefined;
        // Kills node-b once a quarter of the messages are in and it reports work queued or running.
        const killer = (async () => {
          await waitUntil(() => done >= MESSAGES / 4, {
            timeoutMs: 120_000,
            intervalMs: 20,
            what: 'a quarter of the messages accepted',
          });
          const busy = await waitUntil(
            async () => {
              const st = (await call(B, 'GET', '/api/v1/messaging/stats', undefined, { timeoutMs: 2000 })).json;
              return st && st.queued + st.running >= 5 ? st : false;
            },
            { timeoutMs: 20_000, intervalMs: 25, what: 'node-b holding at least 5 deliveries (queued + running)' },
          );
          await cluster.kill('node-b');
          killed = { at: performance.now() - t0, stats: busy.value };
        })();
        const results = await pool(ids, 16, async (id, i) => {
          const r = await submit([A, C][i % 2]!, id);
          done++;
          return r;
        });
        const submittedMs = performance.now() - t0;
        await killer;
        const notAccepted = results.filter((r) => r.status !== 202);
        expect(notAccepted, `submissions refused: ${JSON.stringify(notAccepted.slice(0, 5))}`).toHaveLength(0);

        const deliveredMs = await waitDelivered(() => A, ids, 60_000 + MESSAGES * 40);
        const perNode = expectAnsweredOnce(await answersOf(C, ids), `kill -9 of node-b with ${MESSAGES} messages`);
        const total = performance.now() - t0;
        console.log(
          `[three-nodes] kill -9: ${MESSAGES} messages submitted in ${Math.round(submittedMs)} ms; node-b killed ${Math.round(killed!.at)} ms in, holding ${JSON.stringify(killed!.stats)}; ` +
            `all delivered ${Math.round(deliveredMs)} ms after the last submission, ${Math.round(total)} ms in all; answered by ${JSON.stringify(perNode)}`,
        );
        expect(perNode['node-a'] ?? 0, JSON.stringify(perNode)).toBeGreaterThan(0);
        expect(perNode['node-c'] ?? 0, JSON.stringify(perNode)).toBeGreaterThan(0);
        const dead = await call(A, 'GET', '/api/v1/dead-letters?receiver=worker&limit=1000');
        expect(dead.json.dead_letters.filter((d: { message_id: string }) => ids.includes(d.message_id))).toHaveLength(
          0,
        );
      } finally {
        for (const n of cluster.nodes) cluster.setScript(n.name, nodeScript(n.name, 20));
      }
      // node-b comes back with the same configuration and rejoins.
      await cluster.restart('node-b');
      await clusterWhole();
    },
    120_000 + MESSAGES * 60,
  );

  it('nats-server killed and restarted during traffic: a fast 503 while it is down, no accepted message lost', async () => {
    const load = traffic(() => [A, B], 'natsdown', 4);
    await sleep(1500);
    const downAt = Date.now();
    await cluster.nats.stop();
    // /ready turns 503 on the nodes, naming NATS.
    const notReady = await readyIs(A, 503, 10_000, 'node-a /ready 503 with nats-server down');
    expect(JSON.stringify(notReady.json), 'the dependency named').toMatch(/nats|jetstream/i);
    await sleep(3000);
    const upAt = Date.now();
    await cluster.nats.restart();
    for (const n of cluster.nodes) {
      const r = await readyIs(n, 200, 20_000, 'after nats-server restarted');
      // The agent events a node records off the delivery path: how many it has not yet written.
      expect(r.json, 'the lag /ready reports').toMatchObject({ lag: { agent_events: expect.any(Number) } });
    }
    await sleep(2000);
    const rs = await load.stop();

    // While it was down (from a moment after the kill until the restart): fast 503s only.
    const during = rs.filter((r) => r.at > downAt + 500 && r.at + r.ms < upAt);
    console.log(
      `[three-nodes] NATS down ${upAt - downAt} ms: ${rs.length} submissions ${JSON.stringify(statusCounts(rs))}, during the outage ${JSON.stringify(statusCounts(during))}, slowest ${Math.round(Math.max(...during.map((r) => r.ms)))} ms`,
    );
    expect(during.length, 'submissions made while nats-server was down').toBeGreaterThan(0);
    for (const r of during) {
      expect(r.status, JSON.stringify(r)).toBe(503);
      expect(r.ms, `503 within ${FAST_503_MS} ms: ${JSON.stringify(r)}`).toBeLessThan(FAST_503_MS);
      expect(r.message ?? '', JSON.stringify(r)).toMatch(/nats|jetstream/i);
    }
    const other = rs.filter((r) => r.status !== 202 && r.status !== 503);
    expect(other, 'every submission either accepted or refused with 503').toHaveLength(0);
    expect(
      rs.filter((r) => r.status === 202 && r.at > upAt).length,
      'accepted again after the restart',
    ).toBeGreaterThan(0);

    const ids = accepted(rs);
    await waitDelivered(() => B, ids, 60_000);
    expectAnsweredOnce(await answersOf(A, ids), 'nats-server restart');

    // A refused message sent again with the same id (what the 503 says to do) is delivered once.
    const again = await resendRefused(rs);
    await waitDelivered(() => A, again, 30_000);
    expectAnsweredOnce(await answersOf(B, again), 'messages refused while nats-server was down, sent again');
  }, 120_000);

  it("node-a's PostgreSQL link cut while idle: /ready 503 and a fast 503 naming PostgreSQL for a submission, ready again once it is back", async () => {
    A.pgProxy!.cut();
    const notReady = await readyIs(A, 503, 10_000, 'node-a /ready 503 with its PostgreSQL link cut');
    expect(JSON.stringify(notReady.json), 'the dependency named').toMatch(/postgres/i);
    const [id] = newIds('pgidle', 1);
    const r = await submit(A, id!);
    expect(r, 'a submission at node-a while its PostgreSQL link is cut').toMatchObject({
      status: 503,
      code: 'not_ready',
    });
    expect(r.message ?? '', JSON.stringify(r)).toMatch(/postgres/i);
    expect(r.ms).toBeLessThan(FAST_503_MS);
    A.pgProxy!.restore();
    await readyIs(A, 200, 20_000, 'node-a /ready 200 after its PostgreSQL link is back');
    const again = await submit(A, id!);
    expect([200, 202], JSON.stringify(again)).toContain(again.status);
    await waitDelivered(() => A, [id!], 20_000);
    expectAnsweredOnce(await answersOf(A, [id!]), 'the message refused while PostgreSQL was cut, sent again');
  }, 60_000);

  it("node-a's PostgreSQL link cut under traffic: it stays up, 503 naming PostgreSQL, /ready 503, the others go on, and it recovers", async () => {
    const load = traffic(() => [A, B], 'pgcut', 4);
    await sleep(1000);
    const cutAt = Date.now();
    A.pgProxy!.cut();
    const notReady = await readyIs(A, 503, 10_000, 'node-a /ready 503 with its PostgreSQL link cut');
    expect(JSON.stringify(notReady.json), 'the dependency named').toMatch(/postgres/i);
    expect(await ready(B), 'node-b, whose link is fine, stays ready').toBe(true);
    await sleep(3000);
    const restoredAt = Date.now();
    A.pgProxy!.restore();
    await readyIs(A, 200, 20_000, 'node-a /ready 200 after its PostgreSQL link is back');
    await sleep(1500);
    const rs = await load.stop();

    const atA = rs.filter((r) => r.node === 'node-a' && r.at > cutAt + 500 && r.at + r.ms < restoredAt);
    const atB = rs.filter((r) => r.node === 'node-b' && r.at > cutAt && r.at + r.ms < restoredAt);
    console.log(
      `[three-nodes] node-a's PostgreSQL cut ${restoredAt - cutAt} ms: at node-a ${JSON.stringify(statusCounts(atA))}, at node-b ${JSON.stringify(statusCounts(atB))}, all ${JSON.stringify(statusCounts(rs))}`,
    );
    expect(atA.length).toBeGreaterThan(0);
    for (const r of atA) {
      expect(r.status, JSON.stringify(r)).toBe(503);
      expect(r.ms, `503 within ${FAST_503_MS} ms: ${JSON.stringify(r)}`).toBeLessThan(FAST_503_MS);
      expect(r.message ?? '', JSON.stringify(r)).toMatch(/postgres/i);
    }
    expect(atB.length).toBeGreaterThan(0);
    expect(
      atB.filter((r) => r.status !== 202),
      'node-b accepts while node-a is cut off from PostgreSQL',
    ).toHaveLength(0);
    expect(
      rs.filter((r) => r.node === 'node-a' && r.status === 202 && r.at > restoredAt).length,
      'node-a accepts again',
    ).toBeGreaterThan(0);

    const ids = accepted(rs);
    await waitDelivered(() => C, ids, 60_000);
    expectAnsweredOnce(await answersOf(B, ids), "node-a's PostgreSQL link cut");

    const again = await resendRefused(rs);
    await waitDelivered(() => A, again, 30_000);
    expectAnsweredOnce(
      await answersOf(C, again),
      "messages refused while node-a's PostgreSQL link was cut, sent again",
    );
  }, 120_000);

  it('node-c cut off from NATS: /ready 503, it takes no work while the others deliver, and is ready again once the link is back', async () => {
    C.natsProxy!.cut();
    const cutAt = Date.now();
    const notReady = await readyIs(C, 503, 10_000, 'node-c /ready 503 with its NATS link cut');
    console.log(
      `[three-nodes] node-c /ready 503 ${Date.now() - cutAt} ms after its NATS link was cut: ${JSON.stringify(notReady.json)}`,
    );
    expect(JSON.stringify(notReady.json)).toMatch(/nats|jetstream/i);
    // The others see node-c leave (its heartbeats stop; JetStream drops its entry after three).
    await waitUntil(
      async () => {
        const r = await call(A, 'GET', '/api/v1/cluster');
        return (
          r.status === 200 &&
          !(r.json.nodes as { node: string; state: string }[]).some((n) => n.node === 'node-c' && n.state === 'up')
        );
      },
      { timeoutMs: 10_000, intervalMs: 200, what: 'node-a no longer listing node-c as up' },
    );

    // Work submitted at A and B while C is cut off: all of it done, none of it by node-c.
    const ids = newIds('ccut', 40);
    const rs = await pool(ids, 8, (id, i) => submit(i % 2 ? A : B, id));
    expect(
      rs.filter((r) => r.status !== 202),
      JSON.stringify(rs.filter((r) => r.status !== 202).slice(0, 3)),
    ).toHaveLength(0);
    await waitDelivered(() => A, ids, 30_000);
    const perNode = expectAnsweredOnce(await answersOf(B, ids), 'node-c cut off from NATS');
    console.log(`[three-nodes] 40 requests with node-c cut off ran on ${JSON.stringify(perNode)}`);
    expect(perNode['node-c'] ?? 0, JSON.stringify(perNode)).toBe(0);

    C.natsProxy!.restore();
    const restoredAt = Date.now();
    await readyIs(C, 200, 20_000, 'node-c /ready 200 after its NATS link is back');
    console.log(`[three-nodes] node-c ready ${Date.now() - restoredAt} ms after its NATS link came back`);
    await clusterWhole();

    // And it takes work again: rounds of 45 requests until it runs some (its consumer's first
    // pulls after the reconnect may come after the others took a round; at most five rounds).
    const rounds: Record<string, number>[] = [];
    while (rounds.length < 5 && !(rounds.at(-1)?.['node-c'] ?? 0)) {
      const again = newIds('cback', 45);
      const rs2 = await pool(again, 9, (id, i) => submit(cluster.nodes[i % 3]!, id));
      expect(
        rs2.filter((r) => r.status !== 202),
        JSON.stringify(rs2.filter((r) => r.status !== 202).slice(0, 3)),
      ).toHaveLength(0);
      await waitDelivered(() => C, again, 30_000);
      rounds.push(expectAnsweredOnce(await answersOf(C, again), 'after node-c came back'));
    }
    console.log(`[three-nodes] rounds of 45 requests after node-c came back ran on ${JSON.stringify(rounds)}`);
    expect(rounds.at(-1)!['node-c'] ?? 0, `node-c takes work again: ${JSON.stringify(rounds)}`).toBeGreaterThan(0);
  }, 120_000);
});
