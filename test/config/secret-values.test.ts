/** secretValues: every secret a configuration refers to, for the process-wide scrubber (ADR 0017). */
import { describe, expect, it } from 'vitest';
import { secretValues } from '../../src/config/index.js';

describe('secretValues', () => {
  const env = {
    OPENAI_KEY: 'sk-openai-0123456789\n',
    EMBED_KEY: 'sk-embed-0123456789',
    PG_URL: 'postgres://caxton:pg-pass%2Fword-123@127.0.0.1:5432/test',
    NOT_SECRET: 'plain value',
  };
  const config = {
    llm: {
      providers: {
        a: {
          type: 'openai',
          api_key_env: 'OPENAI_KEY',
          headers: { 'X-Custom-Auth': 'hdr-secret-0123', Accept: 'application/json' },
        },
      },
    },
    memory: { embedding: { api_key_env: 'EMBED_KEY' }, postgres: { url_env: 'PG_URL' } },
    mcp_servers: {
      gh: { command: 'x', env: { GITHUB_TOKEN: 'ghp_0123456789abcdef', LOG_LEVEL: 'debug' } },
      remote: {
        url: 'https://mcp.example.com/mcp?api_key=query-key-0123&region=eu',
        headers: { Authorization: 'Bearer bearer-token-0123' },
      },
    },
    tools: { search: { config: { api_key: 'tool-config-key-0123', endpoint: 'https://search.example.com' } } },
    other: { database_url: 'postgres://u:inline-pass-0123@db/x' },
  };
  const values = secretValues(config, env);

  it('collects keys behind *_env, header values, MCP env tokens, tool config keys and URL passwords', () => {
    expect(values).toEqual(
      expect.arrayContaining([
        'sk-openai-0123456789', // trimmed, as the provider client sends it
        'sk-embed-0123456789',
        'hdr-secret-0123',
        'ghp_0123456789abcdef',
        'bearer-token-0123',
        'tool-config-key-0123',
        'inline-pass-0123',
      ]),
    );
  });

  it('reads the password of a URL behind url_env ([memory.postgres]) and secret query parameters', () => {
    expect(values).toEqual(expect.arrayContaining(['pg-pass/word-123', 'query-key-0123']));
  });

  it('leaves ordinary values out', () => {
    for (const v of ['plain value', 'debug', 'application/json', 'eu', 'https://search.example.com'])
      expect(values).not.toContain(v);
  });
});
