/**
 * End to end: rollouts on two `caxton serve` processes sharing one nats-server and one PostgreSQL
 * schema (test/cluster/helpers/nodes.ts). Each node's scripted provider answers with the agent's
 * system prompt, so a reply shows which version ran. A canary started through A splits both
 * nodes' conversations alike; then A is killed (kill -9, as a crash, holding whatever it held):
 * B's judge takes A's canary to its promotion on B's traffic alone (ADR 0054), and the
 * conversations started before keep their versions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { hasSystem } from '../helpers/system.js';
import { waitUntil } from '../helpers/wait.js';
import { startCluster, type ClusterNode, type TestCluster } from './helpers/nodes.js';

const run = hasSystem('nats-server') && hasSystem('postgresql');

const REPLIES = '[[rules]]\ncontent = "{{system}}"\n';
const pilot = (prompt: string) => ({
  body: `name = "pilot"\ndescription = "test agent pilot"\ncapabilities = ["testing"]\nsystem_prompt = "${prompt}"\n`,
  contentType: 'application/toml',
});
const invoke = async (n: ClusterNode, conversation: string) =>
  (
    await http<{ content?: string }>(n.url, 'POST', '/api/v1/agents/pilot/invoke', {
      body: JSON.stringify({ request: 'who?', conversation_id: conversation }),
      contentType: 'application/json',
    })
  ).json.content;
interface RolloutView {
  running: boolean;
  rollout: { state: string; ended_by: string | null } | null;
  canary: { weight: number } | null;
}
const rolloutOn = async (n: ClusterNode) =>
  (await http<RolloutView>(n.url, 'GET', '/api/v1/agents/pilot/rollout')).json;

let cluster: TestCluster;

beforeAll(async () => {
  if (run)
    cluster = await startCluster({
      nodes: [
        { name: 'node-a', script: REPLIES },
        { name: 'node-b', script: REPLIES },
      ],
      latencyMs: 0,
    });
}, 120_000);

afterAll(async () => {
  await cluster?.close();
});

describe.skipIf(!run)('rollouts on two caxton serve processes', () => {
  it('a canary started through A splits both nodes alike; A killed, B judges it to its promotion', async () => {
    const a = cluster.node('node-a');
    const b = cluster.node('node-b');
    expect((await http(a.url, 'POST', '/api/v1/agents', pilot('You are pilot v1.'))).status).toBe(201);
    await waitUntil(async () => (await http(b.url, 'GET', '/api/v1/agents/pilot')).status === 200, {
      timeoutMs: 20_000,
      what: 'the agent on B',
    });
    const started = await http(
      a.url,
      'PUT',
      '/api/v1/agents/pilot?strategy=canary&stages=50,100&hold=0s&min_requests=30&max_latency_ratio=1000',
      pilot('You are pilot v2.'),
    );
    expect(started.status, started.text).toBe(200);
    await waitUntil(async () => (await rolloutOn(b)).canary?.weight === 50, {
      timeoutMs: 20_000,
      what: 'the canary read by B',
    });
    // Each conversation gets one version, whichever node runs its turns.
    const onB = new Map<string, string | undefined>();
    for (let i = 0; i < 20; i++) onB.set(`c-${i}`, await invoke(b, `c-${i}`));
    expect(new Set(onB.values())).toEqual(new Set(['You are pilot v1.', 'You are pilot v2.']));
    for (const [c, answer] of onB) expect([c, await invoke(a, c)]).toEqual([c, answer]);

    // Both nodes' executions so far (about 20 of the candidate) are short of the 30 the judge waits for.
    expect((await rolloutOn(b)).rollout?.state).toBe('running');
    // A crashes, whichever node was judging: B's next round judges A's canary, on B's traffic alone.
    await cluster.kill('node-a');
    let n = 0;
    await waitUntil(
      async () => {
        for (let i = 0; i < 4; i++) await invoke(b, `judged-${n++}`);
        return (await rolloutOn(b)).rollout?.state === 'promoted';
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'the canary promoted with node A dead' },
    );
    expect((await rolloutOn(b)).rollout?.ended_by).toBe('canary');
    expect(await invoke(b, 'after')).toBe('You are pilot v2.');
    // The conversations started before keep their versions.
    for (const [c, answer] of [...onB].slice(0, 6)) expect([c, await invoke(b, c)]).toEqual([c, answer]);
  }, 180_000);
});
