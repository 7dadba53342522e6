/**
 * Named providers (`[llm.providers.NAME]`), model resolution for an agent (its provider and
 * model, Claude-style aliases, explicit fallbacks) and the fallback loop. A fallback is only
 * ever tried when the agent lists it: there is no implicit one.
 */
import { CaxtonError } from '../shared/errors.js';
import { closest } from '../shared/suggest.js';
import { resolveModelName, type ModelAlias } from './aliases.js';
import { AnthropicProvider } from './anthropic.js';
import { OpenAiProvider } from './openai-client.js';
import { ScriptedProvider } from './scripted.js';
import { LlmError, type ChatRequest, type ChatResponse, type LlmProvider, type ProviderConfig } from './types.js';

/** One provider + model to try. */
export interface ModelAttempt {
  provider: string;
  model: string;
}

/** What an agent asks for (`llm.provider`, `llm.model`, `llm.fallbacks`). */
export interface AgentLlmChoice {
  provider?: string;
  model?: string;
  fallbacks?: string[];
}

export interface ResolveDefaults {
  /** The server's default provider name. */
  provider: string;
  /** `[llm.model_aliases]`: alias → model, optionally on another provider. */
  modelAliases: Record<string, ModelAlias>;
}

export function createProvider(name: string, config: ProviderConfig): LlmProvider {
  switch (config.type) {
    case 'openai':
      return new OpenAiProvider(name, config);
    case 'anthropic':
      return new AnthropicProvider(name, config);
    case 'scripted':
      return new ScriptedProvider(name, config);
    default:
      throw new CaxtonError(
        'invalid_config',
        `LLM provider "${name}": unknown type "${String((config as { type: unknown }).type)}" (expected openai, anthropic or scripted)`,
      );
  }
}

export class ProviderRegistry {
  private readonly providers = new Map<string, LlmProvider>();

  constructor(providers: Iterable<LlmProvider> = []) {
    for (const p of providers) this.add(p);
  }

  /** A registry with one provider per `[llm.providers.NAME]` table. */
  static fromConfig(configs: Record<string, ProviderConfig>): ProviderRegistry {
    return new ProviderRegistry(Object.entries(configs).map(([name, config]) => createProvider(name, config)));
  }

  add(provider: LlmProvider): void {
    if (this.providers.has(provider.name))
      throw new CaxtonError('invalid_config', `LLM provider "${provider.name}" is configured twice`);
    this.providers.set(provider.name, provider);
  }

  has(name: string): boolean {
    return this.providers.has(name);
  }

  names(): string[] {
    return [...this.providers.keys()];
  }

  get(name: string): LlmProvider {
    const p = this.providers.get(name);
    if (p) return p;
    const names = this.names();
    const guess = closest(name, names);
    const listed =
      names.length > 0
        ? `configured providers: ${names.join(', ')}`
        : 'no providers are configured (add a [llm.providers.NAME] table to caxton.toml)';
    throw new CaxtonError(
      'invalid_request',
      `unknown LLM provider "${name}"${guess ? ` (did you mean "${guess}"?)` : ''}; ${listed}`,
      { provider: name, configured: names },
    );
  }

  /**
   * The attempts for an agent, in order: its provider (else the server default) with its model
   * (else the provider's default; an alias key maps through `modelAliases`, possibly to another
   * provider), then each listed fallback provider with that provider's default model.
   *
   * A provider that is not configured, or one with no model to use, is the operator's to fix
   * (the agent definition or caxton.toml), never the caller's: `configuration_error` (500) naming
   * the agent (when given), the field and the fix.
   */
  resolve(agentLlm: AgentLlmChoice, defaults: ResolveDefaults, agent?: string): ModelAttempt[] {
    const chosen = resolveModelName(
      agentLlm,
      defaults.provider,
      defaults.modelAliases,
      (n) => this.providers.get(n),
      () => this.providers.entries(),
    );
    const provider = chosen.provider;
    const primaryField = agentLlm.provider !== undefined ? 'llm.provider' : 'llm.default_provider';
    this.#require(provider, primaryField, agent);
    const model = chosen.model ?? this.get(provider).defaultModel;
    if ((model === undefined || model === '') && chosen.fallback !== undefined) {
      throw new CaxtonError(
        'configuration_error',
        `${agentPrefix(agent)}${chosen.fallback}; provider "${provider}" has no default model either (set model in [llm.providers.${provider}])`,
        {
          ...(agent !== undefined && { agent }),
          field: 'llm.model',
          provider,
          model: agentLlm.model,
        },
      );
    }
    const primary = { provider, model: this.requireModel(provider, model, agent) };
    const attempts: ModelAttempt[] = [primary];
    for (const fb of agentLlm.fallbacks ?? []) {
      this.#require(fb, 'llm.fallbacks', agent);
      const attempt = { provider: fb, model: this.requireModel(fb, this.get(fb).defaultModel, agent) };
      if (!attempts.some((a) => a.provider === attempt.provider && a.model === attempt.model)) attempts.push(attempt);
    }
    return attempts;
  }

