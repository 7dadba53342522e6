/**
 * Limits per principal and per agent (src/auth/caller-limits.ts, ADR 0024).
 *
 * The limiter's unit tests run on a fake clock: no sleeps, no timing assertions. The executor
 * tests build a real Executor (config from loadServerConfig, agents in a registry) on the
 * scripted provider, whose replies carry token usage (characters / 4); held executions wait on
 * a long scripted latency and are ended by aborting them, never by time passing. The HTTP test
 * serves the executor from a fastify app on 127.0.0.1 port 0 with the API's own error envelope,
 * so the 429 and its Retry-After header are what a client gets.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry, parseAgent } from '../../src/agents/index.js';
import { retryAfterSeconds as envelopeRetryAfter, sendError, toEnvelope } from '../../src/api/envelope.js';
import {
  agentLimitsLookup,
  authLimitsConfigSchema,
  limitSetSchema,
  principalLimits,
  type LimitSet,
} from '../../src/auth/limits-config.js';
import {
  CONCURRENCY_RETRY_MS,
  limitedError,
  PrincipalLimiter,
  type ExecutionAdmission,
  type ExecutionSlot,
  type LimitDenied,
} from '../../src/auth/caller-limits.js';
import { loadServerConfig } from '../../src/config/index.js';
import { Executor } from '../../src/execution/index.js';
import { Metrics } from '../../src/observability/metrics.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const MIN = 60_000;

/** A clock the test moves by hand. Starts 10 s into a minute (and an hour), so windows are visible. */
function fakeClock(start = Date.UTC(2030, 0, 1, 12, 0, 10)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms), set: (ms: number) => void (t = ms) };
}

function slot(a: ExecutionAdmission): ExecutionSlot {
  if (!a.ok) throw new Error(`expected an admitted execution, got ${JSON.stringify(a)}`);
  return a;
}

function denied(a: ExecutionAdmission | { ok: true }): LimitDenied {
  if (a.ok) throw new Error('expected a refusal, got an admission');
  return a;
}

describe('[auth.limits] schema', () => {
  it('normalizes tokens_per_minute and tokens with a period; absent fields mean unlimited', () => {
    expect(limitSetSchema.parse({ tokens_per_minute: 1000 })).toEqual({ tokens: 1000, tokens_period_ms: MIN });
    expect(limitSetSchema.parse({ tokens: 100_000, tokens_period: '1h' })).toEqual({
      tokens: 100_000,
      tokens_period_ms: 3_600_000,
    });
    expect(limitSetSchema.parse({ tokens: 5 })).toEqual({ tokens: 5, tokens_period_ms: MIN });
    expect(limitSetSchema.parse({ requests_per_minute: 60, concurrent_executions: 2 })).toEqual({
      requests_per_minute: 60,
      concurrent_executions: 2,
    });
    expect(limitSetSchema.parse({})).toEqual({});
    const cfg = authLimitsConfigSchema.parse(undefined);
    expect(cfg).toEqual({ agents: {}, anonymous: { requests_per_minute: 600, max_addresses: 10_000 } });
  });

  it('refuses contradictions, zero, fractions, unknown keys and out-of-range periods, naming the field', () => {
    const issues = (v: unknown) => {
      const r = authLimitsConfigSchema.safeParse(v);
      expect(r.success).toBe(false);
      return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
    };
    expect(issues({ default: { tokens_per_minute: 10, tokens: 10 } })).toMatch(
      /default\.tokens_per_minute: give either tokens_per_minute or tokens/,
    );
    expect(issues({ default: { tokens_period: '1h' } })).toMatch(/default\.tokens_period: tokens_period needs tokens/);
    expect(issues({ default: { concurrent_executions: 0 } })).toMatch(/default\.concurrent_executions/);
    expect(issues({ agents: { support: { requests_per_minute: 1.5 } } })).toMatch(
      /agents\.support\.requests_per_minute/,
    );
    expect(issues({ default: { tokens_per_hour: 10 } })).toMatch(/tokens_per_hour/);
    expect(issues({ default: { tokens: 10, tokens_period: '745h' } })).toMatch(
      /default\.tokens_period: duration "745h" is out of range/,
    );
    expect(issues({ default: { tokens: 10, tokens_period: 'soon' } })).toMatch(/expected a duration/);
  });

  it("resolves an agent by exact name first, then the first matching glob; a key's own limits replace the default", () => {
    const cfg = authLimitsConfigSchema.parse({
      default: { requests_per_minute: 10 },
      agents: {
        'support-*': { concurrent_executions: 4 },
        '*': { concurrent_executions: 9 },
        'support-vip': { concurrent_executions: 1 },
      },
    });
    const lookup = agentLimitsLookup(cfg);
    expect(lookup('support-vip')).toEqual({ concurrent_executions: 1 });
    expect(lookup('support-eu')).toEqual({ concurrent_executions: 4 });
    expect(lookup('billing')).toEqual({ concurrent_executions: 9 });
    // An agent named like an Object.prototype member is not confused with it.
    expect(
      agentLimitsLookup(authLimitsConfigSchema.parse({ agents: { 'x-*': { tokens: 1 } } }))('constructor'),
    ).toBeUndefined();
    expect(agentLimitsLookup(authLimitsConfigSchema.parse({}))('anything')).toBeUndefined();
    expect(principalLimits(cfg)).toEqual({ requests_per_minute: 10 });
    expect(principalLimits(cfg, { tokens: 5, tokens_period_ms: MIN })).toEqual({ tokens: 5, tokens_period_ms: MIN });
  });
});

