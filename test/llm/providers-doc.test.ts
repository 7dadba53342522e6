/**
 * docs/providers.md's examples, as a reader would use them: each `<!-- provider-example: NAME -->`
 * block is written to a caxton.toml and read by the server's own configuration loader, then its
 * default provider is called through the provider clients against the strict stand-ins (a request
 * the real API would refuse is refused), with only the host of `base_url` pointed at the stand-in:
 * the path each example calls, and the key and headers it sends, are the ones the page promises.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadServerConfig, providerSchema } from '../../src/config/index.js';
import { llmSetup } from '../../src/execution/deps.js';
import {
  ANTHROPIC_DEFAULT_BASE_URL,
  chatWithFallbacks,
  OPENAI_DEFAULT_BASE_URL,
  ProviderRegistry,
  type ProviderConfig,
} from '../../src/llm/index.js';
import { anthropicMessage, openaiCompletion } from '../helpers/llm-standin.js';
import { repoRoot } from '../cli/helpers/cli.js';
import { json, startServer, type Handler, type TestServer } from './helpers/server.js';

const PAGE = readFileSync(join(repoRoot, 'docs/providers.md'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'caxton-providers-doc-'));
const servers: TestServer[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The TOML block after `<!-- provider-example: name -->`. */
function example(name: string): string {
  const m = new RegExp(`<!-- provider-example: ${name} -->\\n\`\`\`toml\\n([\\s\\S]*?)\`\`\``).exec(PAGE);
  expect(m, `docs/providers.md has no provider-example "${name}"`).not.toBeNull();
  return m![1]!;
}

/** The example read by the server's configuration loader, as `caxton serve` reads caxton.toml. */
function load(name: string): ReturnType<typeof llmSetup> {
  const file = join(dir, `${name}.toml`);
  writeFileSync(file, example(name));
  return llmSetup(loadServerConfig({ file, env: {}, cwd: dir }));
}

/** Answers each API in the shape the real one does. */
const answer: Handler = (res, hit, n) => {
  const model = (hit.body as { model: string }).model;
  const value = hit.path.endsWith('/chat/completions')
    ? openaiCompletion({ content: `answer ${n}`, model })
    : anthropicMessage({ content: `answer ${n}`, model });
  return json(200, value)(res, hit, n);
};

/** The provider config with `base_url`'s origin (default or written) replaced by the stand-in's. */
function pointedAt(p: ProviderConfig, standIn: string): ProviderConfig {
  const written = p.base_url ?? (p.type === 'anthropic' ? ANTHROPIC_DEFAULT_BASE_URL : OPENAI_DEFAULT_BASE_URL);
  const u = new URL(written);
  return { ...p, base_url: `${standIn}${u.pathname}`.replace(/\/$/, '') };
}

async function callDefault(name: string, env: Record<string, string> = {}) {
  const setup = load(name);
  const s = await startServer(answer);
  servers.push(s);
  const providers = Object.fromEntries(Object.entries(setup.providers).map(([k, p]) => [k, pointedAt(p, s.url)]));
  for (const [k, v] of Object.entries(env)) process.env[k] = v;
  try {
    const registry = ProviderRegistry.fromConfig(providers);
    const attempts = registry.resolve({}, setup.defaults);
    const res = await chatWithFallbacks(registry, attempts, { messages: [{ role: 'user', content: 'Hello' }] });
    return { res, hits: s.hits, provider: setup.providers[setup.defaults.provider]! };
  } finally {
    for (const k of Object.keys(env)) delete process.env[k];
  }
}

