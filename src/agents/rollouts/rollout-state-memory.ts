import { VersionWindow } from './canary.js';
import { stageFigures, type StageFigures } from './rollout-state.js';
import type { Rollout } from './rollouts.js';

/** A single node's canary figures: per rollout, stage and version, in memory. */
export class MemoryFigures {
  /** `rollout id` → `stage:version` → window. */
  readonly #windows = new Map<number, Map<string, VersionWindow>>();

  count(r: Rollout, version: number, ok: boolean, ms: number): void {
    let byStage = this.#windows.get(r.id);
    if (!byStage) this.#windows.set(r.id, (byStage = new Map()));
    const k = `${r.stage}:${version}`;
    let w = byStage.get(k);
    if (!w) byStage.set(k, (w = new VersionWindow()));
    w.add(ok, ms);
  }

  of(r: Rollout): StageFigures {
    const byStage = this.#windows.get(r.id);
    return stageFigures(
      r,
      (stage, version) => byStage?.get(`${stage}:${version}`),
      () => new VersionWindow(),
    );
  }

  drop(id: number): void {
    this.#windows.delete(id);
  }
}