describe('PrincipalLimiter: requests', () => {
  it('admits requests_per_minute at once, then one every 60/N s; other principals are not affected', () => {
    const clock = fakeClock();
    const l = new PrincipalLimiter({ now: clock.now });
    const limits: LimitSet = { requests_per_minute: 3 };
    for (let i = 0; i < 3; i++) expect(l.admitRequest('key:a', limits).ok).toBe(true);
    const d = denied(l.admitRequest('key:a', limits));
    expect(d).toMatchObject({
      limit: 'requests',
      scope: 'principal',
      subject: 'key:a',
      value: 3,
      retryAfterMs: 20_000,
    });
    expect(l.admitRequest('key:b', limits).ok).toBe(true);
    clock.advance(19_999);
    expect(l.admitRequest('key:a', limits).ok).toBe(false);
    clock.advance(1);
    expect(l.admitRequest('key:a', limits).ok).toBe(true);
    expect(l.admitRequest('key:a', limits).ok).toBe(false);
    expect(l.usage('key:a', limits).requests).toEqual({ used: 3, limit: 3 });
  });

  it('keeps no state for a principal without a rate limit', () => {
    const l = new PrincipalLimiter({ now: fakeClock().now });
    for (let i = 0; i < 1000; i++) expect(l.admitRequest(`key:${i}`, {}).ok).toBe(true);
    expect(l.admitRequest('key:x', undefined).ok).toBe(true);
    expect(l.size).toBe(0);
  });

  it('a smaller limit after a reload keeps the deficit within the new size', () => {
    const clock = fakeClock();
    const l = new PrincipalLimiter({ now: clock.now });
    for (let i = 0; i < 10; i++) expect(l.admitRequest('key:a', { requests_per_minute: 10 }).ok).toBe(true);
    expect(l.admitRequest('key:a', { requests_per_minute: 2 }).ok).toBe(false);
    clock.advance(30_000); // one request back at 2 per minute
    expect(l.admitRequest('key:a', { requests_per_minute: 2 }).ok).toBe(true);
    expect(l.admitRequest('key:a', { requests_per_minute: 2 }).ok).toBe(false);
  });
});

