/**
 * The memory component as the server wires it: `[memory]` read, the backend it names (SQLite in
 * the data dir's database, tables migrated now; or PostgreSQL + pgvector, prepared at first use),
 * its embedder created on first use (servers that never touch memory never load the model), the
 * nine tools and the executor hooks.
 */
import { join } from 'node:path';
import type pg from 'pg';
import type { AgentRegistry } from '../agents/agent-registry.js';
import type { ExecutionMemory } from '../execution/types.js';
import { migrate, type Db } from '../storage/index.js';
import type { Tool } from '../tools/types.js';
import { executionMemory } from './agent.js';
import { ANN_FILE_NAME } from './ann-file.js';
import { embedderConfig, parseMemoryConfig, postgresConfig, type MemoryConfig } from './memory-config.js';
import { createEmbedder, type Embedder } from './embedding/index.js';
import { MEMORY_MIGRATIONS } from './migrations.js';
import type { MemoryBackend } from './backend.js';
import { MemoryStore } from './sqlite-store.js';
import { memoryTools } from './tools.js';

export interface MemoryComponent {
  readonly config: MemoryConfig;
  readonly store: MemoryBackend;
  readonly tools: Tool[];
  readonly execution: ExecutionMemory;
  /** PostgreSQL only: resolves when the database answers a query (for GET /ready). */
  readonly ping?: (signal: AbortSignal) => Promise<void>;
  close(): Promise<void>;
}

export interface CreateMemoryOptions {
  /** `[memory]` of the server configuration. */
  config: unknown;
  dataDir: string;
  db: Db;
  /** For each calling agent's `[memory]` settings (scope, search_limit, min_similarity). */
  registry?: Pick<AgentRegistry, 'get'>;
  /** Replaces the configured embedder (tests). */
  embedder?: Embedder;
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/** Undefined when `[memory] enabled = false`. Throws 'invalid_config' on a bad `[memory]`. */
export async function createMemory(opts: CreateMemoryOptions): Promise<MemoryComponent | undefined> {
  const config = parseMemoryConfig(opts.config);
  if (!config.enabled) return undefined;
  const log = opts.log;
  const common = {
    embedder: opts.embedder ?? (() => createEmbedder(embedderConfig(config, opts.dataDir))),
    limits: { max_observation_chars: config.max_observation_chars },
    keyword_weight: config.keyword_weight,
    onReindex: (done: number, total: number) =>
      log?.info({ done, total }, 'memory: re-embedding entities stored with another embedding model'),
    ...(log && { log }),
  };
  let store: MemoryBackend;
  let release = async (): Promise<void> => {};
  let ping: MemoryComponent['ping'];
  switch (config.backend) {
    case 'sqlite': {
      migrate(opts.db, MEMORY_MIGRATIONS);
      store = new MemoryStore(opts.db, { ...common, annPath: join(opts.dataDir, ANN_FILE_NAME) });
      break;
    }
    case 'postgres': {
      const c = postgresConfig(config);
      // Loaded only here: a server whose memory is in SQLite never loads pg.
      const [{ default: pg }, { PgMemoryStore }, { guardConnections }] = await Promise.all([
        import('pg'),
        import('./pg-store.js'),
        import('../storage/pg/index.js'),
      ]);
      // Connections are opened on first use: a server whose agents never touch memory never connects.
      const pool = new pg.Pool({ connectionString: c.url, max: c.pool_size, application_name: 'caxton-memory' });
      pool.on('error', (err) =>
        log?.warn({ err }, 'memory: an idle PostgreSQL connection failed; it is replaced on next use'),
      );
      // A connection that dies while checked out (a transaction, the readiness check) fails its
      // query; its `error` event must not end the process.
      guardConnections(pool);
      store = new PgMemoryStore({ ...common, pool, schema: c.schema });
      release = () => pool.end();
      ping = (signal) => pingPostgres(pool, signal);
      break;
    }
    default: {
      const never: never = config.backend;
      throw new Error(`unknown memory backend ${String(never)}`);
    }
  }
  const tools = memoryTools(store, {
    settings: (agent) => {
      const m = opts.registry?.get(agent)?.definition.memory;
      return m && { scope: m.scope, search_limit: m.search_limit, min_similarity: m.min_similarity };
    },
  });
  const execution = executionMemory(store, {
    onError: (err, what, agent) => log?.warn({ err, agent }, `memory ${what} failed; the execution goes on without it`),
  });
  const close = async () => {
    try {
      // Interactions accepted for auto_store are written before the store closes.
      await execution.settled();
      await store.close();
    } finally {
      await release();
    }
  };
  return { config, store, tools, execution, close, ...(ping && { ping }) };
}

/**
 * One `SELECT 1` on a pooled connection. A check cut short by its timeout destroys the connection
 * it used, so an unanswered query is not left holding a pool slot.
 */
async function pingPostgres(pool: pg.Pool, signal: AbortSignal): Promise<void> {
  const c = await pool.connect();
  if (signal.aborted) {
    c.release();
    throw new Error('timed out');
  }
  let failed: Error | undefined;
  const abort = () => {
    failed = new Error('timed out');
    c.release(failed);
  };
  signal.addEventListener('abort', abort, { once: true });
  try {
    await c.query('SELECT 1');
  } catch (e) {
    failed = e instanceof Error ? e : new Error(String(e));
    throw e;
  } finally {
    signal.removeEventListener('abort', abort);
    if (!signal.aborted) c.release(failed);
  }
}
