import { judgeStage, VersionWindow, type CanaryVerdict } from './canary.js';
import type { Rollout } from './rollouts.js';

/** What the runner asks of the agent service: the running canaries, and the three moves. */
export interface CanaryHost {
  /** Running canary rollouts. */
  running(): Rollout[];
  /** Saves the move to `stage`; returns the rollout as it now is. */
  advance(r: Rollout, stage: number): Rollout;
  promote(r: Rollout): void;
  rollback(r: Rollout, reason: string): void;
  onError(e: unknown, r: Rollout): void;
}

interface Windows {
  stage: number;
  candidate: VersionWindow;
  stable: VersionWindow;
  /** The stable version's window of the stage before (the last stage, at 100 %, gives it no new conversation). */
  previousStable: VersionWindow | undefined;
}

/** A canary's state as `GET .../rollout` and `caxton agent rollout status` show it. */
export interface CanaryStatus {
  stage: number;
  weight: number;
  candidate: ReturnType<VersionWindow['figures']>;
  stable: ReturnType<VersionWindow['figures']>;
  /** What the stage waits for, when it waits. */
  waiting_for: string | null;
  /** When the stage's hold time ends (it also needs min_requests executions of the candidate). */
  hold_ends_at: string;
}

/**
 * Runs the canaries: counts each execution of a rollout's two versions in the window of its
 * current stage, and judges the stage (canary.ts) after each execution and on a timer (a stage
 * whose hold time ends while no request comes still advances). The windows live in memory: after
 * a restart a canary resumes at its saved stage with fresh windows (its hold time counts from the
 * stage's saved start).
 */
export class CanaryRunner {
  readonly #host: CanaryHost;
  readonly #windows = new Map<number, Windows>();
  readonly #timer: NodeJS.Timeout;
  #judging = false;

  constructor(host: CanaryHost, intervalMs = 1000) {
    this.#host = host;
    this.#timer = setInterval(() => this.tick(), intervalMs);
    this.#timer.unref();
  }

  /** One execution of `version` of the agent under rollout `r`: ok or failed, and how long it took. */
  observe(r: Rollout, version: number, ok: boolean, ms: number): void {
    if (r.strategy !== 'canary' || r.state !== 'running') return;
    const w = this.#windowsOf(r);
    if (version === r.candidate_version) w.candidate.add(ok, ms);
    else if (version === r.stable_version) w.stable.add(ok, ms);
    else return;
    this.#judge(r);
  }

  /** Judges every running canary (the timer calls it). */
  tick(): void {
    const running = this.#host.running();
    for (const r of running) this.#judge(r);
    // Windows of rollouts that ended are dropped (a judgement above may have ended one: it goes next tick).
    const live = new Set(running.map((r) => r.id));
    for (const id of this.#windows.keys()) if (!live.has(id)) this.#windows.delete(id);
  }

  status(r: Rollout): CanaryStatus | undefined {
    if (r.strategy !== 'canary' || !r.plan) return undefined;
    const w = this.#windowsOf(r);
    const verdict = this.#verdict(r, w);
    return {
      stage: r.stage,
      weight: r.plan.stages[r.stage]!,
      candidate: w.candidate.figures(),
      stable: this.#stableFor(r, w).figures(),
      waiting_for: verdict.action === 'wait' ? verdict.why : null,
      hold_ends_at: new Date(Date.parse(r.stage_started_at) + r.plan.hold_ms).toISOString(),
    };
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #windowsOf(r: Rollout): Windows {
    let w = this.#windows.get(r.id);
    if (!w || w.stage !== r.stage) {
      w = {
        stage: r.stage,
        candidate: new VersionWindow(),
        stable: new VersionWindow(),
        previousStable: w && w.stable.n > 0 ? w.stable : w?.previousStable,
      };
      this.#windows.set(r.id, w);
    }
    return w;
  }

  #stableFor(r: Rollout, w: Windows): VersionWindow {
    return r.plan!.stages[r.stage] === 100 && w.previousStable ? w.previousStable : w.stable;
  }

  #verdict(r: Rollout, w: Windows): CanaryVerdict {
    return judgeStage(
      r.plan!,
      r.stage,
      w.candidate,
      this.#stableFor(r, w),
      Date.now() - Date.parse(r.stage_started_at),
    );
  }

  #judge(r: Rollout): void {
    if (this.#judging || r.strategy !== 'canary' || !r.plan || r.state !== 'running') return;
    // One judgement at a time: a promotion or rollback ends the rollout, and the executions it
    // causes to be counted (none, but a host may) must not judge it again part-way.
    this.#judging = true;
    try {
      const verdict = this.#verdict(r, this.#windowsOf(r));
      if (verdict.action === 'rollback') this.#host.rollback(r, verdict.reason);
      else if (verdict.action === 'promote') this.#host.promote(r);
      else if (verdict.action === 'advance') this.#host.advance(r, r.stage + 1);
    } catch (e) {
      this.#host.onError(e, r);
    } finally {
      this.#judging = false;
    }
  }
}
