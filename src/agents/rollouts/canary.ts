/**
 * Canary rollouts: the plan a deploy asks for, and the judgement of each stage.
 *
 * Each stage gives the candidate a share of new conversations (sticky: a conversation keeps the
 * version it started on). A stage is judged on the executions of both versions since it began:
 * once the candidate has `min_requests` of them, an error rate above the stable one's by more
 * than `max_error_rate_increase`, or a p99 latency above the stable one's times
 * `max_latency_ratio` (and by more than LATENCY_NOISE_MS), rolls the rollout back with the figures as its reason. A healthy stage
 * advances after `hold_ms`; the last (100 %) promotes. At 100 % the stable version serves no new
 * conversation, so the comparison uses its figures from the stage before.
 */
import { Script } from 'node:vm';
import { z } from 'zod';
import { durationMs, numberOrText } from '../../shared/zod-units.js';
import type { WindowFigures } from './rollout-state.js';

const percent = z.number().int().min(1).max(100);

/** The plan as a deploy gives it (query string or `[rollout]`): stages as a list or "5,25,50,100", durations as "30s". */
export const canaryPlanSchema = z
  .strictObject({
    stages: z
      .preprocess((v, ctx) => (typeof v === 'string' ? parseStages(v, ctx) : v), z.array(percent))
      .default([5, 25, 50, 100])
      .describe('the candidate’s share of new conversations at each stage, in percent, rising, ending at 100'),
    hold: numberOrText
      .default(60)
      .pipe(durationMs({ min: 0 }))
      .describe('how long each stage runs at least (seconds, or "30s", "5m")'),
    min_requests: z.coerce
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(20)
      .describe('executions of the candidate in a stage before it is judged'),
    max_error_rate_increase: z.coerce
      .number()
      .min(0)
      .max(1)
      .default(0.05)
      .describe('roll back when the candidate’s error rate exceeds the stable one’s by more than this (0..1)'),
    max_latency_ratio: z.coerce
      .number()
      .min(1)
      .max(1000)
      .default(2)
      .describe('roll back when the candidate’s p99 latency exceeds the stable one’s times this'),
  })
  .superRefine((p, ctx) => {
    const s = p.stages;
    if (s.length === 0) ctx.addIssue({ code: 'custom', path: ['stages'], message: 'needs at least one stage' });
    for (let i = 1; i < s.length; i++) {
      if (s[i]! <= s[i - 1]!)
        ctx.addIssue({
          code: 'custom',
          path: ['stages'],
          message: `stages must rise: ${s[i]} % comes after ${s[i - 1]} %`,
        });
    }
    if (s.length > 0 && s[s.length - 1] !== 100)
      ctx.addIssue({
        code: 'custom',
        path: ['stages'],
        message: `the last stage must be 100 % (it is ${s[s.length - 1]} %): a canary ends with every new conversation on the candidate`,
      });
  })
  .transform((p) => ({
    stages: p.stages,
    hold_ms: p.hold,
    min_requests: p.min_requests,
    max_error_rate_increase: p.max_error_rate_increase,
    max_latency_ratio: p.max_latency_ratio,
  }));

export type CanaryPlanInput = z.input<typeof canaryPlanSchema>;
export type CanaryPlan = z.output<typeof canaryPlanSchema>;

function parseStages(
  s: string,
  ctx: { addIssue(i: { code: 'custom'; message: string; input: unknown }): void },
): number[] | undefined {
  const parts = s.split(',').map((x) => x.trim().replace(/%$/, ''));
  const out: number[] = [];
  for (const p of parts) {
    const n = Number(p);
    if (!/^\d{1,3}$/.test(p) || n < 1 || n > 100) {
      ctx.addIssue({
        code: 'custom',
        message: `"${p}" is not a percentage from 1 to 100: give the stages as "5,25,50,100"`,
        input: s,
      });
      return undefined;
    }
    out.push(n);
  }
  return out;
}

/**
 * Where a conversation falls in a canary, 0 to 99: it gets the candidate while the stage's share
 * is above that. The same on every node of a cluster (FNV-1a of the rollout and the conversation),
 * so a conversation whose messages run on several nodes gets one version on all of them, and,
 * shares only rising, a conversation on the candidate stays on it through the later stages.
 */
