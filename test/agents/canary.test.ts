/**
 * Canary rollouts on a real server with authentication. The stable version
 * answers through the scripted provider; a candidate that should fail talks to an
 * OpenAI-compatible HTTP server started here, which fails a chosen fraction of the requests it
 * gets (every other one: 50 %). Only the configured thresholds decide: a failing canary rolls back
 * at the first stage that has its minimum of executions, and says why with the figures; a healthy
 * one advances stage by stage and is promoted at 100 %; a restart resumes at the saved stage; bad
 * plans are refused and change nothing.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CanaryRunner,
  canaryBucket,
  canaryPlanSchema,
  checkAnswer,
  judgeStage,
  parseAgent,
  VersionWindow,
  type CanaryHost,
  type Rollout,
  type RolloutStatePort,
} from '../../src/agents/index.js';
import { tomlAgent } from '../helpers/http.js';
import { openaiCompletion, parseBody, refusalBody, refuseInvalid, sendJson, warmUp } from '../helpers/llm-standin.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { assertBuilt } from '../cli/helpers/cli.js';
import { RolloutServer, SCRIPTED_AUTH_TOML } from './rollout-server.js';

let dir: string;
let server: RolloutServer;
let provider: Server;
let providerCalls = 0;

const api = <T = unknown>(method: string, path: string, body?: string, contentType?: string) =>
  server.api<T>(method, path, body, contentType);
const cli = (...args: string[]) => server.cli(...args);

/** The agent at version `label`; `flaky` candidates use the failing provider. */
const agent = (name: string, label: string, flaky = false) =>
  tomlAgent(name).replace(`You are ${name}.`, `You are ${name} ${label}.`) +
  (flaky ? '\n[llm]\nprovider = "flaky"\nmodel = "flaky-model"\n' : '');

interface RolloutView {
  running: boolean;
  live_version: number;
  rollout: {
    state: string;
    stage: number;
    reason: string | null;
    candidate_version: number;
    stable_version: number;
    plan: { stages: number[] } | null;
  } | null;
  canary: {
    stage: number;
    weight: number;
    candidate: { requests: number; errors: number };
    stable: { requests: number };
    waiting_for: string | null;
  } | null;
}
const rollout = async (name: string) => (await api<RolloutView>('GET', `/api/v1/agents/${name}/rollout`)).json;

/**
 * Invokes `name` (each request its own conversation) until `done` says so. Stages hold for a time,
 * so this gives up after `timeoutMs`, not after a number of requests (a fast machine sends hundreds
 * within a one-second hold).
 */
async function drive(
  name: string,
  done: (r: RolloutView) => boolean,
  timeoutMs = 20_000,
): Promise<{ requests: number; answers: string[] }> {
  const answers: string[] = [];
  const until = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < until; i++) {
    const r = await api<{ content: string }>(
      'POST',
      `/api/v1/agents/${name}/invoke`,
      JSON.stringify({ request: `question ${i}` }),
      'application/json',
    );
    answers.push(
      r.status === 200 ? (/You are \S+ (v\d+)/.exec(r.json.content)?.[1] ?? r.json.content) : `error ${r.status}`,
    );
    if (done(await rollout(name))) return { requests: i + 1, answers };
  }
  throw new Error(
    `the rollout of ${name} did not finish within ${timeoutMs} ms: ${JSON.stringify(await rollout(name))}`,
  );
}

/** Beside the scripted provider: "flaky", an OpenAI-compatible one on the server started here. */
function config(): string {
  const { port } = provider.address() as AddressInfo;
  return `${SCRIPTED_AUTH_TOML}\n[llm.providers.flaky]\ntype = "openai"\nbase_url = "http://127.0.0.1:${port}/v1"\nmax_retries = 0\n`;
}

async function start(): Promise<void> {
  server ??= new RolloutServer(dir, config);
  await server.start();
}

