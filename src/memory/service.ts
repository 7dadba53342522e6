/**
 * The memory component as the server wires it: `[memory]` read, tables migrated, the store (its
 * embedder created on first use, so servers that never touch memory never load the model), the
 * nine tools and the executor hooks.
 */
import { join } from 'node:path';
import type { AgentRegistry } from '../agents/registry.js';
import type { ExecutionMemory } from '../execution/types.js';
import { migrate, type Db } from '../storage/index.js';
import type { Tool } from '../tools/types.js';
import { executionMemory } from './agent.js';
import { ANN_FILE_NAME } from './ann-file.js';
import { embedderConfig, parseMemoryConfig, type MemoryConfig } from './config.js';
import { createEmbedder, type Embedder } from './embedding/index.js';
import { MEMORY_MIGRATIONS } from './migrations.js';
import { MemoryStore } from './store.js';
import { memoryTools } from './tools.js';

export interface MemoryComponent {
  readonly config: MemoryConfig;
  readonly store: MemoryStore;
  readonly tools: Tool[];
  readonly execution: ExecutionMemory;
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
export function createMemory(opts: CreateMemoryOptions): MemoryComponent | undefined {
  const config = parseMemoryConfig(opts.config);
  if (!config.enabled) return undefined;
  migrate(opts.db, MEMORY_MIGRATIONS);
  const log = opts.log;
  const store = new MemoryStore(opts.db, {
    embedder: opts.embedder ?? (() => createEmbedder(embedderConfig(config, opts.dataDir))),
    limits: { max_observation_chars: config.max_observation_chars },
    keyword_weight: config.keyword_weight,
    onReindex: (done, total) => log?.info({ done, total }, 'memory: re-embedding entities stored with another embedding model'),
    annPath: join(opts.dataDir, ANN_FILE_NAME),
    ...(log && { log }),
  });
  const tools = memoryTools(store, {
    settings: (agent) => {
      const m = opts.registry?.get(agent)?.definition.memory;
      return m && { scope: m.scope, search_limit: m.search_limit, min_similarity: m.min_similarity };
    },
  });
  const execution = executionMemory(store, { onError: (err, what, agent) => log?.warn({ err, agent }, `memory ${what} failed; the execution goes on without it`) });
  return { config, store, tools, execution, close: () => store.close() };
}
