import { afterEach, describe, expect, it } from 'vitest';
import { CaxtonError } from '../../src/shared/errors.js';
import {
  AnthropicProvider,
  chatWithFallbacks,
  createProvider,
  LlmError,
  OpenAiProvider,
  ProviderRegistry,
  ScriptedProvider,
} from '../../src/llm/index.js';
import { createScriptedProvider } from '../../src/llm/scripted-file.js';
import {
  completion,
  hang,
  json,
  providerConfig,
  startServer,
  type Handler,
  type TestServer,
} from './helpers/server.js';

const servers: TestServer[] = [];
async function serve(handlers: Handler | Handler[]): Promise<TestServer> {
  const s = await startServer(handlers);
  servers.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const ok = completion({
  model: 'model-b',
  choices: [{ index: 0, message: { role: 'assistant', content: 'from backup' }, finish_reason: 'stop' }],
});
const aliases = {
  sonnet: { provider: 'anthropic', model: 'claude-sonnet-4-5' },
  haiku: { model: 'local-haiku' },
};

function registry(): ProviderRegistry {
  return ProviderRegistry.fromConfig({
    openai: providerConfig({ type: 'openai', model: 'gpt-4o-mini', api_key_env: 'X' }),
    anthropic: providerConfig({ type: 'anthropic', model: 'claude-haiku-4-5', api_key_env: 'Y' }),
    local: providerConfig({ type: 'openai', base_url: 'http://127.0.0.1:11434/v1' }),
  });
}

describe('createProvider', () => {
  it('builds the client for each type', () => {
    expect(createProvider('a', providerConfig({ type: 'openai' }))).toBeInstanceOf(OpenAiProvider);
    expect(createProvider('b', providerConfig({ type: 'anthropic' }))).toBeInstanceOf(AnthropicProvider);
    expect(createScriptedProvider('c', providerConfig({ type: 'scripted' }), { fallback: 'hi' })).toBeInstanceOf(
      ScriptedProvider,
    );
  });
});

describe('ProviderRegistry.resolve', () => {
  it('uses the agent provider and model, else the server default provider and its model', () => {
    const r = registry();
    expect(r.resolve({}, { provider: 'openai', modelAliases: aliases })).toEqual([
      { provider: 'openai', model: 'gpt-4o-mini' },
    ]);
    expect(r.resolve({ provider: 'anthropic' }, { provider: 'openai', modelAliases: aliases })).toEqual([
      { provider: 'anthropic', model: 'claude-haiku-4-5' },
    ]);
    expect(r.resolve({ model: 'gpt-4.1' }, { provider: 'openai', modelAliases: aliases })).toEqual([
      { provider: 'openai', model: 'gpt-4.1' },
    ]);
  });

  it('maps model aliases, which may switch provider', () => {
    const r = registry();
    expect(r.resolve({ model: 'sonnet' }, { provider: 'openai', modelAliases: aliases })).toEqual([
      { provider: 'anthropic', model: 'claude-sonnet-4-5' },
    ]);
    expect(r.resolve({ provider: 'local', model: 'haiku' }, { provider: 'openai', modelAliases: aliases })).toEqual([
      { provider: 'local', model: 'local-haiku' },
    ]);
    // Not an alias: used verbatim.
    expect(r.resolve({ model: 'opus' }, { provider: 'openai', modelAliases: aliases })).toEqual([
      { provider: 'openai', model: 'opus' },
    ]);
  });

  it('appends only the listed fallbacks, each with its default model', () => {
    const r = registry();
    expect(
      r.resolve({ model: 'sonnet', fallbacks: ['openai'] }, { provider: 'openai', modelAliases: aliases }),
    ).toEqual([
      { provider: 'anthropic', model: 'claude-sonnet-4-5' },
      { provider: 'openai', model: 'gpt-4o-mini' },
    ]);
  });

  it('names the configured providers for an unknown one, and asks for a model when there is none', () => {
    const r = registry();
    const e = (() => {
      try {
        r.resolve({ provider: 'anthropc' }, { provider: 'openai', modelAliases: {} });
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(CaxtonError);
    expect((e as CaxtonError).code).toBe('configuration_error');
    expect((e as Error).message).toContain('did you mean "anthropic"');
    expect((e as Error).message).toContain('openai, anthropic, local');
    expect(() => r.resolve({ fallbacks: ['nope'] }, { provider: 'openai', modelAliases: {} })).toThrow(
      /unknown LLM provider "nope"/,
    );
    expect(() => r.resolve({ provider: 'local' }, { provider: 'openai', modelAliases: {} })).toThrow(
      /"local" has no default model/,
    );
  });
});

describe('ProviderRegistry.resolve: Claude aliases and ids the providers cannot serve', () => {
  const noAnthropic = () =>
    ProviderRegistry.fromConfig({
      openai: providerConfig({ type: 'openai', model: 'gpt-4o-mini', api_key_env: 'X' }),
      bare: providerConfig({ type: 'openai', base_url: 'http://127.0.0.1:11434/v1' }),
    });
  const builtIn = {
    sonnet: { provider: 'anthropic', model: 'claude-sonnet-4-5' },
    opus: { provider: 'anthropic', model: 'claude-opus-4-1' },
  };

  it('an alias whose provider is missing falls back to the default provider and its default model', () => {
    expect(noAnthropic().resolve({ model: 'sonnet' }, { provider: 'openai', modelAliases: builtIn })).toEqual([
      { provider: 'openai', model: 'gpt-4o-mini' },
    ]);
  });

  it('[llm.model_aliases] without a provider maps the alias on the default provider', () => {
    expect(
      noAnthropic().resolve(
        { model: 'sonnet' },
        { provider: 'openai', modelAliases: { ...builtIn, sonnet: { model: 'gpt-4o' } } },
      ),
    ).toEqual([{ provider: 'openai', model: 'gpt-4o' }]);
  });

  it('a full Claude id goes through its family alias, never unchanged to a non-Anthropic provider; with a named provider it is sent as written', () => {
    const reg = noAnthropic();
    expect(reg.resolve({ model: 'claude-opus-4-1-20250805' }, { provider: 'openai', modelAliases: builtIn })).toEqual([
      { provider: 'openai', model: 'gpt-4o-mini' },
    ]);
    expect(
      reg.resolve(
        { model: 'claude-opus-4-1-20250805' },
        { provider: 'openai', modelAliases: { ...builtIn, opus: { model: 'gpt-4.1' } } },
      ),
    ).toEqual([{ provider: 'openai', model: 'gpt-4.1' }]);
    expect(
      reg.resolve(
        { provider: 'openai', model: 'claude-opus-4-1-20250805' },
        { provider: 'openai', modelAliases: builtIn },
      ),
    ).toEqual([{ provider: 'openai', model: 'claude-opus-4-1-20250805' }]);
  });

  it('a fallback onto a provider with no default model is a configuration error naming the alias and [llm.model_aliases]', () => {
    try {
      noAnthropic().resolve({ model: 'sonnet' }, { provider: 'bare', modelAliases: builtIn });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(CaxtonError);
      expect((e as CaxtonError).message).toContain('"sonnet"');
      expect((e as CaxtonError).message).toContain('[llm.model_aliases]');
      expect((e as CaxtonError).message).toContain('[llm.providers.bare]');
    }
  });
});

describe('chatWithFallbacks', () => {
  async function pair(primary: Handler): Promise<{ reg: ProviderRegistry; a: TestServer; b: TestServer }> {
    const a = await serve(primary);
    const b = await serve(json(200, ok));
    const reg = ProviderRegistry.fromConfig({
      a: providerConfig({ type: 'openai', base_url: a.url, model: 'model-a', max_retries: 0 }),
      b: providerConfig({ type: 'openai', base_url: b.url, model: 'model-b', max_retries: 0 }),
    });
    return { reg, a, b };
  }
  const req = { messages: [{ role: 'user' as const, content: 'hi' }] };

  it('never falls back implicitly: without fallbacks the second provider gets no request', async () => {
    const { reg, a, b } = await pair(json(500, { error: { message: 'boom' } }));
    const attempts = reg.resolve({ provider: 'a' }, { provider: 'a', modelAliases: {} });
    await expect(chatWithFallbacks(reg, attempts, req)).rejects.toMatchObject({ kind: 'server_error', provider: 'a' });
    expect(a.hits).toHaveLength(1);
    expect(b.hits).toHaveLength(0);
  });

  it('tries a listed fallback after a failure', async () => {
    const { reg, a, b } = await pair(json(500, { error: { message: 'boom' } }));
    const attempts = reg.resolve({ provider: 'a', fallbacks: ['b'] }, { provider: 'a', modelAliases: {} });
    const r = await chatWithFallbacks(reg, attempts, req);
    expect(r).toMatchObject({ provider: 'b', model: 'model-b', content: 'from backup' });
    expect(a.hits).toHaveLength(1);
    expect(b.hits).toHaveLength(1);
    expect(b.hits[0]!.body).toMatchObject({ model: 'model-b' });
  });

  it('throws the last error with the earlier failures in details when all fail', async () => {
    const a = await serve(json(401, {}));
    const b = await serve(json(503, { error: { message: 'down' } }));
    const reg = ProviderRegistry.fromConfig({
      a: providerConfig({ type: 'openai', base_url: a.url, model: 'model-a', max_retries: 0 }),
      b: providerConfig({ type: 'openai', base_url: b.url, model: 'model-b', max_retries: 0 }),
    });
    const e = await chatWithFallbacks(
      reg,
      [
        { provider: 'a', model: 'model-a' },
        { provider: 'b', model: 'model-b' },
      ],
      req,
    ).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(LlmError);
    const err = e as LlmError;
    expect(err).toMatchObject({ provider: 'b', model: 'model-b', kind: 'server_error', httpStatus: 503 });
    expect(err.message).toContain('down');
    expect(err.message).toContain('a/model-a: unauthorized');
    expect(err.details).toMatchObject({
      attempts: [
        { provider: 'a', model: 'model-a', kind: 'unauthorized', http_status: 401 },
        { provider: 'b', model: 'model-b', kind: 'server_error', http_status: 503 },
      ],
    });
  });

  it('does not fall back on cancellation', async () => {
    const { reg, b } = await pair(hang);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await expect(
      chatWithFallbacks(
        reg,
        [
          { provider: 'a', model: 'model-a' },
          { provider: 'b', model: 'model-b' },
        ],
        { ...req, signal: ac.signal },
      ),
    ).rejects.toMatchObject({ kind: 'cancelled' });
    expect(b.hits).toHaveLength(0);
  });

  it('works with scripted providers (no network)', async () => {
    const reg = new ProviderRegistry([
      createScriptedProvider('broken', providerConfig({ type: 'scripted' }), {
        rules: [{ match: 'never', content: 'x' }],
      }),
      createScriptedProvider('demo', providerConfig({ type: 'scripted', model: 'demo-1' }), {
        rules: [{ content: 'echo: {{request}}' }],
      }),
    ]);
    const attempts = reg.resolve({ provider: 'broken', fallbacks: ['demo'] }, { provider: 'demo', modelAliases: {} });
    expect(attempts).toEqual([
      { provider: 'broken', model: 'scripted' },
      { provider: 'demo', model: 'demo-1' },
    ]);
    expect(await chatWithFallbacks(reg, attempts, req)).toMatchObject({
      provider: 'demo',
      model: 'demo-1',
      content: 'echo: hi',
    });
  });
});