  /** Throws `configuration_error` when `name` (from `field`) is not a configured provider. */
  #require(name: string, field: string, agent: string | undefined): void {
    if (this.providers.has(name)) return;
    const names = this.names();
    const guess = closest(name, names);
    const listed = names.length > 0 ? `configured providers: ${names.join(', ')}` : 'no providers are configured';
    const where =
      field === 'llm.default_provider'
        ? name === ''
          ? 'names no [llm] provider and the server has no default one ([llm] default_provider in caxton.toml)'
          : `has no [llm] provider and the server's default ([llm] default_provider) is "${name}"`
        : `names ${field === 'llm.fallbacks' ? 'the fallback provider' : 'the [llm] provider'} "${name}" (${field})`;
    const fix =
      field === 'llm.default_provider'
        ? 'the operator must set [llm] default_provider to a configured provider, or give the agent llm.provider'
        : `the operator must add [llm.providers.${name}] to caxton.toml or change ${field} in the agent's definition`;
    throw new CaxtonError(
      'configuration_error',
      `${agent !== undefined ? `agent "${agent}" ` : 'the agent '}${where}, which is not configured: unknown LLM provider "${name}"${guess ? ` (did you mean "${guess}"?)` : ''}; ${listed}. This is a server configuration error: ${fix}`,
      { ...(agent !== undefined && { agent }), field, provider: name, configured: names },
    );
  }

  private requireModel(provider: string, model: string | undefined, agent?: string): string {
    this.get(provider);
    if (model === undefined || model === '') {
      throw new CaxtonError(
        'configuration_error',
        `${agentPrefix(agent)}LLM provider "${provider}" has no default model: the operator must set model in [llm.providers.${provider}] or llm.model on the agent`,
        { ...(agent !== undefined && { agent }), field: 'llm.model', provider },
      );
    }
    return model;
  }
}

function agentPrefix(agent: string | undefined): string {
  return agent !== undefined ? `agent "${agent}": ` : '';
}

/**
 * One call to a provider; with `onText` it streams, passing text deltas on as they arrive. Without,
 * the provider's own promise is handed back: no promise of this function's in between.
 */
function callOnce(
  provider: LlmProvider,
  req: ChatRequest,
  onText: ((text: string) => void) | undefined,
  streamed: { any: boolean },
): Promise<ChatResponse> {
  return onText ? streamOnce(provider, req, onText, streamed) : provider.chat(req);
}

async function streamOnce(
  provider: LlmProvider,
  req: ChatRequest,
  onText: (text: string) => void,
  streamed: { any: boolean },
): Promise<ChatResponse> {
  for await (const ev of provider.stream(req)) {
    if (ev.type === 'text_delta') {
      streamed.any = true;
      onText(ev.text);
    } else if (ev.type === 'done') return ev.response;
  }
  throw new LlmError({
    provider: provider.name,
    model: req.model,
    kind: 'malformed_response',
    message: 'the stream ended without a final response',
  });
}

/**
 * Tries each attempt in order, moving on only when a provider fails with an LlmError (never on
 * cancellation, never on other errors, never once streamed text has reached the caller). When all
 * fail, throws the last error with the earlier failures in `details.attempts`. With `onText` the
 * calls stream.
 */
export async function chatWithFallbacks(
  registry: ProviderRegistry,
  attempts: readonly ModelAttempt[],
  req: Omit<ChatRequest, 'model'> & { model?: string },
  onText?: (text: string) => void,
): Promise<ChatResponse> {
  if (attempts.length === 0) throw new CaxtonError('invalid_request', 'no LLM provider to call');
  const failures: LlmError[] = [];
  for (const a of attempts) {
    const streamed = { any: false };
    try {
      // A request already made for this attempt's model is sent as it is, not copied.
      const call: ChatRequest = req.model === a.model ? (req as ChatRequest) : { ...req, model: a.model };
      return await callOnce(registry.get(a.provider), call, onText, streamed);
    } catch (e) {
      if (!(e instanceof LlmError) || e.kind === 'cancelled' || req.signal?.aborted || streamed.any) throw e;
      failures.push(e);
    }
  }
  const last = failures[failures.length - 1] as LlmError;
  if (failures.length === 1) throw last;
  const earlier = failures.slice(0, -1);
  const summary = earlier.map((f) => `${f.provider}/${f.model}: ${f.kind}`).join(', ');
  throw new LlmError(
    {
      provider: last.provider,
      model: last.model,
      kind: last.kind,
      message: `${last.reason} (all ${failures.length} attempts failed; earlier: ${summary})`,
      httpStatus: last.httpStatus,
      retryable: last.retryable,
      details: {
        attempts: failures.map((f) => ({
          provider: f.provider,
          model: f.model,
          kind: f.kind,
          http_status: f.httpStatus,
          message: f.reason,
        })),
      },
    },
    { cause: last },
  );
}
