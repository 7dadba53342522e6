/**
 * The agents deployed through the API of a cluster, in PostgreSQL (ADR 0045):
 * the store of record of the cluster's directory. One row per agent name (case-insensitive key),
 * holding what the node that made the change parsed and the text it came from; a removal leaves
 * the row as a tombstone (`deleted`), so that a node that was down when it happened removes its
 * copy at start instead of bringing the agent back.
 *
 * - A deploy, update, promotion or rollback writes the row in the transaction that records its
 *   version (versions/pg-versions.ts calls `writeLive`): an agent is live for the cluster exactly when
 *   its version is recorded, and a deploy answered 2xx is in PostgreSQL.
 * - `seq` comes from one sequence: every write takes the next value, so the later commit of two
 *   nodes changing one agent is the row every node ends with.
 * - Every node follows the table (agent-directory-sync.ts): NATS carries only notices.
 *
 * File agents stay per node (each node's agents_dir) and never have a row.
 */
import type pg from 'pg';
import { guardReads, inTransaction, migrateSchema, quotedSchema, type PgMigration } from '../storage/pg/index.js';
import { agentKey, type AgentFormat } from './definition.js';
import { checkStoredDefinition } from './stored-shape.js';
import type { StoredAgent } from './sqlite-agents.js';
import { definitionHash } from './versions/index.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'cluster-agents-001',
    sql: (s) => `
      CREATE SEQUENCE ${s}.agent_changes;
      CREATE TABLE ${s}.agents (
        key         text PRIMARY KEY,
        name        text NOT NULL,
        format      text NOT NULL,
        source      text NOT NULL,
        definition  text NOT NULL,
        hash        text NOT NULL,
        revision    integer NOT NULL,
        deployed_at text NOT NULL,
        updated_at  text NOT NULL,
        deleted     boolean NOT NULL DEFAULT false,
        node        text NOT NULL,
        changed_at  bigint NOT NULL,
        seq         bigint NOT NULL
      );
    `,
  },
];

export interface PgAgentDirectoryOptions {
  pool: pg.Pool;
  /** The cluster's schema (created if missing). */
  schema: string;
  /** This node's name, written with each change it makes. */
  node: string;
}

/** What a node compares with its registry (no definition, no text). */
export interface AgentHead {
  key: string;
  revision: number;
  updated_at: string;
  hash: string;
  deleted: boolean;
  node: string;
  /** The writing node's clock (epoch ms) at the change. */
  changed_at: number;
  seq: number;
}

/** A row as read back: the agent, or why it cannot be used (a damaged or hand-edited row). */
export type AgentRow =
  | (AgentHead & { deleted: true })
  | (AgentHead & { deleted: false; agent: StoredAgent })
  | (AgentHead & { deleted: false; problem: string });

/** A head as PostgreSQL returns it: its bigint columns arrive as strings. */
type HeadRow = Omit<AgentHead, 'changed_at' | 'seq'> & { changed_at: string; seq: string };

interface FullRow extends HeadRow {
  name: string;
  format: string;
  source: string;
  definition: string;
  deployed_at: string;
}

const HEAD_COLUMNS = 'key, revision, updated_at, hash, deleted, node, changed_at, seq';
const FORMATS: readonly string[] = ['toml', 'markdown', 'json'] satisfies readonly AgentFormat[];

const head = (r: HeadRow): AgentHead => ({
  key: r.key,
  revision: r.revision,
  updated_at: r.updated_at,
  hash: r.hash,
  deleted: r.deleted,
  node: r.node,
  changed_at: Number(r.changed_at),
  seq: Number(r.seq),
});

function fromRow(r: FullRow): AgentRow {
  const h = head(r);
  if (h.deleted) return { ...h, deleted: true };
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.definition);
  } catch (e) {
    return {
      ...h,
      deleted: false,
      problem: `its stored definition is not JSON (${e instanceof Error ? e.message : String(e)})`,
    };
  }
  // A row edited by hand, or written by a newer Caxton, is checked as the SQLite store checks its rows.
  const checked = checkStoredDefinition(parsed);
  if (!checked.ok)
    return { ...h, deleted: false, problem: `its stored definition has the wrong shape (${checked.problem})` };
  if (agentKey(checked.definition.name) !== r.key)
    return { ...h, deleted: false, problem: `it holds agent "${checked.definition.name}"` };
  if (!FORMATS.includes(r.format))
    return { ...h, deleted: false, problem: `its format "${r.format}" is not one of ${FORMATS.join(', ')}` };
  return {
    ...h,
    deleted: false,
    agent: {
      definition: checked.definition,
      format: r.format as AgentFormat,
      source: r.source,
      revision: r.revision,
      deployed_at: r.deployed_at,
      updated_at: r.updated_at,
    },
  };
}

export class PgAgentDirectory {
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly node: string;

  private constructor(pool: pg.Pool, s: string, node: string) {
    this.#pool = pool;
    this.#s = s;
    this.node = node;
  }

