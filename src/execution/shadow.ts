/**
 * Shadow rollouts (ADR 0041): each live execution of a shadow rollout's stable
 * version is copied to the candidate in the background, as a shadow run (the executor's
 * `shadow` option: tool calls refused, nothing remembered, its messages never sent since sending
 * is a tool); both answers are compared and recorded, the candidate's is never returned.
 *
 * Copies never slow the live path: they start after the live answer is out, at most
 * `maxInFlight` at a time; a copy that finds them all busy is counted as skipped.
 *
 * On a cluster, every node copies its live requests of a shadow rollout (whichever node started
 * it) and adds its comparisons to the one report in the cluster's PostgreSQL.
 */
import { answersAgree, type AgentService, type ShadowComparison, type ShadowResultsPort } from '../agents/index.js';
import { describeError } from '../shared/errors.js';
import type { ExecutionRecord, Executor } from './executor.js';

export interface ShadowRunnerOptions {
  executor: Executor;
  service: AgentService;
  results: ShadowResultsPort;
  maxInFlight?: number;
  onError?: (e: unknown) => void;
  /**
   * Cosine similarity of two texts by the embedding model (memory's, when memory is on): answers
   * that differ in text agree when it reaches `similarityThreshold` (default 0.9).
   */
  similarity?: ((a: string, b: string) => Promise<number>) | undefined;
  similarityThreshold?: number;
}

export class ShadowRunner {
  readonly #o: ShadowRunnerOptions;
  readonly #running = new Set<Promise<void>>();
  #closed = false;

  constructor(opts: ShadowRunnerOptions) {
    this.#o = opts;
    opts.results.comparison = this.comparison;
  }

  /** The executor's record of a finished execution: copied when it is a shadow rollout's live one. */
  onExecuted(e: ExecutionRecord): void {
    if (e.shadow || this.#closed || !e.response) return;
    const rollout = this.#o.service.rollout.shadowOf(e.definition);
    if (!rollout) return;
    if (this.#running.size >= (this.#o.maxInFlight ?? 4)) {
      this.#o.service.rollout.recordShadow(rollout);
      return;
    }
    const stable = e.response;
    const request = e.request;
    const started = performance.now();
    const run = this.#o.executor
      .invoke(
        `${rollout.agent}@${rollout.candidate_version}`,
        { request: request.request, ...(request.context !== undefined && { context: request.context }) },
        { shadow: true },
      )
      .then(
        (res) => ({ answer: res.content, tokens: res.usage.input_tokens + res.usage.output_tokens, error: undefined }),
        (err: unknown) => ({ answer: undefined, tokens: 0, error: describeError(err) }),
      )
      .then(async (c) => {
        const verdict =
          c.answer === undefined
            ? { agree: false, method: 'exact' as const }
            : await this.#compare(rollout.agent, rollout.candidate_version, request.request, stable.content, c.answer);
        this.#o.service.rollout.recordShadow(rollout, {
          rollout_id: rollout.id,
          request: request.request,
          stable_answer: stable.content,
          candidate_answer: c.answer,
          candidate_error: c.error,
          ...verdict,
          stable_ms: e.duration_ms,
          candidate_ms: performance.now() - started,
          stable_tokens: stable.usage.input_tokens + stable.usage.output_tokens,
          candidate_tokens: c.tokens,
        });
      })
      .catch((err: unknown) => this.#o.onError?.(err))
      .finally(() => {
        this.#running.delete(run);
      });
    this.#running.add(run);
  }

  /**
   * Whether two answers agree: the same text; else, when the candidate's [rollout] names a judge
   * agent, its yes or no; else, with an embedding model, a similarity of at least the threshold
   * ([rollout] similarity, default 0.9).
   */
  async #compare(
    agent: string,
    candidate: number,
    request: string,
    a: string,
    b: string,
  ): Promise<{ agree: boolean; method: ShadowComparison; similarity?: number }> {
    if (answersAgree(a, b)) return { agree: true, method: 'exact' };
    const settings = this.#o.service.registry.find(`${agent}@${candidate}`)?.definition.rollout;
    if (settings?.judge !== undefined) {
      const prompt = `Two assistants answered the same request. Do their answers agree in substance (the same facts, decisions and outcome, whatever the wording)? Reply with exactly "yes" or "no".\n\nRequest:\n${request.slice(0, 8000)}\n\nAnswer A:\n${a.slice(0, 8000)}\n\nAnswer B:\n${b.slice(0, 8000)}`;
      // A judge that fails (not deployed, its model down) counts as a disagreement; the report shows it.
      const said = await this.#o.executor.invoke(settings.judge, { request: prompt }).then(
        (r) => r.content,
        (e: unknown) => `(the judge failed: ${describeError(e)})`,
      );
      return { agree: /^\W*yes\b/i.test(said), method: 'judge' };
    }
    if (!this.#o.similarity) return { agree: false, method: 'exact' };
    const similarity = await this.#o.similarity(a, b);
    return {
      agree: similarity >= (settings?.similarity ?? this.#o.similarityThreshold ?? 0.9),
      method: 'similarity',
      similarity,
    };
  }

  /** How this runner compares answers (for the report). */
  get comparison(): 'exact' | 'similarity' {
    return this.#o.similarity ? 'similarity' : 'exact';
  }

  /** Copies still running (tests, shutdown). */
  settled(): Promise<void> {
    return Promise.all(this.#running).then(() => undefined);
  }

  /** Stops copying; waits for the copies running. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.settled();
  }
}
