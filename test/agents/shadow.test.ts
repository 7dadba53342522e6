/**
 * Shadow rollouts on a real server with authentication and the scripted
 * provider. The agent's script sends a message to another agent (a tool call with a side effect)
 * and then answers with its system prompt and the tool's result, so each answer says which version
 * ran and whether its tool ran. Live callers get only the stable version's answers; every live
 * request is copied to the candidate, whose tool call is refused and never reaches the bus; the
 * report counts the agreements and shows latency and tokens side by side; promote and rollback end
 * it as for blue-green.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';
import { assertBuilt } from '../cli/helpers/cli.js';
import { RolloutServer } from './rollout-server.js';

// "ask ..." makes the agent message "sink", then answer with its prompt and the tool's result;
// anything else gets the same answer from every version.
const SCRIPT = `
[[rules]]
match = "^ask "
  [[rules.turns]]
  tool_calls = [{ name = "send_message", arguments = { to = "sink", performative = "inform", content = "note: {{request}}", wait = false } }]
  [[rules.turns]]
  content = "{{system}} | {{last_tool_result}}"

[[rules]]
match = "^describe"
content = "{{system}} I answer questions about mirrors, reflections and the optics of flat and curved glass."

[[rules]]
match = "Answer A:"
content = "yes"

[[rules]]
content = "noted"
`;

const mirror = (label: string) =>
  `name = "mirror"\ncapabilities = ["mirroring"]\ntools = ["send_message"]\nsystem_prompt = "You are mirror ${label}."\n`;

let dir: string;
let server: RolloutServer;
const api = <T = unknown>(method: string, path: string, body?: string, contentType?: string) =>
  server.api<T>(method, path, body, contentType);
const cli = (...args: string[]) => server.cli(...args);

interface ShadowView {
  running: boolean;
  rollout: { strategy: string; state: string } | null;
  shadow: {
    compared: number;
    agreements: number;
    agreement_rate: number | null;
    comparison: string;
    mean_similarity: number | null;
    candidate_errors: number;
    stable: { p50_ms: number | null; tokens: number };
    candidate: { p50_ms: number | null; tokens: number };
    disagreements: { request: string; stable_answer: string; candidate_answer: string | null }[];
  } | null;
}
const view = async () => (await api<ShadowView>('GET', '/api/v1/agents/mirror/rollout')).json;
const sinkConversations = async () =>
  (await api<{ total: number }>('GET', '/api/v1/conversations?participant=sink')).json.total;

async function invoke(request: string): Promise<string> {
  const r = await api<{ content: string }>(
    'POST',
    '/api/v1/agents/mirror/invoke',
    JSON.stringify({ request }),
    'application/json',
  );
  expect(r.status, r.text).toBe(200);
  return r.json.content;
}

beforeAll(async () => {
  assertBuilt();
  dir = makeTempDir('caxton-shadow-');
  writeFileSync(join(dir, 'replies.toml'), SCRIPT);
  writeFileSync(join(dir, 'mirror-v2.toml'), mirror('v2'));
  server = new RolloutServer(dir);
  await server.start();
  expect((await api('POST', '/api/v1/agents', mirror('v1'))).status).toBe(201);
  expect(
    (
      await api(
        'POST',
        '/api/v1/agents',
        'name = "sink"\ncapabilities = ["notes"]\nsystem_prompt = "You keep notes."\n',
      )
    ).status,
  ).toBe(201);
});

afterAll(async () => {
  await server?.close();
  removeTempDirs();
});

describe('shadow', () => {
  it('live callers get only the stable answers; every request is copied to the candidate, whose tool calls never run', async () => {
    const d = await cli('agent', 'deploy', 'mirror-v2.toml', '--strategy', 'shadow');
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toContain('deployed mirror version 2 as a shadow from mirror-v2.toml');
    const sinkBefore = await sinkConversations();

    const answers = [
      await invoke('ask one'),
      await invoke('ask two'),
      await invoke('hello'),
      await invoke('ask three'),
      await invoke('hi there'),
      await invoke('describe yourself'),
    ];
    for (const a of answers.filter((x) => x !== 'noted' && !x.includes('optics'))) {
      expect(a).toContain('You are mirror v1.');
      expect(a).toMatch(/\| sent inform \S+ to sink/);
    }
    expect(answers.filter((x) => x === 'noted')).toHaveLength(2);
    expect(answers[5]).toContain('You are mirror v1. I answer questions about mirrors');

    const report = (
      await waitUntil(async () => ((await view()).shadow?.compared === 6 ? (await view()).shadow : undefined), {
        timeoutMs: 20_000,
        what: 'six comparisons',
      })
    ).value!;
    // Two answers are the same text; "describe" differs only in the version in its prompt, which
    // the embedding model finds similar enough (≥ 0.9); the three tool answers differ.
    expect(report).toMatchObject({
      compared: 6,
      agreements: 3,
      agreement_rate: 0.5,
      candidate_errors: 0,
      comparison: 'similarity',
    });
    expect(report.mean_similarity).toBeGreaterThan(0);
    expect(report.disagreements.map((d) => d.request).sort()).toEqual(['ask one', 'ask three', 'ask two']);
    expect(report.stable.tokens).toBeGreaterThan(0);
    expect(report.candidate.tokens).toBeGreaterThan(0);
    expect(report.candidate.p50_ms).not.toBeNull();
    const differ = report.disagreements[0]!;
    expect(differ.stable_answer).toContain('You are mirror v1.');
    expect(differ.candidate_answer).toContain('You are mirror v2.');
    expect(differ.candidate_answer).toContain('not run: this is a shadow execution');
    // The stable version's three messages reached the sink; the candidate's three never did.
    expect((await sinkConversations()) - sinkBefore).toBe(3);

    // Metrics labelled with the version and its role while the rollout runs.
    const text = await server.srv.server.metrics.registry.metrics();
    expect(text).toMatch(/caxton_rollout_executions_total\{agent="mirror",version="1",role="stable",status="ok"\} 6/);
    expect(text).toMatch(/caxton_rollout_executions_total\{agent="mirror",version="2",role="shadow",status="ok"\} 6/);

    const shown = await cli('agent', 'rollout', 'status', 'mirror');
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('compared:  6 live requests copied to the candidate');
    expect(shown.stdout).toContain('agreement: 3 of 6 (50 %); candidate errors: 0');
  });

  it('the candidate is addressable as NAME@VERSION; a rollback ends the shadow and stops the copies', async () => {
    expect(await invoke('hello')).toBe('noted');
    const direct = await api<{ content: string }>(
      'POST',
      '/api/v1/agents/mirror@2/invoke',
      JSON.stringify({ request: 'ask direct' }),
      'application/json',
    );
    expect(direct.status, direct.text).toBe(200);
    // Addressed directly it is a normal run: its tool runs.
    expect(direct.json.content).toMatch(/You are mirror v2\. \| sent inform/);
    const rb = await cli('agent', 'rollback', 'mirror');
    expect(rb.code, rb.stderr).toBe(0);
    const after = await view();
    expect(after).toMatchObject({ running: false, rollout: { strategy: 'shadow', state: 'rolled_back' } });
    const compared = after.shadow!.compared;
    await invoke('ask again');
    expect((await view()).shadow!.compared).toBe(compared);
  });

  it("asks the judge agent named by the candidate's [rollout] whether two answers agree", async () => {
    expect(
      (
        await api(
          'POST',
          '/api/v1/agents',
          'name = "referee"\ncapabilities = ["judging"]\nsystem_prompt = "You compare answers."\n',
        )
      ).status,
    ).toBe(201);
    const v = `${mirror('v3')}\n[rollout]\nstrategy = "shadow"\njudge = "referee"\n`;
    const r = await api<{ rollout: { strategy: string; candidate_version: number } }>(
      'PUT',
      '/api/v1/agents/mirror',
      v,
    );
    expect(r.status, r.text).toBe(200);
    expect(r.json.rollout.strategy).toBe('shadow');
    await invoke('ask four');
    const report = (
      await waitUntil(async () => ((await view()).shadow?.compared === 1 ? (await view()).shadow : undefined), {
        timeoutMs: 20_000,
        what: 'one comparison',
      })
    ).value!;
    // The texts differ (v1 sent its message, v3's was refused), and the judge said yes.
    expect(report).toMatchObject({ compared: 1, agreements: 1, comparison: 'judge', disagreements: [] });
  });
});