  /** The table's migrations, applied by `open` (and by the server with the other shared tables). */
  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, MIGRATIONS);
  }

  /** Creates the table if missing. A method that cannot reach PostgreSQL rejects with a 503 `not_ready` naming it. */
  static async open(opts: PgAgentDirectoryOptions): Promise<PgAgentDirectory> {
    await PgAgentDirectory.migrate(opts.pool, opts.schema);
    return guardReads(new PgAgentDirectory(opts.pool, quotedSchema(opts.schema), opts.node));
  }

  /**
   * Makes `a` the agent's live row, on `c` (the caller's transaction: the version that goes with
   * it). Takes the next `seq` once it holds the row (an update draws it in SET, after the row
   * lock, not in VALUES before it): of two writers of one name, the one that commits later has
   * the higher `seq`, which is what the followers order by.
   */
  async writeLive(c: pg.ClientBase, a: StoredAgent): Promise<void> {
    await c.query(
      `INSERT INTO ${this.#s}.agents (key, name, format, source, definition, hash, revision, deployed_at, updated_at, deleted, node, changed_at, seq)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false, $10, $11, nextval('${this.#s}.agent_changes'))
       ON CONFLICT (key) DO UPDATE SET name = excluded.name, format = excluded.format, source = excluded.source, definition = excluded.definition,
         hash = excluded.hash, revision = excluded.revision, deployed_at = excluded.deployed_at, updated_at = excluded.updated_at,
         deleted = false, node = excluded.node, changed_at = excluded.changed_at, seq = nextval('${this.#s}.agent_changes')`,
      [
        agentKey(a.definition.name),
        a.definition.name,
        a.format,
        a.source,
        JSON.stringify(a.definition),
        definitionHash(a.definition),
        a.revision,
        a.deployed_at,
        a.updated_at,
        this.node,
        Date.now(),
      ],
    );
  }

  /** Makes `a` the agent's live row in a transaction of its own (what a change without a version writes). */
  put(a: StoredAgent): Promise<void> {
    return inTransaction(this.#pool, 'BEGIN', (c) => this.writeLive(c, a));
  }

  /**
   * An API agent this node holds that the cluster has never seen (deployed on this node before its
   * agents were shared in PostgreSQL): written only if its name has no row, live or removed.
   * Whether it was written.
   */
  async adopt(a: StoredAgent): Promise<boolean> {
    return inTransaction(this.#pool, 'BEGIN', async (c) => {
      const r = await c.query(`SELECT 1 FROM ${this.#s}.agents WHERE key = $1 FOR UPDATE`, [
        agentKey(a.definition.name),
      ]);
      if (r.rowCount) return false;
      await this.writeLive(c, a);
      return true;
    });
  }

  /**
   * Removes an agent for the cluster: its row becomes a tombstone (kept, so that a node that was
   * down removes its copy too). `a` is this node's copy, written as the tombstone's content if the
   * name had no row. Whether a live row was removed.
   */
  async remove(a: StoredAgent): Promise<boolean> {
    return inTransaction(this.#pool, 'BEGIN', async (c) => {
      const r = await c.query<{ deleted: boolean }>(`SELECT deleted FROM ${this.#s}.agents WHERE key = $1 FOR UPDATE`, [
        agentKey(a.definition.name),
      ]);
      if (!r.rows[0]) await this.writeLive(c, a);
      else if (r.rows[0].deleted) return false;
      await c.query(
        `UPDATE ${this.#s}.agents SET deleted = true, node = $2, changed_at = $3, seq = nextval('${this.#s}.agent_changes') WHERE key = $1`,
        [agentKey(a.definition.name), this.node, Date.now()],
      );
      return true;
    });
  }

  /** Every row's head, removed ones included (what a reconciliation compares). */
  async heads(): Promise<AgentHead[]> {
    const r = await this.#pool.query<HeadRow>(`SELECT ${HEAD_COLUMNS} FROM ${this.#s}.agents ORDER BY key`);
    return r.rows.map(head);
  }

  /** One row's head (undefined: the name never had a row). */
  async head(key: string): Promise<AgentHead | undefined> {
    const r = await this.#pool.query<HeadRow>(`SELECT ${HEAD_COLUMNS} FROM ${this.#s}.agents WHERE key = $1`, [key]);
    return r.rows[0] && head(r.rows[0]);
  }

  /** The rows of `keys` (lower-cased names) that exist. */
  async rows(keys: readonly string[]): Promise<AgentRow[]> {
    if (keys.length === 0) return [];
    const r = await this.#pool.query<FullRow>(
      `SELECT ${HEAD_COLUMNS}, name, format, source, definition, deployed_at FROM ${this.#s}.agents WHERE key = ANY($1::text[]) ORDER BY key`,
      [keys],
    );
    return r.rows.map(fromRow);
  }

  /** The text a live agent was deployed from. */
  async source(name: string): Promise<string | undefined> {
    const r = await this.#pool.query<{ source: string }>(
      `SELECT source FROM ${this.#s}.agents WHERE key = $1 AND NOT deleted`,
      [agentKey(name)],
    );
    return r.rows[0]?.source;
  }
}