describe('docs/providers.md examples', () => {
  it('OpenAI: the default base URL, the key as a bearer token, the default model', async () => {
    const { res, hits, provider } = await callDefault('openai', { OPENAI_API_KEY: 'sk-doc-openai' });
    expect(provider).toMatchObject({ type: 'openai', timeout_ms: 60_000, max_retries: 2, retry_base_ms: 500 });
    expect(hits.map((h) => [h.path, h.refused])).toEqual([['/v1/chat/completions', undefined]]);
    expect(hits[0]!.headers.authorization).toBe('Bearer sk-doc-openai');
    expect((hits[0]!.body as { model: string }).model).toBe('gpt-4o-mini');
    expect(res.content).toBe('answer 0');
  });

  it('Anthropic: base_url written with /v1 calls /v1/messages once, not /v1/v1/messages, with x-api-key', async () => {
    const { res, hits } = await callDefault('anthropic', { ANTHROPIC_API_KEY: 'ant-doc-key' });
    expect(hits.map((h) => [h.path, h.refused])).toEqual([['/v1/messages', undefined]]);
    expect(hits[0]!.headers['x-api-key']).toBe('ant-doc-key');
    expect(hits[0]!.headers['anthropic-version']).toBe('2023-06-01');
    expect(hits[0]!.headers.authorization).toBeUndefined();
    expect(res.content).toBe('answer 0');
  });

  it('Anthropic: the host alone, with a trailing slash, and with /v1/ all call the same /v1/messages', async () => {
    const s = await startServer(answer);
    servers.push(s);
    process.env.ANTHROPIC_API_KEY = 'ant-doc-key';
    try {
      for (const base of [s.url, `${s.url}/`, `${s.url}/v1`, `${s.url}/v1/`]) {
        const registry = ProviderRegistry.fromConfig({
          claude: {
            type: 'anthropic',
            base_url: base,
            api_key_env: 'ANTHROPIC_API_KEY',
            model: 'claude-sonnet-4-5',
            timeout_ms: 10_000,
            max_retries: 0,
            retry_base_ms: 100,
          },
        });
        await registry.get('claude').chat({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'Hi' }] });
      }
    } finally {
      delete process.env.ANTHROPIC_API_KEY;
    }
    expect(s.hits.map((h) => h.path)).toEqual(Array(4).fill('/v1/messages'));
  });

  it('Ollama: /v1/chat/completions, no key sent, the five-minute timeout', async () => {
    const { res, hits, provider } = await callDefault('ollama');
    expect(provider.timeout_ms).toBe(300_000);
    expect(hits.map((h) => [h.path, h.refused])).toEqual([['/v1/chat/completions', undefined]]);
    expect(hits[0]!.headers.authorization).toBeUndefined();
    expect((hits[0]!.body as { model: string }).model).toBe('llama3.2');
    expect(res.content).toBe('answer 0');
  });

  it('vLLM: /v1/chat/completions with its key and the served model name', async () => {
    const { hits } = await callDefault('vllm', { VLLM_API_KEY: 'vllm-doc-key' });
    expect(hits.map((h) => [h.path, h.refused])).toEqual([['/v1/chat/completions', undefined]]);
    expect(hits[0]!.headers.authorization).toBe('Bearer vllm-doc-key');
    expect((hits[0]!.body as { model: string }).model).toBe('Qwen/Qwen2.5-7B-Instruct');
  });

  it("LiteLLM: /v1/chat/completions with the proxy's key", async () => {
    const { hits } = await callDefault('litellm', { LITELLM_API_KEY: 'sk-litellm-doc' });
    expect(hits.map((h) => [h.path, h.refused])).toEqual([['/v1/chat/completions', undefined]]);
    expect(hits[0]!.headers.authorization).toBe('Bearer sk-litellm-doc');
    expect((hits[0]!.body as { model: string }).model).toBe('gpt-4o');
  });

  it('OpenRouter: /api/v1/chat/completions with the attribution headers', async () => {
    const { hits } = await callDefault('openrouter', { OPENROUTER_API_KEY: 'sk-or-doc' });
    expect(hits.map((h) => [h.path, h.refused])).toEqual([['/api/v1/chat/completions', undefined]]);
    expect(hits[0]!.headers.authorization).toBe('Bearer sk-or-doc');
    expect(hits[0]!.headers['http-referer']).toBe('https://example.com');
    expect(hits[0]!.headers['x-title']).toBe('Caxton');
    expect((hits[0]!.body as { model: string }).model).toBe('openai/gpt-4o-mini');
  });

  it('fallbacks and aliases: timeout, retries and retry_base parsed; "fast" resolves; a failing openai falls back to local', async () => {
    const setup = load('fallbacks');
    expect(setup.providers.openai).toMatchObject({ timeout_ms: 30_000, max_retries: 3, retry_base_ms: 1000 });
    const broken = await startServer(
      json(401, {
        error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' },
      }),
    );
    const local = await startServer(answer);
    servers.push(broken, local);
    const registry = ProviderRegistry.fromConfig({
      openai: pointedAt(setup.providers.openai!, broken.url),
      local: pointedAt(setup.providers.local!, local.url),
    });
    const attempts = registry.resolve({ model: 'fast', fallbacks: ['local'] }, setup.defaults);
    expect(attempts).toEqual([
      { provider: 'openai', model: 'gpt-4o-mini' },
      { provider: 'local', model: 'llama3.2' },
    ]);
    expect(registry.resolve({ model: 'sonnet' }, setup.defaults)).toEqual([{ provider: 'local', model: 'llama3.2' }]);
    process.env.OPENAI_API_KEY = 'sk-wrong';
    try {
      const res = await chatWithFallbacks(registry, attempts, { messages: [{ role: 'user', content: 'Hello' }] });
      expect(res.content).toBe('answer 0');
    } finally {
      delete process.env.OPENAI_API_KEY;
    }
    // 401 is not retried: one attempt on openai, then the fallback.
    expect(broken.hits.map((h) => h.path)).toEqual(['/v1/chat/completions']);
    expect(local.hits.map((h) => h.path)).toEqual(['/v1/chat/completions']);
  });

  it('the page names every key of a provider table with its default', () => {
    const keys = Object.keys(providerSchema.shape);
    expect(keys.length).toBeGreaterThanOrEqual(10);
    for (const k of keys) expect(PAGE).toMatch(new RegExp(`^\\| \`${k}\` \\|`, 'm'));
  });
});
