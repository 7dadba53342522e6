import { z } from 'zod';
import { durationMs, sizeBytes } from '../shared/zod-units.js';

/** caxton.toml. Every section has defaults so an empty file (or none) is a working configuration. */

/** Durations default to `def` milliseconds (written as seconds), sizes to `def` bytes. */
const duration = (def: number) => z.union([z.number(), z.string()]).default(def / 1000).pipe(durationMs());
const size = (def: number) => z.union([z.number(), z.string()]).default(def).pipe(sizeBytes());

const port = z.number({ error: 'expected a port number' }).int().min(0).max(65535);

export const providerSchema = z.strictObject({
  type: z.enum(['openai', 'anthropic', 'scripted'], { error: 'expected "openai", "anthropic" or "scripted"' }),
  base_url: z.url({ error: 'expected a URL such as "http://127.0.0.1:11434/v1"' }).optional(),
  api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'expected the NAME of an environment variable, e.g. "OPENAI_API_KEY"' }).optional(),
  model: z.string().min(1).optional(),
  timeout: duration(60_000),
  max_retries: z.number().int().min(0).max(10).default(2),
  retry_base: duration(500),
  headers: z.record(z.string(), z.string()).optional(),
  script: z.string().optional(),
  latency: duration(0),
});

const modelAliasSchema = z.union([
  z.string().min(1).transform((model) => ({ model })),
  z.strictObject({ provider: z.string().min(1).optional(), model: z.string().min(1) }),
]);

export const serverConfigSchema = z.strictObject({
  data_dir: z.string().default('./data'),
  agents_dir: z.string().default('./agents'),
  server: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(8080),
      max_body_size: size(1024 * 1024),
      shutdown_timeout: duration(10_000),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      enabled: z.boolean().default(true),
      host: z.string().min(1).default('127.0.0.1'),
      port: port.default(9090),
    })
    .prefault({}),
  logging: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
  llm: z
    .strictObject({
      default_provider: z.string().min(1).optional(),
      providers: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_-]*$/), providerSchema).default({}),
      model_aliases: z.record(z.string(), modelAliasSchema).default({}),
    })
    .prefault({}),
  execution: z
    .strictObject({
      isolation: z.enum(['context', 'worker', 'process']).default('context'),
      pool_size: z.number().int().min(1).max(256).optional(),
      max_memory_mb: z.number().int().min(16).default(512),
      default_timeout: duration(120_000),
    })
    .prefault({}),
  memory: z
    .looseObject({
      backend: z.enum(['sqlite', 'postgres']).default('sqlite'),
    })
    .prefault({}),
  tools: z.looseObject({}).prefault({}),
  security: z
    .looseObject({
      /** Allows binding beyond loopback without the warning, once authentication exists. */
      allow_remote: z.boolean().default(false),
    })
    .prefault({}),
});

export type ServerConfigInput = z.input<typeof serverConfigSchema>;
export type ServerConfig = z.output<typeof serverConfigSchema> & {
  /** Where the configuration came from, for `config show` and messages. */
  source: { file: string | null; env: string[]; flags: string[] };
};
