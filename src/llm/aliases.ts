/**
 * Model names an agent may give that are not the model id its provider expects: Claude Code's
 * aliases (`sonnet`, `opus`, `haiku`), `[llm.model_aliases]` entries, and full Claude ids
 * (`claude-opus-4-1-20250805`). One resolver serves both the deploy-time check (a warning) and
 * the run-time choice, so the two always agree. Documented in docs/agent-format.md.
 */

export interface ModelAlias {
  provider?: string;
  model: string;
}

/** Claude model aliases resolve to these unless `[llm.model_aliases]` in caxton.toml says otherwise. */
export const DEFAULT_MODEL_ALIASES: Readonly<Record<string, ModelAlias>> = {
  sonnet: { provider: 'anthropic', model: 'claude-sonnet-4-5' },
  opus: { provider: 'anthropic', model: 'claude-opus-4-1' },
  haiku: { provider: 'anthropic', model: 'claude-haiku-4-5' },
};

/** What the resolver needs to know of a configured provider. */
export interface ProviderFacts {
  type: string;
  defaultModel: string | undefined;
}

export interface ModelResolution {
  provider: string;
  /** undefined: the provider's default model. */
  model: string | undefined;
  /**
   * Set when the model asked for could not be used as written and a fallback was chosen; says
   * what was asked, what it would need and how to map it with `[llm.model_aliases]`.
   */
  fallback?: string;
}

/** A Claude model id (`claude-sonnet-4-5`, `claude-3-5-haiku-20241022`), which only an Anthropic provider serves. */
export function isClaudeModelId(model: string): boolean {
  return model.toLowerCase().startsWith('claude-');
}

/** The Claude family of a full id: `claude-opus-4-1-20250805` → `opus`. */
function claudeFamily(model: string): string | undefined {
  const m = model.toLowerCase();
  for (const family of ['opus', 'sonnet', 'haiku']) if (m.includes(family)) return family;
  return undefined;
}

function howToMap(alias: string): string {
  return `map it in caxton.toml: [llm.model_aliases] ${alias} = "MODEL" (same provider) or ${alias} = { provider = "NAME", model = "MODEL" }`;
}

/**
 * Resolves an agent's `llm.model` against the configured providers:
 * 1. an alias (`[llm.model_aliases]` over the built-in Claude ones) becomes its provider and
 *    model; when that provider is not configured, a provider of that type (`anthropic`) is used
 *    with the alias's model — the agent's own first — else the agent's (or default) provider
 *    with its default model;
 * 2. a full Claude id, when the agent names no provider and the default one is not Anthropic,
 *    goes to a configured Anthropic provider if there is one, else maps through its family alias
 *    (`opus`...) of `[llm.model_aliases]`, else to the default provider's default model;
 * 3. anything else is sent as written.
 * The result's `fallback` says when 1 or 2 had to fall back (the deploy-time warning's text).
 */
export function resolveModelName(
  agent: { provider?: string; model?: string },
  defaultProvider: string,
  aliases: Readonly<Record<string, ModelAlias>>,
  providers: (name: string) => ProviderFacts | undefined,
  allProviders: () => Iterable<[string, ProviderFacts]>,
): ModelResolution {
  const base = agent.provider ?? defaultProvider;
  const model = agent.model;
  if (model === undefined) return { provider: base, model: undefined };
  const baseFacts = providers(base);
  const alias = Object.hasOwn(aliases, model) ? aliases[model] : undefined;
  if (alias) {
    const target = alias.provider ?? base;
    if (providers(target)) return { provider: target, model: alias.model };
    // The built-in aliases name the provider "anthropic": one configured under another name serves them too.
    if (baseFacts?.type === target) return { provider: base, model: alias.model };
    for (const [name, facts] of allProviders())
      if (facts.type === target) return { provider: name, model: alias.model };
    return {
      provider: base,
      model: undefined,
      fallback: `model "${model}" is an alias for ${target}/${alias.model}, but no provider "${target}" is configured: the agent runs on provider "${base}" with its default model${baseFacts?.defaultModel ? ` "${baseFacts.defaultModel}"` : ''}; to choose the model, ${howToMap(model)}`,
    };
  }
  if (
    agent.provider === undefined &&
    isClaudeModelId(model) &&
    baseFacts !== undefined &&
    baseFacts.type !== 'anthropic'
  ) {
    for (const [name, facts] of allProviders()) if (facts.type === 'anthropic') return { provider: name, model };
    const family = claudeFamily(model);
    const familyAlias = family !== undefined && Object.hasOwn(aliases, family) ? aliases[family] : undefined;
    if (familyAlias && providers(familyAlias.provider ?? base)) {
      return { provider: familyAlias.provider ?? base, model: familyAlias.model };
    }
    return {
      provider: base,
      model: undefined,
      fallback: `model "${model}" is a Claude model id, but no Anthropic provider is configured: the agent runs on provider "${base}" with its default model${baseFacts.defaultModel ? ` "${baseFacts.defaultModel}"` : ''}; to choose the model, ${howToMap(family ?? model)}`,
    };
  }
  return { provider: base, model };
}