export function canaryBucket(rolloutId: number, conversation: string): number {
  let h = 0x811c9dc5;
  const s = `${rolloutId}:${conversation}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % 100;
}

/** What one version did in a window: executions, failures and their latencies (ms). */
export class VersionWindow implements WindowFigures {
  n = 0;
  errors = 0;
  readonly #latencies: number[] = [];

  add(ok: boolean, ms: number): void {
    this.n++;
    if (!ok) this.errors++;
    // Bounded: the p99 of the last 10,000 is as good as of all of them, and memory stays flat.
    if (this.#latencies.length >= 10_000) this.#latencies.shift();
    this.#latencies.push(ms);
  }

  get errorRate(): number {
    return this.n === 0 ? 0 : this.errors / this.n;
  }

  p99(): number | null {
    if (this.#latencies.length === 0) return null;
    const s = [...this.#latencies].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)]!;
  }

  figures(): { requests: number; errors: number; error_rate: number; p99_ms: number | null } {
    return { requests: this.n, errors: this.errors, error_rate: this.errorRate, p99_ms: this.p99() };
  }
}

export type CanaryVerdict =
  | { action: 'wait'; why: string }
  | { action: 'advance' }
  | { action: 'promote' }
  | { action: 'rollback'; reason: string };

/** Latency differences below this are noise (a 1 ms answer against a 0 ms one is not twice as slow). */
export const LATENCY_NOISE_MS = 25;

const pct = (r: number) => `${Math.round(r * 1000) / 10} %`;

/**
 * The verdict on a stage: `candidate` and `stable` are the windows since it began (for the last
 * stage, `stable` is the previous stage's), `heldMs` how long it has run.
 */
export function judgeStage(
  plan: CanaryPlan,
  stage: number,
  candidate: WindowFigures,
  stable: WindowFigures,
  heldMs: number,
): CanaryVerdict {
  const share = `stage ${stage + 1} of ${plan.stages.length} (${plan.stages[stage]} %)`;
  if (candidate.n < plan.min_requests)
    return { action: 'wait', why: `${candidate.n} of ${plan.min_requests} candidate executions in ${share}` };
  const increase = candidate.errorRate - stable.errorRate;
  if (increase > plan.max_error_rate_increase) {
    return {
      action: 'rollback',
      reason: `canary error rate ${pct(candidate.errorRate)} (${candidate.errors} of ${candidate.n}) against the stable version's ${pct(stable.errorRate)} (${stable.errors} of ${stable.n}) in ${share}: more than the allowed increase of ${pct(plan.max_error_rate_increase)}`,
    };
  }
  const cp = candidate.p99();
  const sp = stable.p99();
  if (
    cp !== null &&
    sp !== null &&
    stable.n >= plan.min_requests &&
    cp > sp * plan.max_latency_ratio &&
    cp - sp > LATENCY_NOISE_MS
  ) {
    return {
      action: 'rollback',
      reason: `canary p99 latency ${Math.round(cp)} ms against the stable version's ${Math.round(sp)} ms in ${share}: more than ${plan.max_latency_ratio} times`,
    };
  }
  if (heldMs < plan.hold_ms)
    return { action: 'wait', why: `${share} holds for ${Math.ceil((plan.hold_ms - heldMs) / 1000)} s more` };
  return stage + 1 >= plan.stages.length ? { action: 'promote' } : { action: 'advance' };
}

/** The answer text a check looks at: at most 64 KiB (the pattern comes from the deployer's file, the answer from a model). */
const CHECK_TEXT_LIMIT = 65_536;

/** Longest a check's pattern may run on an answer: the pattern comes from an agent file deployed over the API. */
const PATTERN_TIMEOUT_MS = 100;
const PATTERN_TEST = new Script('re.test(s)');

/** `re.test(s)`, stopped after PATTERN_TIMEOUT_MS (undefined): a backtracking pattern never holds the event loop. */
function boundedTest(re: RegExp, s: string): boolean | undefined {
  try {
    return PATTERN_TEST.runInNewContext({ re, s }, { timeout: PATTERN_TIMEOUT_MS }) as boolean;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return undefined;
    throw e;
  }
}

/** Whether `actual` holds every field of `expected` (objects: a deep subset; anything else: equal). */
export function holds(actual: unknown, expected: unknown): boolean {
  if (expected === null || typeof expected !== 'object') return Object.is(actual, expected);
  if (Array.isArray(expected))
    return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => holds(actual[i], e));
  if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
  return Object.entries(expected).every(([k, v]) => holds((actual as Record<string, unknown>)[k], v));
}

/** How a check is named in messages: its name, else the start of its request. */
export function checkName(check: { name?: string; request: string }): string {
  return check.name ?? JSON.stringify(check.request.slice(0, 60));
}

/** What is wrong with a check's answer, or undefined when it passes. */
export function checkAnswer(
  check: { name?: string; request: string; expect?: string; expect_json?: Record<string, unknown> },
  answer: string,
): string | undefined {
  const name = checkName(check);
  const text = answer.slice(0, CHECK_TEXT_LIMIT);
  if (check.expect !== undefined) {
    const matched = boundedTest(new RegExp(check.expect, 'i'), text);
    if (matched === undefined)
      return `check ${name}: the pattern /${check.expect}/i took longer than ${PATTERN_TIMEOUT_MS} ms on the answer (a pattern that backtracks): simplify it`;
    if (!matched)
      return `check ${name}: the answer does not match /${check.expect}/i (it begins ${JSON.stringify(text.slice(0, 120))})`;
  }
  if (check.expect_json !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return `check ${name}: the answer is not JSON (it begins ${JSON.stringify(text.slice(0, 120))})`;
    }
    if (!holds(parsed, check.expect_json))
      return `check ${name}: the answer does not hold ${JSON.stringify(check.expect_json)}`;
  }
  return undefined;
}
