/** `[memory]` of caxton.toml: the backend choice and each kind of bad value, named by key. */
import { describe, expect, it } from 'vitest';
import { parseMemoryConfig, postgresConfig } from '../../src/memory/memory-config.js';

function failure(raw: unknown): { code?: string; message: string; field?: unknown } {
  try {
    parseMemoryConfig(raw);
  } catch (e) {
    const err = e as { code?: string; message: string; details?: { field?: unknown } };
    return { code: err.code, message: err.message, field: err.details?.field };
  }
  throw new Error('expected parseMemoryConfig to fail');
}

describe('[memory] backend', () => {
  it('defaults to the embedded SQLite backend', () => {
    expect(parseMemoryConfig(undefined)).toMatchObject({ enabled: true, backend: 'sqlite', embedder: 'local' });
  });

  it('selects PostgreSQL with a URL, or the variable that holds it', () => {
    const direct = parseMemoryConfig({ backend: 'postgres', postgres: { url: 'postgres://caxton@db:5432/caxton' } });
    expect(postgresConfig(direct)).toEqual({
      url: 'postgres://caxton@db:5432/caxton',
      schema: 'caxton_memory',
      pool_size: 10,
    });
    const viaEnv = parseMemoryConfig({
      backend: 'postgres',
      postgres: { url_env: 'MEM_URL', schema: 'team_a', pool_size: 4 },
    });
    expect(postgresConfig(viaEnv, { MEM_URL: 'postgresql://u:pw@10.0.0.5/mem' })).toEqual({
      url: 'postgresql://u:pw@10.0.0.5/mem',
      schema: 'team_a',
      pool_size: 4,
    });
  });

  it('names the key of each bad value', () => {
    expect(failure({ backend: 'mysql' })).toMatchObject({
      code: 'invalid_config',
      field: 'memory.backend',
      message: expect.stringContaining('"sqlite" or "postgres"'),
    });
    expect(failure({ backend: 'postgres' })).toMatchObject({
      code: 'invalid_config',
      field: 'memory.postgres',
      message: expect.stringContaining('memory.postgres.url_env'),
    });
    expect(failure({ backend: 'postgres', postgres: { url: 'postgres://a/b', url_env: 'X' } })).toMatchObject({
      field: 'memory.postgres',
      message: expect.stringContaining('exactly one'),
    });
    expect(failure({ backend: 'postgres', postgres: { url: 'mysql://a/b' } })).toMatchObject({
      field: 'memory.postgres.url',
      message: expect.stringContaining('postgres:// URL'),
    });
    expect(failure({ backend: 'postgres', postgres: { url: 'postgres://a/b', schema: 'Drop Table' } })).toMatchObject({
      field: 'memory.postgres.schema',
    });
    expect(failure({ backend: 'postgres', postgres: { url: 'postgres://a/b', pool: 3 } })).toMatchObject({
      field: 'memory.postgres',
    });
  });

  it('says which environment variable is missing or wrong', () => {
    const c = parseMemoryConfig({ backend: 'postgres', postgres: { url_env: 'MEM_URL' } });
    expect(() => postgresConfig(c, {})).toThrow(/MEM_URL is not set/);
    expect(() => postgresConfig(c, { MEM_URL: 'http://x' })).toThrow(/MEM_URL does not hold a postgres:\/\/ URL/);
  });
});
