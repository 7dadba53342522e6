/**
 * Which node runs a rollout of each API agent (docs/cluster.md "Agent versions"): a rollout runs
 * on the node that started it — its row, canary figures and shadow results are in that node's
 * SQLite (its conversation pins are shared: pg-pins.ts) — and this table is how every other node knows, so that a deploy, update,
 * rollback or removal of that agent through another node is refused (409 `rollout_in_progress`,
 * naming the node) instead of being overwritten by the rollout's promotion later.
 *
 * - One row per agent key, written after the rollout's version commits (`claim`) and deleted when
 *   it ends (`release`); a rollout whose row cannot be written does not run (AgentService closes
 *   it and answers 503). A node that dies in between leaves its row: it claims again, or closes its
 *   rollout, when it starts (AgentService), so the table and the nodes' rollouts agree again.
 * - A node that is down (absent from the membership bucket: no heartbeat within its TTL) does not
 *   hold the agent: a change through another node marks its row `superseded_by` that node and goes
 *   ahead; the node that comes back closes its rollout (rolled back) and deletes the row.
 * - Two nodes starting a rollout of one agent at once: the first claim wins, the other closes its
 *   rollout at once and answers 409.
 * - Every node follows the other nodes' marks (`others`, rollout-sync.ts), so a candidate answers
 *   as NAME@VERSION on every node; `onChanged` tells that sync when this node's mark changed.
 */
import type pg from 'pg';
import {
  agentKey,
  type Rollout,
  type RolloutMark,
  type RolloutMarksPort,
  type RolloutStrategy,
} from '../agents/index.js';
import { guardReads, migrateSchema, quotedSchema, type PgMigration } from '../storage/pg/index.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'cluster-rollout-marks-001',
    sql: (s) => `
      CREATE TABLE ${s}.rollout_marks (
        key               text PRIMARY KEY,
        name              text NOT NULL,
        node              text NOT NULL,
        rollout_id        integer NOT NULL,
        strategy          text NOT NULL,
        candidate_version integer NOT NULL,
        started_at        text NOT NULL,
        superseded_by     text
      );
    `,
  },
  {
    // A canary's share of new conversations, applied by every node (rollout-sync.ts).
    id: 'cluster-rollout-marks-002-share',
    sql: (s) => `ALTER TABLE ${s}.rollout_marks ADD COLUMN share integer;`,
  },
];

export interface PgRolloutMarksOptions {
  pool: pg.Pool;
  /** The cluster's schema (created if missing). */
  schema: string;
  /** This node's name. */
  node: string;
}

interface Row {
  name: string;
  node: string;
  rollout_id: number;
  strategy: string;
  candidate_version: number;
  started_at: string;
  superseded_by: string | null;
  share: number | null;
}

export class PgRolloutMarks implements RolloutMarksPort {
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly #node: string;
  /**
   * The nodes in the cluster now (membership) and the API URL each advertises, set once this node
   * has joined; until then every node counts as up, so nothing is superseded before this node can tell.
   */
  nodesUp: (() => Promise<ReadonlyMap<string, string | null>>) | undefined;
  /** Told after this node's mark of `agent` was written or deleted (RolloutSync tells the other nodes). */
  onChanged: ((agent: string) => void) | undefined;

