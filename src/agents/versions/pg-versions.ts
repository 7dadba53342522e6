/**
 * The version history of API agents on a cluster (ADR 0043): the table the
 * single node keeps in SQLite (src/agents/versions/sqlite-versions.ts), in the cluster's schema, behind the same
 * port (`AgentVersionsPort`) and shared test suite. Versions are numbered 1, 2, 3... per agent
 * across the cluster: the deploy, update, rollback or promotion on whichever node takes the next
 * number, under a transaction-scoped advisory lock on the agent's key (two nodes writing the same
 * agent at once take turns; the primary key is the backstop). Only the node where the change was
 * made records it: a change another node applies from the directory (directory-sync.ts) goes to
 * its registry, never through the service that records versions.
 *
 * File agents stay per node (each node's agents_dir): their versions stay in the node's SQLite.
 */
import type pg from 'pg';
import { agentKey } from '../definition.js';
import {
  versionDetail,
  versionSummary,
  versionValues,
  VERSION_SUMMARY_COLUMNS,
  type AgentVersion,
  type AgentVersionDetail,
  type AgentVersionsPort,
  type NewVersion,
  type StoredVersionRow,
  type VersionRow,
} from './versions.js';
import type { StoredAgent } from '../sqlite-agents.js';
import type { PgAgentDirectory } from '../pg-agents.js';
import { guardReads, inTransaction, migrateSchema, quotedSchema, type PgMigration } from '../../storage/pg/index.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'cluster-agent-versions-001',
    sql: (s) => `
      CREATE TABLE ${s}.agent_versions (
        key           text NOT NULL,
        version       integer NOT NULL,
        name          text NOT NULL,
        semver        text,
        hash          text NOT NULL,
        format        text NOT NULL,
        source        text NOT NULL,
        definition    text NOT NULL,
        how           text NOT NULL,
        origin        text NOT NULL,
        path          text,
        deployed_by   text,
        deployed_at   text NOT NULL,
        restored_from integer,
        PRIMARY KEY (key, version)
      );
    `,
  },
  {
    id: 'cluster-agent-versions-002-removals',
    sql: (s) => `CREATE TABLE ${s}.agent_version_removals (key text PRIMARY KEY, seq bigint NOT NULL)`,
  },
];

export interface PgAgentVersionStoreOptions {
  pool: pg.Pool;
  /** The cluster's schema (created if missing). */
  schema: string;
  /** Versions kept per agent (`[agents] keep_versions`; default 100). */
  keep?: number;
  /** Removed agents whose history is kept, the most recently removed (`[agents] keep_removed_agents`; default 20). */
  keepRemoved?: number;
  /** The cluster's agents: a version that puts an agent live writes its row there, in the same transaction. */
  directory?: PgAgentDirectory;
}

/** Versions parsed and kept in memory: a version never changes once written. */
const CACHE_SIZE = 64;

export class PgAgentVersionStore implements AgentVersionsPort {
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly keep: number;
  readonly keepRemoved: number;
  readonly #cache = new Map<string, AgentVersionDetail>();
  readonly #directory: PgAgentDirectory | undefined;

  private constructor(
    pool: pg.Pool,
    s: string,
    keep: number,
    keepRemoved: number,
    directory: PgAgentDirectory | undefined,
  ) {
    this.#pool = pool;
    this.#s = s;
    this.keep = keep;
    this.keepRemoved = keepRemoved;
    this.#directory = directory;
  }