describe('PrincipalLimiter: executions', () => {
  it('refuses the execution beyond concurrent_executions until one is released; release is idempotent', () => {
    const l = new PrincipalLimiter({ now: fakeClock().now });
    const limits: LimitSet = { concurrent_executions: 2 };
    const a = slot(l.beginExecution({ principalId: 'key:a', principalLimits: limits, agent: 'x' }));
    slot(l.beginExecution({ principalId: 'key:a', principalLimits: limits, agent: 'x' }));
    expect(denied(l.beginExecution({ principalId: 'key:a', principalLimits: limits, agent: 'x' }))).toMatchObject({
      limit: 'concurrency',
      scope: 'principal',
      value: 2,
      retryAfterMs: CONCURRENCY_RETRY_MS,
    });
    slot(l.beginExecution({ principalId: 'key:b', principalLimits: limits, agent: 'x' }));
    a.release();
    a.release();
    expect(l.usage('key:a', limits).executions).toEqual({ running: 1, limit: 2 });
    slot(l.beginExecution({ principalId: 'key:a', principalLimits: limits, agent: 'x' }));
    // The double release freed one slot, not two.
    expect(l.beginExecution({ principalId: 'key:a', principalLimits: limits, agent: 'x' }).ok).toBe(false);
  });

  it('an agent budget is shared by all callers; a refusal takes nothing from the principal', () => {
    const l = new PrincipalLimiter({ now: fakeClock().now });
    const agentLimits: LimitSet = { concurrent_executions: 1 };
    const first = slot(l.beginExecution({ principalId: 'key:a', agent: 'support', agentLimits }));
    const d = denied(
      l.beginExecution({
        principalId: 'key:b',
        principalLimits: { concurrent_executions: 5 },
        agent: 'support',
        agentLimits,
      }),
    );
    expect(d).toMatchObject({ limit: 'concurrency', scope: 'agent', subject: 'support', value: 1 });
    expect(l.usage('key:b').executions.running).toBe(0);
    // Executions no outside caller started (messages between agents) count against the agent too.
    expect(l.beginExecution({ agent: 'support', agentLimits }).ok).toBe(false);
    slot(l.beginExecution({ principalId: 'key:b', agent: 'other', agentLimits }));
    first.release();
    slot(l.beginExecution({ agent: 'support', agentLimits }));
    expect(l.agentUsage('support', agentLimits).executions).toEqual({ running: 1, limit: 1 });
  });

  it("an agent's requests_per_minute limits the executions started per minute", () => {
    const clock = fakeClock();
    const l = new PrincipalLimiter({ now: clock.now });
    const agentLimits: LimitSet = { requests_per_minute: 2 };
    slot(l.beginExecution({ principalId: 'key:a', agent: 'costly', agentLimits })).release();
    slot(l.beginExecution({ principalId: 'key:b', agent: 'costly', agentLimits })).release();
    expect(denied(l.beginExecution({ principalId: 'key:c', agent: 'costly', agentLimits }))).toMatchObject({
      limit: 'requests',
      scope: 'agent',
      retryAfterMs: 30_000,
    });
    clock.advance(30_000);
    expect(l.beginExecution({ principalId: 'key:c', agent: 'costly', agentLimits }).ok).toBe(true);
  });
});

