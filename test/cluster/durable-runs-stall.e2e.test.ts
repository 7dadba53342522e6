/**
 * A node frozen past JetStream's ack wait while its runs wait on the model (docs/cluster.md,
 * "Durable runs"; ADR 0147): two `caxton serve` processes on one `nats-server -js` and PostgreSQL
 * schema, each with its own scripted model (so a model call shows which node made it),
 * `ack_wait = "3s"` and a long `run_lease` (30 s), so that the freeze outlasts the ack wait by far
 * and the lease by far not.
 *
 * Messages to an agent whose model takes 15 s; once the node running some of them has had them
 * for 3.5 s, it is stopped with SIGSTOP for 7 s: JetStream hands their deliveries to the other node,
 * which must find each run held (its row written a third of the ack wait after it opened) and
 * retry later, not ask the model again. After SIGCONT every run executes once (one model call per
 * message across both nodes) and every message is answered once.
 *
 * Then one-way informs (no conversation whose lock would make the other node wait), the node
 * stopped at its first model call for 4 s: before any of its runs has a row, some of its deliveries
 * fetched and not yet read. JetStream hands them to the other node after the ack wait; that node
 * asks it whether it still holds them (src/messaging/cluster/delivery-holders.ts), gets its answer
 * once it runs again, and leaves them to it: one model call per message.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, startServe, tempDir, type ServeProcess } from '../cli/helpers/cli.js';
import { startLlmStub, type LlmStub, type StubHit } from '../execution/helpers/llm-stub.js';
import { waitUntil } from '../helpers/wait.js';
import { clusterFixture, stubNodeToml } from './helpers/serve-nodes.js';
import { answersBy, delivered, sendSlowJobs } from './helpers/slow-jobs.js';

const NODES = ['node-a', 'node-b'] as const;
type NodeName = (typeof NODES)[number];
const MESSAGES = 8;
const MODEL_MS = 15_000;
const FREEZE_MS = 7_000;
/** Past the ack wait (3 s) since the node last said it was working, within it since the other node asked. */
const EARLY_FREEZE_MS = 4_000;

const fx = clusterFixture('durable_runs_stall');
const stubs = new Map<NodeName, LlmStub>();
const nodes = new Map<NodeName, ServeProcess>();
/** Model calls per job marker (`[job-N]`), across both nodes, in order. */
const calls = new Map<string, NodeName[]>();
/** Told of each model call, after it is counted. */
let onCall: ((node: NodeName) => void) | undefined;

/** Runs whose first model call node `n` made. */
const runsOn = (n: NodeName) => [...calls.values()].filter((ns) => ns[0] === n).length;
/** The jobs whose model was called more than once, with the nodes that called it. */
const runTwice = () => [...calls].filter(([, ns]) => ns.length > 1).map(([job, ns]) => `job-${job}: ${ns.join(', ')}`);

function writeNode(dir: string, node: NodeName): string {
  const home = join(dir, node);
  mkdirSync(join(home, 'agents'), { recursive: true });
  writeFileSync(
    join(home, 'agents', 'slow.toml'),
    // Lanes for every message on either node: a delivery handed to the other node is not held
    // back behind that node's own runs.
    stringify({
      name: 'slow',
      capabilities: ['slow-work'],
      system_prompt: 'You are slow.',
      messaging: { max_concurrency: MESSAGES },
    }),
  );
  writeFileSync(
    join(home, 'caxton.toml'),
    stubNodeToml({
      node,
      stubUrl: stubs.get(node)!.url,
      fx,
      cluster: { delivery: { ack_wait: '3s', reconcile_after: 10 }, run_lease: '30s' },
    }),
  );
  return home;
}

