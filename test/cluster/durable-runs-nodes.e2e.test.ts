/**
 * Durable runs on a cluster (issue 62, docs/cluster.md "Durable runs"): three `caxton serve`
 * processes on one `nats-server -js` and one PostgreSQL schema, each with its own scripted model
 * (so a model call shows which node made it), `ack_wait = "3s"` and `reconcile_after = 3`.
 *
 * - 30 messages to an agent whose model takes 20 s, far past ack_wait × reconcile_after (9 s):
 *   each message's run executes once (one model call per message, across every node), and each
 *   message is answered once. Without the delivery's keep-alive the reconciliation sweep published
 *   these deliveries again and other nodes ran them a second time.
 * - A five-step tool run (a real stdio MCP server appending a line per call to a file every node
 *   shares) whose node is killed with SIGKILL after its second call: another node takes the run
 *   over once its lease expires and finishes it; every line is in the file exactly once.
 *
 * The tests build on each other (one cluster; the kill comes last): run the file, not one test.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, startServe, tempDir, type ServeProcess } from '../cli/helpers/cli.js';
import { startLlmStub, type LlmStub, type StubHit } from '../execution/helpers/llm-stub.js';
import { TEST_PG_URL } from '../helpers/system.js';
import { waitUntil } from '../helpers/wait.js';
import { clusterFixture } from './helpers/serve-nodes.js';

const fx = clusterFixture('durable_runs');
const NODES = ['node-a', 'node-b', 'node-c'] as const;
type NodeName = (typeof NODES)[number];
const MESSAGES = 30;
const MODEL_MS = 20_000;
const STEPS = 5;
const FIXTURE = resolve(import.meta.dirname, '../execution/fixtures/append-server.mjs');
const FINAL = `all ${STEPS} lines appended`;

/** Model calls per job marker (`[job-N]`) of the slow agent, across every node. */
const slowCalls = new Map<string, NodeName[]>();
/** The writer's model calls: the node and how many tool results its request carried. */
const writerCalls: { node: NodeName; results: number }[] = [];
/** Called on each of the writer's model calls (the kill test's trigger). */
let onWriterTurn: ((node: NodeName, results: number) => void) | undefined;

const stubs = new Map<NodeName, LlmStub>();
const nodes = new Map<NodeName, ServeProcess>();
let dir = '';
const outFile = () => join(dir, 'out.txt');

function script(node: NodeName) {
  return (hit: StubHit) => {
    const messages = hit.body.messages as { role: string; content: unknown }[];
    const text = JSON.stringify(messages);
    const job = /\[job-(\d+)\]/.exec(text)?.[1];
    if (job !== undefined && text.includes('You are slow.')) {
      slowCalls.set(job, [...(slowCalls.get(job) ?? []), node]);
      return { content: `done job-${job}`, delayMs: MODEL_MS };
    }
    const results = messages.filter((m) => m.role === 'tool').length;
    writerCalls.push({ node, results });
    onWriterTurn?.(node, results);
    if (results >= STEPS) return { content: FINAL };
    const wire = (hit.body.tools as { function: { name: string } }[])[0]!.function.name;
    return { tool_calls: [{ id: `c${results + 1}`, name: wire, arguments: { line: `step-${results + 1}` } }] };
  };
}

function writeNode(node: NodeName): string {
  const home = join(dir, node);
  mkdirSync(join(home, 'agents'), { recursive: true });
  writeFileSync(
    join(home, 'agents', 'slow.toml'),
    stringify({
      name: 'slow',
      capabilities: ['slow-work'],
      system_prompt: 'You are slow.',
      messaging: { max_concurrency: 40 },
    }),
  );
  writeFileSync(
    join(home, 'agents', 'writer.toml'),
    stringify({
      name: 'writer',
      capabilities: ['writing'],
      system_prompt: 'Append each step to the journal, one call per turn.',
      tools: ['journal.append'],
    }),
  );
  writeFileSync(
    join(home, 'caxton.toml'),
    stringify({
      data_dir: './data',
      agents_dir: './agents',
      logging: { level: 'warn' },
      auth: { enabled: false },
      llm: {
        default_provider: 'stub',
        providers: {
          stub: {
            type: 'openai',
            base_url: `${stubs.get(node)!.url}/v1`,
            api_key_env: 'STUB_KEY',
            model: 'm',
            max_retries: 0,
          },
        },
      },
      mcp_servers: { journal: { command: process.execPath, args: [FIXTURE], env: { OUT_FILE: outFile() } } },
      cluster: {
        node,
        heartbeat: '200ms',
        nats: { urls: [fx.nats.url] },
        state: { url: TEST_PG_URL, schema: fx.schema },
        delivery: { ack_wait: '3s', reconcile_after: 3 },
      },
    }),
  );
  return home;
}

async function api<T>(url: string, path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(`${url}${path}`, {
    ...init,
    headers: { 'content-type': 'application/json', ...init?.headers },
  });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
}

interface MessageView {
  id: string;
  in_reply_to?: string;
  content: unknown;
}

/** The informs `sender` sent, by the id of the message each answers. */
async function answersBy(url: string, sender: string): Promise<Map<string, number>> {
  const r = await api<{ messages: MessageView[] }>(
    url,
    `/api/v1/messages?performative=inform&sender=${sender}&limit=1000`,
  );
  expect(r.status).toBe(200);
  const by = new Map<string, number>();
  for (const m of r.body.messages) if (m.in_reply_to) by.set(m.in_reply_to, (by.get(m.in_reply_to) ?? 0) + 1);
  return by;
}

