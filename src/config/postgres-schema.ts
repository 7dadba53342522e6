import { z } from 'zod';

/**
 * The keys of a PostgreSQL connection table (`[memory.postgres]`, `[cluster.state]`): `url` or
 * `url_env` (the variable holding a URL with a password), the schema holding the tables, the pool.
 */
export function postgresConnectionFields(defaultSchema: string) {
  return {
    url: z
      .string()
      .regex(/^postgres(ql)?:\/\//, { error: 'expected a postgres:// URL' })
      .optional(),
    url_env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'expected the name of an environment variable' })
      .optional(),
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: 'expected a lower-case SQL identifier (letters, digits, _)' })
      .default(defaultSchema),
    pool_size: z.number().int().min(1).max(200).default(10),
  };
}