beforeAll(async () => {
  assertBuilt();
  // An OpenAI-compatible provider that fails every other request it gets (400: not retried).
  warmUp();
  provider = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const body = parseBody(raw);
      if (refuseInvalid(req.method, req.url ?? '', body, res)) return;
      const n = providerCalls++;
      if (n % 2 === 1) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify(refusalBody('openai', 'scripted failure for the canary')));
        return;
      }
      const system =
        (body as { messages: { role: string; content: string }[] }).messages.find((m) => m.role === 'system')
          ?.content ?? '';
      sendJson(
        res,
        openaiCompletion({
          id: `chatcmpl-${n}`,
          model: 'flaky-model',
          content: system,
          usage: { input: 1, output: 1 },
        }),
      );
    });
  });
  await new Promise<void>((r) => provider.listen(0, '127.0.0.1', r));
  dir = makeTempDir('caxton-canary-');
  writeFileSync(join(dir, 'replies.toml'), '[[rules]]\ncontent = "{{system}}"\n');
  for (const [file, body] of Object.entries({
    'flaky-v2.toml': agent('flaky', 'v2', true),
    'good-v2.toml': agent('good', 'v2'),
  }))
    writeFileSync(join(dir, file), body);
  await start();
  for (const name of ['flaky', 'good', 'slow', 'checked'])
    expect((await api('POST', '/api/v1/agents', agent(name, 'v1'))).status).toBe(201);
});

afterAll(async () => {
  await server?.close();
  await new Promise((r) => provider?.close(r));
  removeTempDirs();
});

describe('the canary plan and its judgement (no server)', () => {
  it('places conversations by id: the same place every time, spread evenly over 0–99, another place in another rollout', () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => `conv_${i.toString(36)}`);
    const tenths = new Array<number>(10).fill(0);
    for (const id of ids) {
      const b = canaryBucket(7, id);
      expect(Number.isInteger(b) && b >= 0 && b < 100).toBe(true);
      tenths[Math.floor(b / 10)]!++;
    }
    // 2,000 expected per tenth; a bias of a fifth would show.
    for (const n of tenths) expect(n > 1_700 && n < 2_300, `${n} in a tenth`).toBe(true);
    expect(ids.map((id) => canaryBucket(7, id))).toEqual(ids.map((id) => canaryBucket(7, id)));
    const moved = ids.filter((id) => canaryBucket(7, id) !== canaryBucket(8, id)).length;
    expect(moved).toBeGreaterThan(ids.length * 0.9);
  });

  it('fills defaults and reads stages and durations as written', () => {
    expect(canaryPlanSchema.parse({})).toEqual({
      stages: [5, 25, 50, 100],
      hold_ms: 60_000,
      min_requests: 20,
      max_error_rate_increase: 0.05,
      max_latency_ratio: 2,
    });
    expect(canaryPlanSchema.parse({ stages: '10, 50%,100', hold: '2m', min_requests: '5' })).toMatchObject({
      stages: [10, 50, 100],
      hold_ms: 120_000,
      min_requests: 5,
    });
  });

  it('judges on the thresholds only: waits for its minimum, rolls back on errors or latency, advances after its hold, promotes at the end', () => {
    const plan = canaryPlanSchema.parse({
      stages: '50,100',
      hold: '10s',
      min_requests: 4,
      max_error_rate_increase: 0.1,
      max_latency_ratio: 2,
    });
    const w = (ok: boolean[], ms = 10) => {
      const v = new VersionWindow();
      for (const o of ok) v.add(o, ms);
      return v;
    };
    const stable = w([true, true, true, true, true, false, true, true, true, true]); // 10 % errors
    expect(judgeStage(plan, 0, w([true, true, true]), stable, 60_000)).toEqual({
      action: 'wait',
      why: '3 of 4 candidate executions in stage 1 of 2 (50 %)',
    });
    // 20 % against 10 %: exactly the allowed increase is still healthy...
    expect(judgeStage(plan, 0, w([true, true, true, true, false]), stable, 0)).toEqual({
      action: 'wait',
      why: 'stage 1 of 2 (50 %) holds for 10 s more',
    });
    // ...one more failure is not.
    const bad = judgeStage(plan, 0, w([true, true, true, false, false]), stable, 0);
    expect(bad).toEqual({
      action: 'rollback',
      reason:
        "canary error rate 40 % (2 of 5) against the stable version's 10 % (1 of 10) in stage 1 of 2 (50 %): more than the allowed increase of 10 %",
    });
    expect(judgeStage(plan, 0, w([true, true, true, true], 50), stable, 0)).toEqual({
      action: 'rollback',
      reason: "canary p99 latency 50 ms against the stable version's 10 ms in stage 1 of 2 (50 %): more than 2 times",
    });
    expect(judgeStage(plan, 0, w([true, true, true, true], 20), stable, 10_000)).toEqual({ action: 'advance' });
    expect(judgeStage(plan, 1, w([true, true, true, true], 20), stable, 10_000)).toEqual({ action: 'promote' });
  });
});