  private constructor(pool: pg.Pool, s: string, node: string) {
    this.#pool = pool;
    this.#s = s;
    this.#node = node;
  }

  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, MIGRATIONS);
  }

  /** Creates the table if missing; a method that cannot reach PostgreSQL rejects with a 503 `not_ready` naming it. */
  static async open(opts: PgRolloutMarksOptions): Promise<PgRolloutMarks> {
    await PgRolloutMarks.migrate(opts.pool, opts.schema);
    return guardReads(new PgRolloutMarks(opts.pool, quotedSchema(opts.schema), opts.node));
  }

  async claim(r: Rollout, share: number | null = null): Promise<RolloutMark | undefined> {
    const key = agentKey(r.agent);
    const won = await this.#pool.query(
      // This node's own mark (an earlier rollout whose end was not recorded) is replaced; another
      // node's only once superseded (that node was down when the agent changed).
      `INSERT INTO ${this.#s}.rollout_marks AS m (key, name, node, rollout_id, strategy, candidate_version, started_at, share)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (key) DO UPDATE SET name = excluded.name, node = excluded.node, rollout_id = excluded.rollout_id, strategy = excluded.strategy,
         candidate_version = excluded.candidate_version, started_at = excluded.started_at, superseded_by = NULL, share = excluded.share
       WHERE (m.node = excluded.node AND m.superseded_by IS NULL) OR (m.node <> excluded.node AND m.superseded_by IS NOT NULL)`,
      [key, r.agent, this.#node, r.id, r.strategy, r.candidate_version, r.started_at, share],
    );
    if ((won.rowCount ?? 0) > 0) {
      this.onChanged?.(r.agent);
      return undefined;
    }
    return this.#read(key);
  }

  async release(r: Rollout): Promise<void> {
    const gone = await this.#pool.query(
      `DELETE FROM ${this.#s}.rollout_marks WHERE key = $1 AND node = $2 AND rollout_id = $3`,
      [agentKey(r.agent), this.#node, r.id],
    );
    if ((gone.rowCount ?? 0) > 0) this.onChanged?.(r.agent);
  }

  async reshare(r: Rollout, share: number | null): Promise<void> {
    const changed = await this.#pool.query(
      `UPDATE ${this.#s}.rollout_marks SET share = $4 WHERE key = $1 AND node = $2 AND rollout_id = $3 AND share IS DISTINCT FROM $4`,
      [agentKey(r.agent), this.#node, r.id, share],
    );
    if ((changed.rowCount ?? 0) > 0) this.onChanged?.(r.agent);
  }

  /** The rollouts running on the other nodes (superseded ones left out), the membership asked once: what RolloutSync follows. */
  async others(): Promise<RolloutMark[]> {
    const r = await this.#pool.query<Row>(
      `SELECT ${COLUMNS} FROM ${this.#s}.rollout_marks WHERE node <> $1 AND superseded_by IS NULL ORDER BY key`,
      [this.#node],
    );
    const up = r.rows.length > 0 ? await this.nodesUp?.() : undefined;
    return r.rows.map((m) => markOf(m, up));
  }

  async elsewhere(name: string, changing: boolean): Promise<RolloutMark | undefined> {
    const key = agentKey(name);
    const mark = await this.#read(key);
    if (!mark || mark.node === this.#node || mark.superseded_by !== null) return undefined;
    if (!mark.down || !changing) return mark;
    const superseded = await this.#pool.query(
      `UPDATE ${this.#s}.rollout_marks SET superseded_by = $3 WHERE key = $1 AND node = $2 AND superseded_by IS NULL`,
      [key, mark.node, this.#node],
    );
    if ((superseded.rowCount ?? 0) > 0) this.onChanged?.(mark.agent);
    return undefined;
  }

  async #read(key: string): Promise<RolloutMark | undefined> {
    const r = (await this.#pool.query<Row>(`SELECT ${COLUMNS} FROM ${this.#s}.rollout_marks WHERE key = $1`, [key]))
      .rows[0];
    if (!r) return undefined;
    // Membership (a listing of the heartbeat bucket) is asked only about another node's live mark:
    // a deploy of an agent nobody rolls out costs this one read.
    return markOf(r, r.node !== this.#node && r.superseded_by === null ? await this.nodesUp?.() : undefined);
  }
}

const COLUMNS = 'name, node, rollout_id, strategy, candidate_version, started_at, superseded_by, share';

/** A row as the service sees it; `up`: the nodes in the cluster now, when asked (else the node counts as up). */
function markOf(r: Row, up: ReadonlyMap<string, string | null> | undefined): RolloutMark {
  return {
    agent: r.name,
    node: r.node,
    rollout_id: r.rollout_id,
    strategy: r.strategy as RolloutStrategy,
    candidate_version: r.candidate_version,
    started_at: r.started_at,
    down: up !== undefined && !up.has(r.node),
    url: up?.get(r.node) ?? null,
    superseded_by: r.superseded_by,
    share: r.share,
  };
}