describe('PrincipalLimiter: tokens', () => {
  it('admits while the window has budget, charges the overshoot at release, refuses until the window resets', () => {
    const clock = fakeClock(); // 12:00:10
    const l = new PrincipalLimiter({ now: clock.now });
    const limits: LimitSet = { tokens: 1000, tokens_period_ms: MIN };
    slot(l.beginExecution({ principalId: 'key:a', principalLimits: limits, agent: 'x' })).release({ tokens: 900 });
    // Under budget (900 < 1000): admitted, and it may overshoot.
    slot(l.beginExecution({ principalId: 'key:a', principalLimits: limits, agent: 'x' })).release({ tokens: 300 });
    expect(l.usage('key:a', limits).tokens).toEqual({
      used: 1200,
      limit: 1000,
      period_ms: MIN,
      resets_at: '2030-01-01T12:01:00.000Z',
    });
    clock.advance(5_000); // 12:00:15
    const d = denied(l.beginExecution({ principalId: 'key:a', principalLimits: limits, agent: 'x' }));
    expect(d).toMatchObject({
      limit: 'tokens',
      scope: 'principal',
      value: 1000,
      used: 1200,
      periodMs: MIN,
      retryAfterMs: 45_000,
    });
    expect(l.beginExecution({ principalId: 'key:b', principalLimits: limits, agent: 'x' }).ok).toBe(true);
    clock.advance(44_999);
    expect(l.beginExecution({ principalId: 'key:a', principalLimits: limits, agent: 'x' }).ok).toBe(false);
    clock.advance(1); // 12:01:00: a new window
    expect(l.beginExecution({ principalId: 'key:a', principalLimits: limits, agent: 'x' }).ok).toBe(true);
    expect(l.usage('key:a', limits).tokens.used).toBe(0);
  });

  it('a 1h period aligns to the hour', () => {
    const clock = fakeClock(Date.UTC(2030, 0, 1, 12, 59, 0));
    const l = new PrincipalLimiter({ now: clock.now });
    const limits = limitSetSchema.parse({ tokens: 100, tokens_period: '1h' });
    slot(l.beginExecution({ principalId: 'key:a', principalLimits: limits })).release({ tokens: 100 });
    expect(denied(l.beginExecution({ principalId: 'key:a', principalLimits: limits })).retryAfterMs).toBe(60_000);
    clock.advance(60_000);
    expect(l.beginExecution({ principalId: 'key:a', principalLimits: limits }).ok).toBe(true);
  });

  it('record() charges as tokens stream and release() adds only the rest; recordTokens charges principal and limited agent', () => {
    const l = new PrincipalLimiter({ now: fakeClock().now });
    const agentLimits: LimitSet = { tokens: 10_000, tokens_period_ms: MIN };
    const s = slot(l.beginExecution({ principalId: 'key:a', agent: 'support', agentLimits }));
    s.record(100);
    s.record(50);
    expect(l.usage('key:a').tokens.used).toBe(150);
    s.release({ tokens: 400 });
    s.record(1_000); // after release: ignored
    s.release({ tokens: 9_999 }); // idempotent
    expect(l.usage('key:a').tokens.used).toBe(400);
    expect(l.agentUsage('support', agentLimits).tokens.used).toBe(400);
    l.recordTokens('key:a', 'support', 25);
    l.recordTokens('key:a', 'unlimited-agent', 5);
    l.recordTokens('key:a', 'support', Number.NaN);
    l.recordTokens('key:a', 'support', -3);
    expect(l.usage('key:a').tokens.used).toBe(430);
    expect(l.agentUsage('support', agentLimits).tokens.used).toBe(425);
    expect(l.agentUsage('unlimited-agent').tokens.used).toBe(0);
  });

  it('an agent token budget refuses every caller once used up', () => {
    const l = new PrincipalLimiter({ now: fakeClock().now });
    const agentLimits: LimitSet = { tokens: 50, tokens_period_ms: MIN };
    slot(l.beginExecution({ principalId: 'key:a', agent: 'support', agentLimits })).release({ tokens: 60 });
    expect(denied(l.beginExecution({ principalId: 'key:b', agent: 'support', agentLimits }))).toMatchObject({
      limit: 'tokens',
      scope: 'agent',
      subject: 'support',
      used: 60,
    });
  });
});

describe('PrincipalLimiter: memory', () => {
  it('drops idle states on a sweep, keeps those that still hold something', () => {
    const clock = fakeClock(Date.UTC(2030, 0, 1, 12, 0, 0));
    const l = new PrincipalLimiter({ now: clock.now, sweepIntervalMs: MIN });
    for (let i = 0; i < 500; i++) l.admitRequest(`key:${i}`, { requests_per_minute: 100 });
    const running = slot(
      l.beginExecution({ principalId: 'key:running', agent: 'support', agentLimits: { concurrent_executions: 3 } }),
    );
    slot(
      l.beginExecution({ principalId: 'key:hourly', principalLimits: { tokens: 10, tokens_period_ms: 3_600_000 } }),
    ).release({ tokens: 5 });
    expect(l.size).toBe(503);
    clock.advance(MIN); // every bucket has refilled; the hourly window and the running execution remain
    l.admitRequest('key:0', { requests_per_minute: 100 }); // any call sweeps once the interval has passed
    expect(l.size).toBe(4); // key:0 again, key:running, key:hourly, agent support
    expect(l.usage('key:hourly', { tokens: 10, tokens_period_ms: 3_600_000 }).tokens.used).toBe(5);
    running.release();
    clock.set(Date.UTC(2030, 0, 1, 13, 0, 0));
    l.sweep();
    expect(l.size).toBe(0);
  });
});