  /** The table's migrations, applied by `open` (and by the server with the other shared tables). */
  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, MIGRATIONS);
  }

  /**
   * Creates the table if missing (under the schema's migration lock). A method that cannot reach
   * PostgreSQL rejects with a 503 `not_ready` naming it (a deploy or a rollback answers 503, not 500).
   */
  static async open(opts: PgAgentVersionStoreOptions): Promise<PgAgentVersionStore> {
    const s = quotedSchema(opts.schema);
    await PgAgentVersionStore.migrate(opts.pool, opts.schema);
    return guardReads(new PgAgentVersionStore(opts.pool, s, opts.keep ?? 100, opts.keepRemoved ?? 20, opts.directory));
  }

  async append(
    v: NewVersion,
    alongside?: (written: AgentVersion, tx?: unknown) => void | Promise<void>,
    live?: StoredAgent,
  ): Promise<AgentVersion> {
    if (live && !this.#directory)
      throw new Error("this version store was opened without the cluster's agents: it cannot put an agent live");
    const r = versionValues(v);
    const row = await inTransaction(this.#pool, 'BEGIN', async (c) => {
      await this.#lock(c, r.key);
      const inserted = await c.query<VersionRow>(
        `INSERT INTO ${this.#s}.agent_versions (key, version, name, semver, hash, format, source, definition, how, origin, path, deployed_by, deployed_at, restored_from)
         VALUES ($1, (SELECT COALESCE(MAX(version), 0) + 1 FROM ${this.#s}.agent_versions WHERE key = $1), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         RETURNING ${VERSION_SUMMARY_COLUMNS}`,
        [
          r.key,
          r.name,
          r.semver,
          r.hash,
          r.format,
          r.source,
          r.definition,
          r.how,
          r.origin,
          r.path,
          r.deployed_by,
          r.deployed_at,
          r.restored_from,
        ],
      );
      const written = inserted.rows[0]!;
      await c.query(`DELETE FROM ${this.#s}.agent_versions WHERE key = $1 AND version <= $2`, [
        r.key,
        written.version - this.keep,
      ]);
      await c.query(`DELETE FROM ${this.#s}.agent_version_removals WHERE key = $1`, [r.key]);
      // The agent is live for the cluster exactly when its version is recorded.
      if (live) await this.#directory!.writeLive(c, live);
      // This node's own writes (SQLite) and the shared ones that go with the version (a rollout's
      // row, on this transaction) before the COMMIT: when they throw, the version is not recorded.
      await alongside?.(versionSummary(written), c);
      return written;
    });
    this.#forget(r.key);
    return versionSummary(row);
  }

  async seed(name: string, rows: readonly StoredVersionRow[]): Promise<boolean> {
    const key = agentKey(name);
    const kept = rows.slice(-this.keep);
    if (kept.length === 0) return false;
    const col = <K extends keyof StoredVersionRow>(k: K) => kept.map((r) => r[k]);
    const seeded = await inTransaction(this.#pool, 'BEGIN', async (c) => {
      // The lock a new version takes: a node seeding and another appending the same agent take turns.
      await this.#lock(c, key);
      if ((await c.query(`SELECT 1 FROM ${this.#s}.agent_versions WHERE key = $1 LIMIT 1`, [key])).rowCount)
        return false;
      await c.query(
        `INSERT INTO ${this.#s}.agent_versions (key, version, name, semver, hash, format, source, definition, how, origin, path, deployed_by, deployed_at, restored_from)
         SELECT $1, * FROM unnest($2::integer[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::integer[])`,
        [
          key,
          col('version'),
          col('name'),
          col('semver'),
          col('hash'),
          col('format'),
          col('source'),
          col('definition'),
          col('how'),
          col('origin'),
          col('path'),
          col('deployed_by'),
          col('deployed_at'),
          col('restored_from'),
        ],
      );
      return true;
    });
    this.#forget(key);
    return seeded;
  }

  async removed(name: string): Promise<void> {
    const key = agentKey(name);
    await inTransaction(this.#pool, 'BEGIN', async (c) => {
      // Removals are numbered one at a time across the nodes, like an agent's versions.
      await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
        `caxton-agent-version-removals:${this.#s}`,
      ]);
      await c.query(
        `INSERT INTO ${this.#s}.agent_version_removals (key, seq) VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM ${this.#s}.agent_version_removals))
         ON CONFLICT (key) DO UPDATE SET seq = EXCLUDED.seq`,
        [key],
      );
      // Only the rows this statement took out: a name redeployed meanwhile is no longer among them.
      const gone = await c.query<{ key: string }>(
        `DELETE FROM ${this.#s}.agent_version_removals WHERE key IN (SELECT key FROM ${this.#s}.agent_version_removals ORDER BY seq DESC OFFSET $1) RETURNING key`,
        [this.keepRemoved],
      );
      if (gone.rows.length > 0)
        await c.query(`DELETE FROM ${this.#s}.agent_versions WHERE key = ANY($1::text[])`, [
          gone.rows.map((r) => r.key),
        ]);
    });
    this.#cache.clear();
  }

  /** The agent's lock for the rest of the transaction: its writers number its versions one at a time. */
  async #lock(c: pg.PoolClient, key: string): Promise<void> {
    await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`caxton-agent-versions:${this.#s}:${key}`]);
  }

  /** The agent's cached versions go once it has new ones (a version written may have pruned others). */
  #forget(key: string): void {
    for (const k of this.#cache.keys()) if (k.startsWith(`${key}\0`)) this.#cache.delete(k);
  }

  async latest(name: string): Promise<AgentVersion | undefined> {
    const r = await this.#pool.query<VersionRow>(
      `SELECT ${VERSION_SUMMARY_COLUMNS} FROM ${this.#s}.agent_versions WHERE key = $1 ORDER BY version DESC LIMIT 1`,
      [agentKey(name)],
    );
    const row = r.rows[0];
    return row && versionSummary(row);
  }

  async get(name: string, version: number): Promise<AgentVersionDetail | undefined> {
    const key = agentKey(name);
    const at = `${key}\0${version}`;
    const cached = this.#cache.get(at);
    if (cached) return cached;
    const r = await this.#pool.query<VersionRow & { definition: string; source: string }>(
      `SELECT ${VERSION_SUMMARY_COLUMNS}, definition, source FROM ${this.#s}.agent_versions WHERE key = $1 AND version = $2`,
      [key, version],
    );
    const found = versionDetail(r.rows[0]);
    if (found) {
      if (this.#cache.size >= CACHE_SIZE) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(at, found);
    }
    return found;
  }

  async list(
    name: string,
    opts: { limit?: number; offset?: number } = {},
  ): Promise<{ items: AgentVersion[]; total: number }> {
    const key = agentKey(name);
    const [rows, count] = await Promise.all([
      this.#pool.query<VersionRow>(
        `SELECT ${VERSION_SUMMARY_COLUMNS} FROM ${this.#s}.agent_versions WHERE key = $1 ORDER BY version DESC LIMIT $2 OFFSET $3`,
        [key, opts.limit ?? 50, opts.offset ?? 0],
      ),
      this.#pool.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${this.#s}.agent_versions WHERE key = $1`, [key]),
    ]);
    return { items: rows.rows.map(versionSummary), total: Number(count.rows[0]!.n) };
  }
}
