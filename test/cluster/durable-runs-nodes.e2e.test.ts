/**
 * Durable runs on a cluster (issue 62, docs/cluster.md "Durable runs"): two clusters of three
 * `caxton serve` processes, each on its own `nats-server -js` and PostgreSQL schema, every node
 * with its own scripted model (so a model call shows which node made it). "fast": `ack_wait =
 * "3s"`, `reconcile_after = 3`, `run_lease = "6s"`; "defaults": every timer as shipped.
 *
 * - On each cluster at once, 30 messages to an agent whose model takes 20 s (on "fast", far past
 *   ack_wait × reconcile_after): each message's run executes once (one model call per message,
 *   across every node), and each message is answered once.
 * - "defaults": a background run on node A cancelled through node B's API: A stops it at its next
 *   lease renewal (its model call abandoned, the tool it would call next never called) and the run
 *   stays cancelled.
 * - "defaults": a run on node A waits for approval of a call of a side-effecting stdio MCP tool; A
 *   is killed with SIGKILL; the call approved through node B runs once and the run goes on on B;
 *   its next call denied, the model's answer shows the denial.
 * - "fast": a five-step tool run (a real stdio MCP server appending a line per call to a file every
 *   node shares) whose node is killed with SIGKILL after its second call: another node takes the
 *   run over once its lease expires and finishes it; every line is in the file exactly once.
 *
 * The tests build on each other (the kills come last on each cluster): run the file, not one test.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, startServe, tempDir, type ServeProcess } from '../cli/helpers/cli.js';
import { startLlmStub, type LlmStub, type StubHit } from '../execution/helpers/llm-stub.js';
import {
  api,
  APPEND_SERVER,
  APPROVER_PROMPT,
  approverAgent,
  approverReply,
  decide,
  linesOf,
  runView,
  startRun,
  toolMessages,
  waitForRun,
  type RunView,
} from '../execution/helpers/runs.js';
import { waitUntil } from '../helpers/wait.js';
import { clusterFixture, stubNodeToml, type ClusterFixture } from './helpers/serve-nodes.js';
import { answersBy, delivered, sendSlowJobs } from './helpers/slow-jobs.js';

const NODES = ['node-a', 'node-b', 'node-c'] as const;
type NodeName = (typeof NODES)[number];
const MESSAGES = 30;
const MODEL_MS = 20_000;
const STEPS = 5;
const FINAL = `all ${STEPS} lines appended`;
const STOPPER_PROMPT = 'Append two lines, slowly.';

interface Cluster {
  name: string;
  fx: ClusterFixture;
  /** `[cluster]` beyond the node, NATS and state: the timers under test. */
  timers: Record<string, unknown>;
  dir: string;
  stubs: Map<NodeName, LlmStub>;
  nodes: Map<NodeName, ServeProcess>;
  /** Model calls per job marker (`[job-N]`) of the slow agent, across every node. */
  slowCalls: Map<string, NodeName[]>;
  /** The writer's model calls: the node and how many tool results its request carried. */
  writerCalls: { node: NodeName; results: number }[];
  /** Which node asked the model for the approver, in order. */
  approverCalls: NodeName[];
  /** The stopper's model calls, with the request (whether its node went away before the answer). */
  stopperCalls: { node: NodeName; results: number; hit: StubHit }[];
}

function cluster(name: string, timers: Record<string, unknown>): Cluster {
  return {
    name,
    fx: clusterFixture(`durable_runs_${name}`),
    timers,
    dir: '',
    stubs: new Map(),
    nodes: new Map(),
    slowCalls: new Map(),
    writerCalls: [],
    approverCalls: [],
    stopperCalls: [],
  };
}

const fast = cluster('fast', { delivery: { ack_wait: '3s', reconcile_after: 3 }, run_lease: '6s' });
const defaults = cluster('defaults', {});
const clusters = [fast, defaults];
const outFile = (c: Cluster) => join(c.dir, 'out.txt');
/** Called on each of the writer's model calls (the kill test's trigger). */
let onWriterTurn: ((node: NodeName, results: number) => void) | undefined;