describe('the judge of a cluster (no server)', () => {
  it('takes no lock, and reads nothing, while no canary runs', async () => {
    let running: Rollout[] = [];
    let judged = 0;
    const state = {
      shared: true,
      runningAll: () => running,
      asJudge: async (fn: () => Promise<void>) => {
        judged++;
        await fn();
        return true;
      },
    } as unknown as RolloutStatePort;
    const host: CanaryHost = {
      advance: () => Promise.resolve(),
      promote: () => Promise.resolve(),
      rollback: () => Promise.resolve(),
      onError: () => {},
    };
    const runner = new CanaryRunner(host, state, 3_600_000);
    try {
      await runner.tick();
      expect(judged).toBe(0);
      running = [{ strategy: 'blue-green' } as Rollout];
      await runner.tick();
      expect(judged).toBe(0);
      running = [{ strategy: 'canary', plan: undefined } as unknown as Rollout];
      await runner.tick();
      expect(judged).toBe(1);
    } finally {
      await runner.close();
    }
  });
});

describe('[rollout] in the agent file, and its checks (no server)', () => {
  it('reads the table, and names the field of a bad value', () => {
    const ok = parseAgent(
      'name = "a"\nsystem_prompt = "p"\n[rollout]\nstrategy = "canary"\nstages = [10, 100]\nhold = "30s"\n[[rollout.checks]]\nrequest = "ping"\nexpect = "pong"\n',
      {
        format: 'toml',
        file: 'a.toml',
      },
    );
    expect(ok.ok && ok.definition.rollout).toEqual({
      strategy: 'canary',
      stages: [10, 100],
      hold_ms: 30_000,
      checks: [{ request: 'ping', expect: 'pong' }],
    });
    const bad = parseAgent(
      'name = "a"\nsystem_prompt = "p"\n[rollout]\nstrategy = "gradual"\n[[rollout.checks]]\nrequest = "x"\nexpect = "(["\n',
      { format: 'toml', file: 'a.toml' },
    );
    expect(bad.ok).toBe(false);
    const fields = bad.ok ? [] : bad.errors.map((e) => [e.field, e.message]);
    expect(fields).toEqual(
      expect.arrayContaining([
        ['rollout.strategy', expect.stringContaining('expected "direct", "blue-green", "canary" or "shadow"')],
        ['rollout.checks.0.expect', expect.stringContaining('expected a valid regular expression')],
      ]),
    );
  });

  it('checks an answer against a pattern or the fields its JSON must hold', () => {
    expect(checkAnswer({ request: 'ping', expect: '^pong' }, 'PONG!')).toBeUndefined();
    expect(checkAnswer({ name: 'greets', request: 'ping', expect: 'hello' }, 'bye')).toBe(
      'check greets: the answer does not match /hello/i (it begins "bye")',
    );
    expect(
      checkAnswer(
        { request: 'total?', expect_json: { total: 3, items: [{ id: 'a' }] } },
        '{"total":3,"items":[{"id":"a","n":1}],"x":1}',
      ),
    ).toBeUndefined();
    expect(checkAnswer({ request: 'total?', expect_json: { total: 3 } }, '{"total":4}')).toBe(
      'check "total?": the answer does not hold {"total":3}',
    );
    expect(checkAnswer({ request: 'total?', expect_json: { total: 3 } }, 'three')).toBe(
      'check "total?": the answer is not JSON (it begins "three")',
    );
    // A pattern that backtracks is stopped, not left to hold the server's event loop.
    expect(checkAnswer({ name: 'slow', request: 'x', expect: '(a+)+$' }, `${'a'.repeat(40)}!`)).toBe(
      'check slow: the pattern /(a+)+$/i took longer than 100 ms on the answer (a pattern that backtracks): simplify it',
    );
  });
});

