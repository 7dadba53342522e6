import { judgeStage, type CanaryVerdict } from './canary.js';
import type { RolloutStatePort, StageFigures, WindowFigures } from './rollout-state.js';
import type { Rollout } from './rollouts.js';
import { Ticks } from '../../shared/ticks.js';

/** What the runner asks of the rollout controller: the three moves. */
export interface CanaryHost {
  /** Saves the move to `stage`. */
  advance(r: Rollout, stage: number): Promise<unknown>;
  promote(r: Rollout): Promise<unknown>;
  rollback(r: Rollout, reason: string): Promise<unknown>;
  onError(e: unknown, r: Rollout): void;
}

/** A canary's state as `GET .../rollout` and `caxton agent rollout status` show it. */
export interface CanaryStatus {
  stage: number;
  weight: number;
  candidate: ReturnType<WindowFigures['figures']>;
  stable: ReturnType<WindowFigures['figures']>;
  /** What the stage waits for, when it waits. */
  waiting_for: string | null;
  /** When the stage's hold time ends (it also needs min_requests executions of the candidate). */
  hold_ends_at: string;
}

/**
 * Runs the canaries: counts each execution of a rollout's two versions in its current stage (in
 * the rollout state: on a cluster, every node's executions add up in the shared rows), and judges
 * each stage (canary.ts) on a timer, and on a single node also after each execution. On a cluster
 * one node judges at a time (the state's advisory lock): when it stops, another takes over at its
 * next tick.
 */
export class CanaryRunner {
  readonly #host: CanaryHost;
  readonly #state: RolloutStatePort;
  /** The judge's tick; closing waits for a judgement in flight. */
  readonly #ticks = new Ticks();
  /** Rollouts being judged (one judgement of each at a time: a move ends or changes the rollout). */
  readonly #judging = new Set<number>();
  #ticking = false;

  constructor(host: CanaryHost, state: RolloutStatePort, intervalMs = 1000) {
    this.#host = host;
    this.#state = state;
    this.#ticks.every(intervalMs, () => this.tick());
  }

  /** One execution of `version` of the agent under rollout `r`: ok or failed, and how long it took. */
  observe(r: Rollout, version: number, ok: boolean, ms: number): void {
    if (r.strategy !== 'canary' || r.state !== 'running') return;
    if (version !== r.candidate_version && version !== r.stable_version) return;
    this.#state.count(r, version, ok, ms);
    // A single node's figures are complete at once; a cluster's are judged on the judge's tick.
    if (!this.#state.shared) void this.#judge(r);
  }

  /** Judges every running canary, when this node is the judge (the timer calls it). */
  async tick(): Promise<void> {
    if (this.#ticking) return;
    // No canary running (as this node last read the rollouts): no judge is needed, nor its lock.
    if (!this.#state.runningAll().some((r) => r.strategy === 'canary')) return;
    this.#ticking = true;
    try {
      await this.#state.asJudge(async () => {
        for (const r of this.#state.runningAll()) if (r.strategy === 'canary') await this.#judge(r);
      });
    } catch (e) {
      // PostgreSQL away: the next tick tries again.
      const first = this.#state.runningAll()[0];
      if (first) this.#host.onError(e, first);
    } finally {
      this.#ticking = false;
    }
  }

  async status(r: Rollout): Promise<CanaryStatus | undefined> {
    if (r.strategy !== 'canary' || !r.plan) return undefined;
    const f = await this.#state.figures(r);
    const verdict = this.#verdict(r, f);
    return {
      stage: r.stage,
      weight: r.plan.stages[r.stage]!,
      candidate: f.candidate.figures(),
      stable: f.stable.figures(),
      waiting_for: verdict.action === 'wait' ? verdict.why : null,
      hold_ends_at: new Date(Date.parse(r.stage_started_at) + r.plan.hold_ms).toISOString(),
    };
  }

  close(): Promise<void> {
    return this.#ticks.stop();
  }

  #verdict(r: Rollout, f: StageFigures): CanaryVerdict {
    return judgeStage(r.plan!, r.stage, f.candidate, f.stable, Date.now() - Date.parse(r.stage_started_at));
  }

  async #judge(r: Rollout): Promise<void> {
    if (this.#judging.has(r.id) || r.strategy !== 'canary' || !r.plan || r.state !== 'running') return;
    this.#judging.add(r.id);
    try {
      const verdict = this.#verdict(r, await this.#state.figures(r));
      if (verdict.action === 'rollback') await this.#host.rollback(r, verdict.reason);
      else if (verdict.action === 'promote') await this.#host.promote(r);
      else if (verdict.action === 'advance') await this.#host.advance(r, r.stage + 1);
    } catch (e) {
      this.#host.onError(e, r);
    } finally {
      this.#judging.delete(r.id);
    }
  }
}
