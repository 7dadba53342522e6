import type { AgentDefinition } from '../definition.js';

/**
 * Which version of its agent's history each definition handed to the executor is, kept by the
 * definition object (the registry's, or one a version was rebuilt into): what it was placed on by
 * a rollout, for the canary's figures and the rollout metrics, and what number it was addressed as
 * (NAME@VERSION) or found to be, for the execution records. Weakly held: a definition no longer
 * served takes its labels with it.
 */
export class VersionLabels {
  readonly #placed = new WeakMap<AgentDefinition, number>();
  readonly #numbered = new WeakMap<AgentDefinition, number>();

  /** `definition` is version `version` of a running canary or shadow rollout's agent. */
  place(definition: AgentDefinition, version: number): void {
    this.#placed.set(definition, version);
  }

  /** `definition` is version `version` of its agent's history. */
  number(definition: AgentDefinition, version: number): void {
    this.#numbered.set(definition, version);
  }

  /** The rollout version `definition` was placed on, if any. */
  placedOn(definition: AgentDefinition): number | undefined {
    return this.#placed.get(definition);
  }

  /** The history number `definition` is known by (addressed, found, or placed), if any. */
  numbered(definition: AgentDefinition): number | undefined {
    return this.#numbered.get(definition) ?? this.#placed.get(definition);
  }
}
