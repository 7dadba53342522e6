/**
 * `[memory]` of caxton.toml, read by the memory component itself (the server schema keeps the
 * section open):
 *
 *   [memory]
 *   enabled = true                  # false: no memory tools, {{memory_context}} stays empty
 *   backend = "sqlite"              # or "postgres" (pgvector) with [memory.postgres]
 *   embedder = "local"              # or "openai" with [memory.openai]
 *   local_graph = "standard"        # or "int8" (faster, ≈ 0.99 cosine to fp32; its own model name)
 *   max_observation_chars = 4096
 *   keyword_weight = 0.3            # hybrid search: score = cos + w · keyword · (1 − cos)
 *   [memory.openai]
 *   base_url = "http://127.0.0.1:11434/v1"
 *   model = "nomic-embed-text"
 *   dimensions = 768
 *   api_key_env = "OPENAI_API_KEY"
 *   [memory.postgres]
 *   url_env = "CAXTON_MEMORY_DATABASE_URL"   # or url = "postgres://user@host:5432/db"
 *   schema = "caxton_memory"
 *   pool_size = 10
 */
import { join } from 'node:path';
import { z } from 'zod';
import { CaxtonError } from '../shared/errors.js';
import { postgresConnectionFields } from '../config/index.js';
import type { EmbedderConfig } from './embedding/index.js';

const schema = z.looseObject({
  enabled: z.boolean({ error: 'expected true or false' }).default(true),
  backend: z.enum(['sqlite', 'postgres'], { error: 'expected "sqlite" or "postgres"' }).default('sqlite'),
  embedder: z.enum(['local', 'openai'], { error: 'expected "local" or "openai"' }).default('local'),
  local_graph: z.enum(['standard', 'int8'], { error: 'expected "standard" or "int8"' }).default('standard'),
  max_observation_chars: z.number().int().min(64).max(65_536).default(4096),
  keyword_weight: z.number().min(0).max(1).default(0.3),
  openai: z
    .strictObject({
      base_url: z.url({ error: 'expected a URL' }),
      model: z.string().min(1),
      dimensions: z.number().int().positive(),
      api_key_env: z.string().min(1).optional(),
    })
    .optional(),
  postgres: z.strictObject(postgresConnectionFields('caxton_memory')).optional(),
});

export type MemoryConfig = z.output<typeof schema>;

/** Reads `[memory]`; errors name the key (`memory.embedder`). */
export function parseMemoryConfig(raw: unknown): MemoryConfig {
  const r = schema.safeParse(raw ?? {});
  if (!r.success) {
    const i = r.error.issues[0]!;
    const path = ['memory', ...i.path.map(String)].join('.');
    throw new CaxtonError('invalid_config', `${path}: ${i.message}`, { field: path });
  }
  const c = r.data;
  if (
    c.backend === 'postgres' &&
    (!c.postgres || (c.postgres.url === undefined) === (c.postgres.url_env === undefined))
  ) {
    throw new CaxtonError(
      'invalid_config',
      'memory.backend is "postgres": set exactly one of memory.postgres.url or memory.postgres.url_env (the variable holding the URL)',
      {
        field: 'memory.postgres',
      },
    );
  }
  if (c.embedder === 'openai' && !c.openai)
    throw new CaxtonError(
      'invalid_config',
      'memory.embedder is "openai" but [memory.openai] (base_url, model, dimensions) is missing',
      { field: 'memory.openai' },
    );
  return c;
}

/** The embedder `[memory]` asks for; the local model's ONNX file is cached in `<data_dir>/cache`. */
export function embedderConfig(c: MemoryConfig, dataDir: string): EmbedderConfig {
  if (c.embedder === 'openai') {
    const o = c.openai!;
    return {
      kind: 'openai',
      base_url: o.base_url,
      model: o.model,
      dimensions: o.dimensions,
      ...(o.api_key_env !== undefined && { api_key_env: o.api_key_env }),
    };
  }
  return { kind: 'local', cache_dir: join(dataDir, 'cache'), graph: c.local_graph };
}

/** The PostgreSQL connection `[memory.postgres]` asks for (the URL read from `url_env` when given). */
export function postgresConfig(
  c: MemoryConfig,
  env: NodeJS.ProcessEnv = process.env,
): { url: string; schema: string; pool_size: number } {
  const p = c.postgres;
  if (!p)
    throw new CaxtonError('invalid_config', 'memory.backend is "postgres" but [memory.postgres] is missing', {
      field: 'memory.postgres',
    });
  const url = p.url ?? env[p.url_env!];
  if (!url)
    throw new CaxtonError(
      'invalid_config',
      `memory.postgres.url_env: the environment variable ${p.url_env} is not set; set it to a postgres:// URL`,
      { field: 'memory.postgres.url_env' },
    );
  if (!/^postgres(ql)?:\/\//.test(url))
    throw new CaxtonError('invalid_config', `memory.postgres.url_env: ${p.url_env} does not hold a postgres:// URL`, {
      field: 'memory.postgres.url_env',
    });
  return { url, schema: p.schema, pool_size: p.pool_size };
}