describe('limitedError and metrics', () => {
  it('is a 429 rate_limited naming the limit, its value and when to retry; details.retry_after feeds Retry-After', () => {
    const clock = fakeClock();
    const l = new PrincipalLimiter({ now: clock.now });
    const limits: LimitSet = { tokens: 1000, tokens_period_ms: MIN };
    slot(l.beginExecution({ principalId: 'key:ci', principalLimits: limits })).release({ tokens: 1500 });
    const e = limitedError(denied(l.beginExecution({ principalId: 'key:ci', principalLimits: limits })));
    expect(e).toBeInstanceOf(CaxtonError);
    expect(e.code).toBe('rate_limited');
    expect(e.status).toBe(429);
    expect(e.message).toBe(
      '"key:ci" has used 1500 of its 1000 LLM tokens per 1 min (tokens); the window resets in 50 s',
    );
    expect(e.details).toEqual({
      limit: 'tokens',
      scope: 'principal',
      value: 1000,
      period_s: 60,
      used: 1500,
      retry_after: 50,
    });
    expect(envelopeRetryAfter(e.details)).toBe(50);

    const c = limitedError({
      ok: false,
      limit: 'concurrency',
      scope: 'agent',
      subject: 'support',
      value: 4,
      retryAfterMs: 1,
    });
    expect(c.message).toMatch(
      /^agent "support" already has 4 executions running, its limit \(concurrent_executions\); retry .* in 1 s/,
    );
    expect(c.details).toMatchObject({ agent: 'support', retry_after: 1 });
    const r = limitedError({
      ok: false,
      limit: 'requests',
      scope: 'principal',
      subject: 'key:ci',
      value: 60,
      retryAfterMs: 1001,
    });
    expect(r.message).toBe('"key:ci" is at its limit of 60 requests per minute (requests_per_minute); retry in 2 s');
  });

  it('counts rejections by limit and scope and reports the states held', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const l = new PrincipalLimiter({ now: fakeClock().now, metrics });
    l.admitRequest('key:a', { requests_per_minute: 1 });
    l.admitRequest('key:a', { requests_per_minute: 1 });
    l.admitRequest('key:a', { requests_per_minute: 1 });
    slot(l.beginExecution({ agent: 'support', agentLimits: { concurrent_executions: 1 } }));
    l.beginExecution({ agent: 'support', agentLimits: { concurrent_executions: 1 } });
    const text = await metrics.registry.metrics();
    expect(text).toContain('caxton_limit_rejections_total{limit="requests",scope="principal"} 2');
    expect(text).toContain('caxton_limit_rejections_total{limit="concurrency",scope="agent"} 1');
    expect(text).toContain('caxton_limit_tracked_states 2');
  });
});