function script(c: Cluster, node: NodeName) {
  return (hit: StubHit) => {
    const messages = hit.body.messages as { role: string; content: unknown }[];
    const text = JSON.stringify(messages);
    const job = /\[job-(\d+)\]/.exec(text)?.[1];
    if (job !== undefined && text.includes('You are slow.')) {
      c.slowCalls.set(job, [...(c.slowCalls.get(job) ?? []), node]);
      return { content: `done job-${job}`, delayMs: MODEL_MS };
    }
    if (text.includes(APPROVER_PROMPT)) {
      c.approverCalls.push(node);
      return approverReply(hit);
    }
    const results = toolMessages(hit).length;
    const wire = (hit.body.tools as { function: { name: string } }[])[0]!.function.name;
    if (text.includes(STOPPER_PROMPT)) {
      c.stopperCalls.push({ node, results, hit });
      if (results >= 2) return { content: 'both appended' };
      // The second call's reply never comes in time: the run is cancelled while it waits.
      return {
        tool_calls: [{ id: `s${results + 1}`, name: wire, arguments: { line: `cancel-${results + 1}` } }],
        ...(results === 1 && { delayMs: 120_000 }),
      };
    }
    c.writerCalls.push({ node, results });
    onWriterTurn?.(node, results);
    if (results >= STEPS) return { content: FINAL };
    return { tool_calls: [{ id: `c${results + 1}`, name: wire, arguments: { line: `step-${results + 1}` } }] };
  };
}

function writeNode(c: Cluster, node: NodeName): string {
  const home = join(c.dir, node);
  mkdirSync(join(home, 'agents'), { recursive: true });
  const agents = {
    slow: {
      name: 'slow',
      capabilities: ['slow-work'],
      system_prompt: 'You are slow.',
      messaging: { max_concurrency: 40 },
    },
    writer: {
      name: 'writer',
      capabilities: ['writing'],
      system_prompt: 'Append each step to the journal, one call per turn.',
      tools: ['journal.append'],
    },
    stopper: { name: 'stopper', capabilities: ['stopping'], system_prompt: STOPPER_PROMPT, tools: ['journal.append'] },
    approver: approverAgent('approver', 'journal.append'),
  };
  for (const [file, agent] of Object.entries(agents))
    writeFileSync(join(home, 'agents', `${file}.toml`), stringify(agent));
  writeFileSync(
    join(home, 'caxton.toml'),
    stubNodeToml({
      node,
      stubUrl: c.stubs.get(node)!.url,
      fx: c.fx,
      cluster: c.timers,
      extra: {
        mcp_servers: { journal: { command: process.execPath, args: [APPEND_SERVER], env: { OUT_FILE: outFile(c) } } },
      },
    }),
  );
  return home;
}

async function startCluster(c: Cluster): Promise<void> {
  c.dir = tempDir(`caxton-durable-${c.name}-`);
  for (const n of NODES) c.stubs.set(n, await startLlmStub(script(c, n)));
  // One at a time: the first migrates the schema, the others find it done.
  for (const n of NODES) {
    const home = writeNode(c, n);
    c.nodes.set(
      n,
      await startServe({
        cwd: home,
        args: ['--config', join(home, 'caxton.toml')],
        env: { STUB_KEY: 'k' },
        readyTimeoutMs: 90_000,
      }),
    );
  }
}

const anyUp = (c: Cluster): ServeProcess => [...c.nodes.values()][0]!;
const node = (c: Cluster, n: NodeName): ServeProcess => c.nodes.get(n)!;

async function kill(c: Cluster, n: NodeName): Promise<void> {
  node(c, n).child.kill('SIGKILL');
  await node(c, n).exited;
  c.nodes.delete(n);
}

