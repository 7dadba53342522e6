import type { Db, Migration } from '../storage/index.js';
import { agentKey, type AgentDefinition, type AgentFormat } from './definition.js';
import { checkStoredDefinition } from './stored-shape.js';
import { AGENT_CANARY_MIGRATION, AGENT_ROLLOUT_MIGRATION, AGENT_SHADOW_MIGRATION } from './rollouts/index.js';
import { AGENT_VERSION_MIGRATION, AGENT_VERSION_REMOVALS_MIGRATION } from './versions/index.js';

export const AGENT_MIGRATIONS: readonly Migration[] = [
  {
    id: 'agents-001-create',
    sql: `CREATE TABLE agents (
      key         TEXT PRIMARY KEY,
      name        TEXT NOT NULL,
      format      TEXT NOT NULL,
      source      TEXT NOT NULL,
      definition  TEXT NOT NULL,
      revision    INTEGER NOT NULL,
      deployed_at TEXT NOT NULL,
      updated_at  TEXT NOT NULL
    )`,
  },
  AGENT_VERSION_MIGRATION,
  AGENT_ROLLOUT_MIGRATION,
  AGENT_CANARY_MIGRATION,
  AGENT_SHADOW_MIGRATION,
  AGENT_VERSION_REMOVALS_MIGRATION,
];

export interface StoredAgent {
  definition: AgentDefinition;
  format: AgentFormat;
  source: string;
  revision: number;
  deployed_at: string;
  updated_at: string;
}

interface Row {
  format: string;
  source: string;
  definition: string;
  revision: number;
  deployed_at: string;
  updated_at: string;
}

const AGENT_FORMATS: readonly AgentFormat[] = ['toml', 'markdown', 'json'];

/** Persists API-deployed agents (file agents live in agents_dir) so they survive restarts. */
export class AgentStore {
  readonly #upsert;
  readonly #delete;
  readonly #all;
  readonly #source;

  readonly #onSkipped: (row: string, reason: string) => void;

  /** `onSkipped`: a stored row that cannot be read (damaged JSON, the wrong shape) is skipped, not fatal; told here. */
  constructor(db: Db, opts: { onSkipped?: (row: string, reason: string) => void } = {}) {
    this.#onSkipped = opts.onSkipped ?? (() => {});
    this.#upsert = db.prepare(
      `INSERT INTO agents (key, name, format, source, definition, revision, deployed_at, updated_at)
       VALUES (@key, @name, @format, @source, @definition, @revision, @deployed_at, @updated_at)
       ON CONFLICT(key) DO UPDATE SET name = excluded.name, format = excluded.format, source = excluded.source,
         definition = excluded.definition, revision = excluded.revision, updated_at = excluded.updated_at`,
    );
    this.#delete = db.prepare('DELETE FROM agents WHERE key = ?');
    this.#all = db.prepare(
      'SELECT key, format, source, definition, revision, deployed_at, updated_at FROM agents ORDER BY key',
    );
    this.#source = db.prepare('SELECT source FROM agents WHERE key = ?').pluck();
  }

  save(a: StoredAgent): void {
    this.#upsert.run({
      key: agentKey(a.definition.name),
      name: a.definition.name,
      format: a.format,
      source: a.source,
      definition: JSON.stringify(a.definition),
      revision: a.revision,
      deployed_at: a.deployed_at,
      updated_at: a.updated_at,
    });
  }

  delete(name: string): void {
    this.#delete.run(agentKey(name));
  }

  source(name: string): string | undefined {
    return this.#source.get(agentKey(name)) as string | undefined;
  }

  *loadAll(): Generator<Omit<StoredAgent, 'source'>> {
    for (const r of this.#all.iterate() as Iterable<Row & { key: string }>) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(r.definition);
      } catch (e) {
        this.#onSkipped(r.key, `its stored definition is damaged (${e instanceof Error ? e.message : String(e)})`);
        continue;
      }
      // Valid JSON of the wrong shape would load and then fail every listing that touches it.
      const checked = checkStoredDefinition(parsed);
      if (!checked.ok) {
        this.#onSkipped(r.key, `its stored definition has the wrong shape (${checked.problem})`);
        continue;
      }
      if (!(AGENT_FORMATS as readonly string[]).includes(r.format)) {
        this.#onSkipped(r.key, `its stored format "${r.format}" is not one of ${AGENT_FORMATS.join(', ')}`);
        continue;
      }
      const definition: AgentDefinition = checked.definition;
      yield {
        definition,
        format: r.format as AgentFormat,
        revision: r.revision,
        deployed_at: r.deployed_at,
        updated_at: r.updated_at,
      };
    }
  }
}