describe('Executor with a limiter (scripted provider)', () => {
  const clock = fakeClock();
  const registry = new AgentRegistry();
  let executor: Executor;
  let limiter: PrincipalLimiter;
  let app: FastifyInstance;
  let url: string;
  const twoAtOnce: LimitSet = { concurrent_executions: 2 };
  const thousandPerMinute = limitSetSchema.parse({ tokens_per_minute: 1000 });

  function deploy(name: string): void {
    const parsed = parseAgent(
      stringify({
        name,
        description: `limits test agent ${name}`,
        capabilities: ['testing'],
        tools: [],
        system_prompt: `You are ${name}.`,
      }),
      { format: 'toml' },
    );
    if (!parsed.ok) throw new Error(`bad test agent: ${JSON.stringify(parsed.errors)}`);
    const now = new Date().toISOString();
    registry.upsert({
      definition: parsed.definition,
      format: 'toml',
      origin: { kind: 'api' },
      revision: 1,
      deployed_at: now,
      updated_at: now,
    });
  }

  beforeAll(async () => {
    const dir = makeTempDir('caxton-limits-');
    // `hold` replies after ten minutes (the test aborts such executions); `big` replies with about
    // 1,250 output tokens (scripted usage is characters / 4); anything else answers at once.
    const script = join(dir, 'replies.toml');
    writeFileSync(
      script,
      stringify({
        rules: [
          { match: '^hold', latency_ms: 600_000, content: 'held' },
          { match: '^big', content: 'x'.repeat(5_000) },
          { content: 'ok: {{request}}' },
        ],
      }),
    );
    const file = join(dir, 'caxton.toml');
    writeFileSync(
      file,
      stringify({
        server: { port: 0 },
        metrics: { enabled: false },
        logging: { level: 'silent' },
        llm: { default_provider: 'demo', providers: { demo: { type: 'scripted', script } } },
        execution: { isolation: 'context' },
      }),
    );
    const config = loadServerConfig({ file, env: {}, cwd: dir });
    limiter = new PrincipalLimiter({ now: clock.now });
    const limitsCfg = authLimitsConfigSchema.parse({ agents: { 'shared-*': { concurrent_executions: 1 } } });
    executor = new Executor(config, registry, { limiter, agentLimits: agentLimitsLookup(limitsCfg) });
    deploy('helper');
    deploy('shared-one');

    // The integrator's wiring, reduced to what this test needs: the principal from a header, its
    // limits by name, and the API's own error envelope (Retry-After from details.retry_after).
    const limitsOf: Record<string, LimitSet> = { 'key:busy': twoAtOnce, 'key:spender': thousandPerMinute };
    app = Fastify();
    app.setErrorHandler((err, req, reply) => {
      const { status, body } = toEnvelope(err, req, 1 << 20);
      return sendError(reply, status, body);
    });
    app.post<{ Params: { name: string }; Body: { request: string } }>('/invoke/:name', async (req) => {
      const principalId = String(req.headers['x-principal']);
      return executor.invoke(
        req.params.name,
        { request: req.body.request },
        { limit: { principalId, limits: limitsOf[principalId] } },
      );
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterAll(async () => {
    await app?.close();
    await executor?.close();
    removeTempDirs();
  });

  it('a principal limited to 2 concurrent executions gets 429 on the 3rd while another principal is served; ended executions free their slots', async () => {
    const holders = [new AbortController(), new AbortController()];
    const held = holders.map((ac) =>
      executor.invoke(
        'helper',
        { request: 'hold on' },
        { signal: ac.signal, limit: { principalId: 'key:busy', limits: twoAtOnce } },
      ),
    );
    const settled = held.map((p) =>
      p.then(
        () => 'resolved',
        (e: unknown) => (e instanceof CaxtonError ? e.code : String(e)),
      ),
    );
    expect(limiter.usage('key:busy', twoAtOnce).executions).toEqual({ running: 2, limit: 2 });

    const third = await fetch(`${url}/invoke/helper`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-principal': 'key:busy' },
      body: JSON.stringify({ request: 'hello' }),
    });
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('1');
    const body = (await third.json()) as { error: { code: string; message: string; details: Record<string, unknown> } };
    expect(body.error.code).toBe('rate_limited');
    expect(body.error.message).toMatch(
      /"key:busy" already has 2 executions running, its limit \(concurrent_executions\)/,
    );
    expect(body.error.details).toMatchObject({ limit: 'concurrency', scope: 'principal', value: 2, retry_after: 1 });

    const other = await fetch(`${url}/invoke/helper`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-principal': 'key:other' },
      body: JSON.stringify({ request: 'hello' }),
    });
    expect(other.status).toBe(200);
    expect(((await other.json()) as { content: string }).content).toBe('ok: hello');

    // Cancelled executions give their slots back (the release on failure).
    for (const ac of holders) ac.abort();
    expect(await Promise.all(settled)).toEqual(['cancelled', 'cancelled']);
    expect(limiter.usage('key:busy', twoAtOnce).executions.running).toBe(0);
    const again = await executor.invoke(
      'helper',
      { request: 'hello again' },
      { limit: { principalId: 'key:busy', limits: twoAtOnce } },
    );
    expect(again.content).toBe('ok: hello again');
  });

  it('1,000 tokens per minute: the call that crosses the budget completes, the next gets 429 with Retry-After until the window resets', async () => {
    clock.set(Date.UTC(2030, 0, 1, 12, 5, 20)); // 40 s before the window ends
    const headers = { 'content-type': 'application/json', 'x-principal': 'key:spender' };
    const first = await fetch(`${url}/invoke/helper`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ request: 'big answer please' }),
    });
    expect(first.status).toBe(200);
    const usage = ((await first.json()) as { usage: { input_tokens: number; output_tokens: number } }).usage;
    expect(usage.output_tokens).toBe(1250);
    expect(limiter.usage('key:spender', thousandPerMinute).tokens.used).toBe(usage.input_tokens + usage.output_tokens);

    const second = await fetch(`${url}/invoke/helper`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ request: 'small' }),
    });
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toBe('40');
    const body = (await second.json()) as {
      error: { code: string; message: string; details: Record<string, unknown> };
    };
    expect(body.error.message).toMatch(
      /"key:spender" has used \d+ of its 1000 LLM tokens per 1 min \(tokens\); the window resets in 40 s/,
    );
    expect(body.error.details).toMatchObject({ limit: 'tokens', value: 1000, retry_after: 40 });

    // Another principal is served meanwhile.
    const other = await fetch(`${url}/invoke/helper`, {
      method: 'POST',
      headers: { ...headers, 'x-principal': 'key:frugal' },
      body: JSON.stringify({ request: 'small' }),
    });
    expect(other.status).toBe(200);

    clock.advance(39_000);
    expect(
      (
        await fetch(`${url}/invoke/helper`, { method: 'POST', headers, body: JSON.stringify({ request: 'small' }) })
      ).headers.get('retry-after'),
    ).toBe('1');
    clock.advance(1_000); // the next window
    const after = await fetch(`${url}/invoke/helper`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ request: 'small' }),
    });
    expect(after.status).toBe(200);
  });

  it('an agent budget applies to executions without a principal; admit() takes the slot before a stream opens', async () => {
    const ac = new AbortController();
    const held = executor
      .invoke('shared-one', { request: 'hold' }, { signal: ac.signal })
      .catch((e: unknown) => (e as CaxtonError).code);
    await expect(executor.invoke('shared-one', { request: 'hi' })).rejects.toMatchObject({
      code: 'rate_limited',
      details: { scope: 'agent', agent: 'shared-one', limit: 'concurrency' },
    });
    expect(() => executor.admit('shared-one', { principalId: 'key:s' })).toThrow(
      /agent "shared-one" already has 1 executions running/,
    );
    ac.abort();
    expect(await held).toBe('cancelled');

    const admitted = executor.admit('shared-one', { principalId: 'key:s' });
    expect(admitted).toBeDefined();
    expect(() => executor.admit('shared-one')).toThrow(CaxtonError);
    const res = await executor.invoke(
      'shared-one',
      { request: 'streamed' },
      { stream: true, admitted, limit: { principalId: 'key:s' } },
    );
    expect(res.content).toBe('ok: streamed');
    // invoke released the admitted slot and charged its tokens to the principal.
    expect(limiter.agentUsage('shared-one').executions.running).toBe(0);
    expect(limiter.usage('key:s').tokens.used).toBe(res.usage.input_tokens + res.usage.output_tokens);
    // A slot taken by admit() is given back when the request never gets to run.
    const unused = executor.admit('shared-one');
    await expect(executor.invoke('shared-one', { request: '' }, { admitted: unused })).rejects.toMatchObject({
      code: 'invalid_request',
    });
    expect(limiter.agentUsage('shared-one').executions.running).toBe(0);
    expect(executor.inFlight).toBe(0);
    // No limits anywhere: only the node's count of runs in flight ([execution] max_in_flight).
    const helper = executor.admit('helper');
    expect(executor.inFlight).toBe(1);
    helper.release();
    helper.release();
    expect(executor.inFlight).toBe(0);
  });
});