describe.skipIf(!fx.run)('durable runs: a node frozen past the ack wait', () => {
  beforeAll(async () => {
    assertBuilt();
    const dir = tempDir('caxton-durable-stall-');
    for (const n of NODES)
      stubs.set(
        n,
        await startLlmStub((hit: StubHit) => {
          const job = /\[job-(\d+)\]/.exec(JSON.stringify(hit.body.messages))?.[1] ?? '?';
          calls.set(job, [...(calls.get(job) ?? []), n]);
          onCall?.(n);
          return { content: `done job-${job}`, delayMs: MODEL_MS };
        }),
      );
    // One at a time: the first migrates the schema, the other finds it done.
    for (const n of NODES) {
      const home = writeNode(dir, n);
      nodes.set(
        n,
        await startServe({
          cwd: home,
          args: ['--config', join(home, 'caxton.toml')],
          env: { STUB_KEY: 'k' },
          readyTimeoutMs: 90_000,
        }),
      );
    }
  }, 200_000);

  afterAll(async () => {
    for (const s of nodes.values()) s.child.kill('SIGCONT');
    await cleanup();
    for (const s of stubs.values()) await s.close().catch(() => {});
  });

  it(`runs whose node is stopped ${FREEZE_MS / 1000} s (ack wait 3 s) execute once and are answered once`, async () => {
    const ids = Array.from({ length: MESSAGES }, (_, i) => `stall-${process.pid}-${i}`);
    await sendSlowJobs([nodes.get('node-a')!.url], ids);
    await waitUntil(() => calls.size === MESSAGES, { timeoutMs: 30_000, what: 'every message at the model' });
    // The node running the most of them is frozen once their rows are written (a third of the
    // ack wait after each run opened, by a timer of half that).
    const frozen: NodeName = runsOn('node-a') >= runsOn('node-b') ? 'node-a' : 'node-b';
    const other = frozen === 'node-a' ? nodes.get('node-b')! : nodes.get('node-a')!;
    await sleep(3_500);
    nodes.get(frozen)!.child.kill('SIGSTOP');
    await sleep(FREEZE_MS);
    nodes.get(frozen)!.child.kill('SIGCONT');
    await waitUntil(async () => (await Promise.all(ids.map((id) => delivered(other.url, id)))).every(Boolean), {
      timeoutMs: 90_000,
      intervalMs: 1000,
      what: 'every message delivered',
    });
    const answers = await answersBy(other.url, 'slow');
    const twice = runTwice();
    console.log(
      `[durable runs stall] ${runsOn(frozen)} of ${MESSAGES} runs on ${frozen}, stopped ${FREEZE_MS / 1000} s: ${twice.length} run more than once`,
    );
    expect(runsOn(frozen)).toBeGreaterThan(0);
    expect(twice).toEqual([]);
    expect(ids.map((id) => answers.get(id) ?? 0)).toEqual(ids.map(() => 1));
  }, 150_000);

  it(`runs whose node is stopped ${EARLY_FREEZE_MS / 1000} s from its first model call, before any run has a row, execute once`, async () => {
    calls.clear();
    let frozen: NodeName | undefined;
    onCall = (n) => {
      onCall = undefined;
      frozen = n;
      nodes.get(n)!.child.kill('SIGSTOP');
    };
    const ids = Array.from({ length: MESSAGES }, (_, i) => `early-${process.pid}-${i}`);
    // Not awaited before the freeze: node-a may be the node stopped before it answered every POST.
    const sent = sendSlowJobs([nodes.get('node-a')!.url], ids, { oneWay: true });
    await waitUntil(() => frozen !== undefined, { timeoutMs: 30_000, what: 'a first model call' });
    await sleep(EARLY_FREEZE_MS);
    nodes.get(frozen!)!.child.kill('SIGCONT');
    await sent;
    const other = frozen === 'node-a' ? nodes.get('node-b')! : nodes.get('node-a')!;
    await waitUntil(async () => (await Promise.all(ids.map((id) => delivered(other.url, id)))).every(Boolean), {
      timeoutMs: 90_000,
      intervalMs: 1000,
      what: 'every message delivered',
    });
    const twice = runTwice();
    console.log(
      `[durable runs stall, early] ${runsOn(frozen!)} of ${MESSAGES} runs on ${frozen}, stopped ${EARLY_FREEZE_MS / 1000} s at its first model call: ${twice.length} run more than once`,
    );
    expect(calls.size).toBe(MESSAGES);
    expect(twice).toEqual([]);
    // The node handed the stopped node's deliveries says how its questions ended.
    const metrics = await (await fetch(`http://127.0.0.1:${other.metricsPort}/metrics`)).text();
    const held = Number(/^caxton_cluster_redeliveries_asked_total\{answer="held"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
    expect(held).toBeGreaterThan(0);
  }, 150_000);
});
