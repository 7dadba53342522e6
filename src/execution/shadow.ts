/**
 * Shadow rollouts (issue 18, item 2; ADR 0041): each live execution of a shadow rollout's stable
 * version is copied to the candidate in the background, as a shadow run (the executor's
 * `shadow` option: tool calls refused, nothing remembered, its messages never sent since sending
 * is a tool); both answers are compared and recorded, the candidate's is never returned.
 *
 * Copies never slow the live path: they start after the live answer is out, at most
 * `maxInFlight` at a time; a copy that finds them all busy is counted as skipped.
 */
import { answersAgree, type AgentService, type ShadowResultStore } from '../agents/index.js';
import { describeError } from '../shared/errors.js';
import type { ExecutionRecord, Executor } from './executor.js';

export interface ShadowRunnerOptions {
  executor: Executor;
  service: AgentService;
  results: ShadowResultStore;
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
  #inFlight = 0;
  readonly #running = new Set<Promise<void>>();
  #closed = false;

  constructor(opts: ShadowRunnerOptions) {
    this.#o = opts;
    opts.results.comparison = this.comparison;
  }

  /** The executor's record of a finished execution: copied when it is a shadow rollout's live one. */
  onExecuted(e: ExecutionRecord): void {
    if (e.shadow || this.#closed || !e.response) return;
    const rollout = this.#o.service.shadowOf(e.definition);
    if (!rollout) return;
    if (this.#inFlight >= (this.#o.maxInFlight ?? 4)) {
      this.#o.results.skipped(rollout.id);
      return;
    }
    this.#inFlight++;
    const stable = e.response;
    const request = e.request;
    const started = performance.now();
    const run = this.#o.executor
      .invoke(`${rollout.agent}@${rollout.candidate_version}`, { request: request.request, ...(request.context !== undefined && { context: request.context }) }, { shadow: true })
      .then(
        (res) => ({ answer: res.content, tokens: res.usage.input_tokens + res.usage.output_tokens, error: undefined }),
        (err: unknown) => ({ answer: undefined, tokens: 0, error: describeError(err) }),
      )
      .then(async (c) => {
        const same = c.answer !== undefined && answersAgree(stable.content, c.answer);
        const similarity = c.answer !== undefined && !same && this.#o.similarity ? await this.#o.similarity(stable.content, c.answer).catch(() => undefined) : undefined;
        this.#o.results.record({
          rollout_id: rollout.id,
          request: request.request,
          stable_answer: stable.content,
          candidate_answer: c.answer,
          candidate_error: c.error,
          agree: same || (similarity !== undefined && similarity >= (this.#o.similarityThreshold ?? 0.9)),
          similarity,
          stable_ms: e.duration_ms,
          candidate_ms: performance.now() - started,
          stable_tokens: stable.usage.input_tokens + stable.usage.output_tokens,
          candidate_tokens: c.tokens,
        });
      })
      .catch((err: unknown) => this.#o.onError?.(err))
      .finally(() => {
        this.#inFlight--;
        this.#running.delete(run);
      });
    this.#running.add(run);
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