async function delivered(url: string, id: string): Promise<boolean> {
  const r = await api<{ deliveries: { state: string }[] }>(url, `/api/v1/messages/${encodeURIComponent(id)}`);
  return r.status === 200 && r.body.deliveries.length > 0 && r.body.deliveries.every((d) => d.state === 'done');
}

const anyUp = (): ServeProcess => [...nodes.values()][0]!;

describe.skipIf(!fx.run)('durable runs on a three-node cluster', () => {
  beforeAll(async () => {
    assertBuilt();
    dir = tempDir('caxton-durable-cluster-');
    for (const n of NODES) stubs.set(n, await startLlmStub(script(n)));
    // One at a time: the first migrates the schema, the others find it done.
    for (const n of NODES) {
      const home = writeNode(n);
      nodes.set(
        n,
        await startServe({
          cwd: home,
          args: ['--config', join(home, 'caxton.toml')],
          env: { STUB_KEY: 'k' },
          readyTimeoutMs: 60_000,
        }),
      );
    }
  }, 180_000);

  afterAll(async () => {
    await cleanup();
    for (const s of stubs.values()) await s.close().catch(() => {});
  });

  it(`${MESSAGES} messages whose runs take ${MODEL_MS / 1000} s each: every run executes once, every message is answered once`, async () => {
    const t0 = performance.now();
    const ids = Array.from({ length: MESSAGES }, (_, i) => `slow-${process.pid}-${i}`);
    const list = [...nodes.values()];
    const sent = await Promise.all(
      ids.map((id, i) =>
        api(list[i % list.length]!.url, '/api/v1/messages', {
          method: 'POST',
          body: JSON.stringify({
            id,
            performative: 'request',
            protocol: 'fipa-request',
            sender: 'loader',
            receiver: 'slow',
            content: `[job-${i}]`,
          }),
        }),
      ),
    );
    expect(sent.map((r) => r.status)).toEqual(ids.map(() => 202));
    await waitUntil(async () => (await Promise.all(ids.map((id) => delivered(anyUp().url, id)))).every(Boolean), {
      timeoutMs: 80_000,
      intervalMs: 1000,
      what: 'every message delivered',
    });
    const answers = await answersBy(anyUp().url, 'slow');
    const seconds = Math.round((performance.now() - t0) / 1000);
    const twice = [...slowCalls].filter(([, ns]) => ns.length > 1).map(([job, ns]) => `job-${job}: ${ns.join(', ')}`);
    console.log(
      `[durable runs cluster] ${MESSAGES} messages, ${MODEL_MS / 1000} s model: ${slowCalls.size} runs, ${twice.length} run more than once, in ${seconds} s`,
    );
    expect(twice).toEqual([]);
    expect(slowCalls.size).toBe(MESSAGES);
    expect(ids.map((id) => answers.get(id) ?? 0)).toEqual(ids.map(() => 1));
  }, 120_000);

  it('a node killed with SIGKILL mid-run: another node takes the run over after its lease and finishes it, no call repeated', async () => {
    let victim: NodeName | undefined;
    onWriterTurn = (node, results) => {
      // The reply asking for the third call leaves; its node dies as it receives it.
      if (victim === undefined && results === 2) {
        victim = node;
        setTimeout(() => nodes.get(node)!.child.kill('SIGKILL'), 0);
      }
    };
    const id = `writer-${process.pid}`;
    const r = await api(anyUp().url, '/api/v1/messages', {
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
    await nodes.get(victim!)!.exited;
    nodes.delete(victim!);
    await waitUntil(() => delivered(anyUp().url, id), { timeoutMs: 90_000, intervalMs: 500, what: 'the run finished' });
    const tookOver = Math.round((performance.now() - killedAt) / 1000);
    const runs = await api<{ runs: { id: string; status: string; resumes: number; origin: string }[] }>(
      anyUp().url,
      '/api/v1/runs?agent=writer',
    );
    expect(runs.body.runs).toHaveLength(1);
    expect(runs.body.runs[0]).toMatchObject({ status: 'completed', origin: 'message', resumes: 1 });
    const lines = existsSync(outFile()) ? readFileSync(outFile(), 'utf8').trim().split('\n') : [];
    // Every call whose end was recorded ran exactly once; one the kill caught between its recorded
    // start and its end (this tool is not idempotent) ran at most once and was not repeated.
    const view = await api<{ steps: { kind: string; id: string; interrupted?: boolean }[] }>(
      anyUp().url,
      `/api/v1/runs/${runs.body.runs[0]!.id}`,
    );
    const interrupted = view.body.steps.filter((x) => x.kind === 'tool_end' && x.interrupted === true);
    expect(interrupted.length).toBeLessThanOrEqual(1);
    const expected = Array.from({ length: STEPS }, (_, i) => `step-${i + 1}`);
    expect(new Set(lines).size).toBe(lines.length);
    expect(lines.filter((l) => !expected.includes(l))).toEqual([]);
    expect(expected.filter((l) => !lines.includes(l)).length).toBeLessThanOrEqual(interrupted.length);
    const after = writerCalls.filter((c) => c.node !== victim);
    console.log(
      `[durable runs cluster] ${victim} killed after 2 calls; finished by ${[...new Set(after.map((c) => c.node))].join(', ')} ${tookOver} s later; model calls ${writerCalls.map((c) => `${c.node}:${c.results}`).join(' ')}`,
    );
    // The survivor asked the model from the turn whose reply was never recorded on: never turns 1–2 again.
    expect(after.length).toBeGreaterThan(0);
    expect(Math.min(...after.map((c) => c.results))).toBeGreaterThanOrEqual(2);
    expect((await answersBy(anyUp().url, 'writer')).get(id)).toBe(1);
  }, 150_000);
});