describe.skipIf(!fast.fx.run)('durable runs on three-node clusters', () => {
  beforeAll(async () => {
    assertBuilt();
    await Promise.all(clusters.map(startCluster));
  }, 300_000);

  afterAll(async () => {
    await cleanup();
    for (const c of clusters) for (const s of c.stubs.values()) await s.close().catch(() => {});
  });

  // Both clusters at once: the runs mostly wait for the model, so the two take the time of one.
  for (const c of clusters)
    it.concurrent(
      `${c.name}: ${MESSAGES} messages whose runs take ${MODEL_MS / 1000} s each: every run executes once, every message is answered once`,
      async ({ expect }) => {
        const t0 = performance.now();
        const ids = Array.from({ length: MESSAGES }, (_, i) => `slow-${c.name}-${process.pid}-${i}`);
        await sendSlowJobs(
          [...c.nodes.values()].map((n) => n.url),
          ids,
        );
        await waitUntil(async () => (await Promise.all(ids.map((id) => delivered(anyUp(c).url, id)))).every(Boolean), {
          timeoutMs: 100_000,
          intervalMs: 1000,
          what: `every message delivered (${c.name})`,
        });
        const answers = await answersBy(anyUp(c).url, 'slow');
        const seconds = Math.round((performance.now() - t0) / 1000);
        const twice = [...c.slowCalls]
          .filter(([, ns]) => ns.length > 1)
          .map(([job, ns]) => `job-${job}: ${ns.join(', ')}`);
        console.log(
          `[durable runs cluster, ${c.name}] ${MESSAGES} messages, ${MODEL_MS / 1000} s model: ${c.slowCalls.size} runs, ${twice.length} run more than once, in ${seconds} s`,
        );
        expect(twice).toEqual([]);
        expect(c.slowCalls.size).toBe(MESSAGES);
        expect(ids.map((id) => answers.get(id) ?? 0)).toEqual(ids.map(() => 1));
      },
      150_000,
    );

  it('defaults: a run cancelled through node B stops on node A at its next lease renewal; the next tool never runs', async () => {
    const c = defaults;
    const cancelLines = () => linesOf(outFile(c)).filter((l) => l.startsWith('cancel-'));
    const id = await startRun(node(c, 'node-a').url, 'stopper', 'two lines');
    await waitUntil(() => c.stopperCalls.some((x) => x.results === 1), {
      what: 'the model asked after the first call',
    });
    const waiting = c.stopperCalls.find((x) => x.results === 1)!;
    expect(waiting.node).toBe('node-a');
    expect(cancelLines()).toEqual(['cancel-1']);
    expect((await runView(node(c, 'node-a').url, id)).running_here).toBe(true);

    const t0 = performance.now();
    const cancelled = await api<RunView>(node(c, 'node-b').url, `/api/v1/runs/${id}/cancel`, {
      method: 'POST',
      body: '{}',
    });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ status: 'cancelled', running_here: false });
    // Node A learns it when its renewal (every 5 s) no longer finds the run its own: the model
    // call it waits on is abandoned and the run stops there.
    await waitUntil(() => waiting.hit.clientClosed, { timeoutMs: 40_000, what: 'node A abandoning the model call' });
    await waitUntil(async () => !(await runView(node(c, 'node-a').url, id)).running_here, {
      timeoutMs: 10_000,
      what: 'the run no longer running on node A',
    });
    console.log(
      `[durable runs cluster, defaults] a run cancelled on node-b stopped on node-a ${Math.round((performance.now() - t0) / 1000)} s later`,
    );
    const after = await runView(node(c, 'node-a').url, id);
    expect(after.status).toBe('cancelled');
    expect(cancelLines()).toEqual(['cancel-1']);
    expect(c.stopperCalls.map((x) => [x.node, x.results])).toEqual([
      ['node-a', 0],
      ['node-a', 1],
    ]);
  }, 60_000);

  it('defaults: a run waiting for approval on node A, A killed, approved through node B: the call runs once and the run goes on on B; a denial reaches the model', async () => {
    const c = defaults;
    const approvalLines = () => linesOf(outFile(c)).filter((l) => l === 'first' || l === 'second');
    const id = await startRun(node(c, 'node-a').url, 'approver', 'append two lines');
    const b = node(c, 'node-b').url;
    const waiting = await waitForRun(b, id, 'awaiting_approval');
    expect(waiting.approvals).toEqual([
      expect.objectContaining({
        call_id: 'c-first',
        tool: 'journal.append',
        arguments: { line: 'first' },
        decision: null,
      }),
    ]);
    expect(approvalLines()).toEqual([]);
    await kill(c, 'node-a');

    const approved = await decide(b, id, 'approve', { reason: 'fine' });
    expect(approved.status).toBe(200);
    const second = await waitForRun(b, id, 'awaiting_approval');
    expect(second.approvals.map((a) => [a.call_id, a.decision])).toEqual([
      ['c-first', 'approved'],
      ['c-second', null],
    ]);
    expect(approvalLines()).toEqual(['first']);
    const denied = await decide(b, id, 'deny', { call_id: 'c-second', reason: 'not today' });
    expect(denied.status).toBe(200);
    const done = await waitForRun(b, id, 'completed');
    expect(done.response?.content).toMatch(/^done: appended first \| .*approval was denied: not today/);
    expect(approvalLines()).toEqual(['first']);
    // Node A asked for the first call; node B ran the rest.
    expect(c.approverCalls).toEqual(['node-a', 'node-b', 'node-b']);
    // Nothing waits any more, whichever node is asked.
    expect((await decide(node(c, 'node-c').url, id, 'approve')).status).toBe(409);
  }, 90_000);

  it('fast: a node killed with SIGKILL mid-run: another node takes the run over after its lease and finishes it, no call repeated', async () => {
    const c = fast;
    let victim: NodeName | undefined;
    onWriterTurn = (n, results) => {
      // The reply asking for the third call leaves; its node dies as it receives it.
      if (victim === undefined && results === 2) {
        victim = n;
        setTimeout(() => node(c, n).child.kill('SIGKILL'), 0);
      }
    };
    const id = `writer-${process.pid}`;
    const r = await api(anyUp(c).url, '/api/v1/messages', {
      method: 'POST',
      body: JSON.stringify({
        id,
        performative: 'request',
        sender: 'loader',
        receiver: 'writer',
        content: 'five steps',
      }),
    });
    expect(r.status).toBe(202);
    await waitUntil(() => victim !== undefined, { timeoutMs: 30_000, what: 'the run reaching its third turn' });
    const killedAt = performance.now();
    await kill(c, victim!);
    await waitUntil(() => delivered(anyUp(c).url, id), {
      timeoutMs: 90_000,
      intervalMs: 500,
      what: 'the run finished',
    });
    const tookOver = Math.round((performance.now() - killedAt) / 1000);
    const runs = await api<{ runs: { id: string; status: string; resumes: number; origin: string }[] }>(
      anyUp(c).url,
      '/api/v1/runs?agent=writer',
    );
    expect(runs.body.runs).toHaveLength(1);
    expect(runs.body.runs[0]).toMatchObject({ status: 'completed', origin: 'message', resumes: 1 });
    const lines = linesOf(outFile(c));
    // Every call whose end was recorded ran exactly once; one the kill caught between its recorded
    // start and its end (this tool is not idempotent) ran at most once and was not repeated.
    const view = await api<{ steps: { kind: string; id: string; interrupted?: boolean }[] }>(
      anyUp(c).url,
      `/api/v1/runs/${runs.body.runs[0]!.id}`,
    );
    const interrupted = view.body.steps.filter((x) => x.kind === 'tool_end' && x.interrupted === true);
    expect(interrupted.length).toBeLessThanOrEqual(1);
    const expected = Array.from({ length: STEPS }, (_, i) => `step-${i + 1}`);
    expect(new Set(lines).size).toBe(lines.length);
    expect(lines.filter((l) => !expected.includes(l))).toEqual([]);
    expect(expected.filter((l) => !lines.includes(l)).length).toBeLessThanOrEqual(interrupted.length);
    const after = c.writerCalls.filter((x) => x.node !== victim);
    console.log(
      `[durable runs cluster, fast] ${victim} killed after 2 calls; finished by ${[...new Set(after.map((x) => x.node))].join(', ')} ${tookOver} s later; model calls ${c.writerCalls.map((x) => `${x.node}:${x.results}`).join(' ')}`,
    );
    // The survivor asked the model from the turn whose reply was never recorded on: never turns 1–2 again.
    expect(after.length).toBeGreaterThan(0);
    expect(Math.min(...after.map((x) => x.results))).toBeGreaterThanOrEqual(2);
    expect((await answersBy(anyUp(c).url, 'writer')).get(id)).toBe(1);
  }, 150_000);
});