describe('canary rollouts on a server', () => {
  it('refuses a plan that does not add up, naming the option, and changes nothing', async () => {
    const cases: [string, string][] = [
      ['strategy=canary&stages=5,25,50', 'canary option "stages": the last stage must be 100 % (it is 50 %)'],
      ['strategy=canary&stages=50,25,100', 'canary option "stages": stages must rise: 25 % comes after 50 %'],
      ['strategy=canary&stages=5,abc,100', 'canary option "stages": "abc" is not a percentage from 1 to 100'],
      ['strategy=canary&hold=soon', 'canary option "hold"'],
      ['strategy=canary&max_error_rate_increase=2', 'canary option "max_error_rate_increase"'],
      ['strategy=blue-green&stages=50,100', 'stages apply to strategy=canary only'],
    ];
    for (const [query, message] of cases) {
      const r = await api<{ error: { code: string; message: string } }>(
        'PUT',
        `/api/v1/agents/good?${query}`,
        agent('good', 'v9'),
      );
      expect(r.status, query).toBe(400);
      expect(r.json.error.message, query).toContain(message);
    }
    expect((await rollout('good')).rollout).toBeNull();
    expect((await api<{ total: number }>('GET', '/api/v1/agents/good/versions')).json.total).toBe(1);
    const cliBad = await cli('agent', 'deploy', 'good-v2.toml', '--stages', '50,100');
    expect(cliBad.code).not.toBe(0);
    expect(cliBad.stderr).toContain('--stages applies to --strategy canary only');
  });

  it('rolls a failing canary back at the first stage with enough executions, and says why with the figures', async () => {
    const d = await cli(
      'agent',
      'deploy',
      'flaky-v2.toml',
      '--strategy',
      'canary',
      '--stages',
      '50,100',
      '--hold',
      '0s',
      '--min-requests',
      '4',
      '--max-error-rate-increase',
      '0.2',
    );
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toContain('deployed flaky version 2 as a canary from flaky-v2.toml');
    const started = await rollout('flaky');
    expect(started.canary).toMatchObject({ stage: 0, weight: 50, candidate: { requests: 0 } });
    const { answers } = await drive('flaky', (r) => !r.running);
    const ended = await rollout('flaky');
    expect(ended.rollout).toMatchObject({ state: 'rolled_back', stage: 0 });
    // The candidate failed every other execution: 2 of 4 when it was judged, against none of the stable's.
    expect(ended.rollout!.reason).toMatch(
      /^canary error rate 50 % \(2 of 4\) against the stable version's 0 % \(0 of \d+\) in stage 1 of 2 \(50 %\): more than the allowed increase of 20 %$/,
    );
    expect(answers.filter((a) => a === 'error 502')).toHaveLength(2);
    expect(answers.filter((a) => a === 'v2')).toHaveLength(2);
    // Rolled back: every new conversation is on version 1 again.
    const after = await drive('flaky', () => true);
    expect(after.answers).toEqual(['v1']);
    const events = await api<{ events: { type: string; data: { reason: string | null } }[] }>(
      'GET',
      '/api/v1/events?agent=flaky',
    );
    expect(events.json.events.find((e) => e.type === 'rollout.rolled_back')?.data.reason).toBe(ended.rollout!.reason);
  });

  it('advances a healthy canary stage by stage and promotes it at 100 %', async () => {
    const r = await api(
      'PUT',
      '/api/v1/agents/good?strategy=canary&stages=30,100&hold=0s&min_requests=3&max_latency_ratio=1000',
      agent('good', 'v2'),
    );
    expect(r.status, r.text).toBe(200);
    const seenStages = new Set<number>();
    const { answers } = await drive('good', (v) => {
      if (v.canary) seenStages.add(v.canary.stage);
      return !v.running;
    });
    const ended = await rollout('good');
    expect(ended.rollout).toMatchObject({ state: 'promoted', stage: 1 });
    expect(ended.live_version).toBe(3); // 1, the candidate 2, and the promotion recorded as 3
    expect(answers.filter((a) => a === 'v2').length).toBeGreaterThanOrEqual(6); // 3 per stage
    expect(seenStages.has(1)).toBe(true);
    expect((await drive('good', () => true)).answers).toEqual(['v2']);
    const events = await api<{ events: { type: string }[] }>('GET', '/api/v1/events?agent=good');
    const types = events.json.events.map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['rollout.started', 'rollout.stage_advanced', 'rollout.promoted']));
  });

  it("takes the strategy and options from the file's [rollout], and its failing check rolls the canary back before the first stage", async () => {
    const withRollout = (label: string, expectText: string) =>
      `${agent('checked', label)}\n[rollout]\nstrategy = "canary"\nstages = [50, 100]\nhold = 0\nmin_requests = 2\nmax_latency_ratio = 1000\n\n[[rollout.checks]]\nname = "knows itself"\nrequest = "who are you?"\nexpect = "${expectText}"\n`;
    writeFileSync(join(dir, 'checked-v2.toml'), withRollout('v2', 'You are checked v9'));
    writeFileSync(join(dir, 'checked-v3.toml'), withRollout('v3', 'You are checked v3'));
    const failed = await cli('agent', 'deploy', 'checked-v2.toml');
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain(
      'version 2 of checked was recorded, but its rollout was rolled back: a check failed before the first stage: check knows itself: the answer does not match /You are checked v9/i',
    );
    expect((await rollout('checked')).rollout).toMatchObject({ strategy: 'canary', state: 'rolled_back', stage: 0 });
    // Nobody was sent to version 2 meanwhile.
    expect((await drive('checked', () => true)).answers).toEqual(['v1']);

    const passed = await cli('agent', 'deploy', 'checked-v3.toml');
    expect(passed.code, passed.stderr).toBe(0);
    expect(passed.stdout).toContain('deployed checked version 4 as a canary from checked-v3.toml');
    const started = await rollout('checked');
    expect(started.rollout).toMatchObject({ state: 'running', candidate_version: 4, plan: { stages: [50, 100] } });
    await drive('checked', (v) => !v.running);
    expect((await rollout('checked')).rollout!.state).toBe('promoted');
  });

  it('resumes at the saved stage after a restart, and shows its figures', async () => {
    const r = await api(
      'PUT',
      '/api/v1/agents/slow?strategy=canary&stages=20,60,100&hold=1s&min_requests=2&max_latency_ratio=1000',
      agent('slow', 'v2'),
    );
    expect(r.status, r.text).toBe(200);
    await drive('slow', (v) => (v.canary?.stage ?? 0) >= 1);
    await server.close();
    await start();
    const resumed = await rollout('slow');
    expect(resumed).toMatchObject({
      running: true,
      rollout: { state: 'running', stage: 1 },
      canary: { stage: 1, weight: 60, candidate: { requests: 0 } },
    });
    const shown = await cli('agent', 'rollout', 'status', 'slow');
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(
      'stage:     2 of 3: 60 % of new conversations to the candidate (stages 20, 60, 100 %)',
    );
    expect(shown.stdout).toContain('waiting:   0 of 2 candidate executions in stage 2 of 3 (60 %)');
    const watched = await cli(
      'agent',
      'rollout',
      'status',
      'slow',
      '--watch',
      '--interval',
      '200ms',
      '--count',
      '2',
      '--json',
    );
    expect(watched.code, watched.stderr).toBe(0);
    const frames = watched.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as RolloutView);
    expect(frames.map((f) => [f.running, f.canary?.stage])).toEqual([
      [true, 1],
      [true, 1],
    ]);
    await drive('slow', (v) => !v.running);
    expect((await rollout('slow')).rollout).toMatchObject({ state: 'promoted', stage: 2 });
    // A watch ends with the rollout: one frame, then it exits on its own.
    const last = await cli('agent', 'rollout', 'status', 'slow', '--watch', '--interval', '200ms');
    expect(last.code, last.stderr).toBe(0);
    expect(last.stdout).toMatch(/^slow: canary rollout promoted$/m);
  });
});
