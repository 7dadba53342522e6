/** Claude model aliases resolve to these unless `[llm.model_aliases]` in caxton.toml says otherwise. */
export const DEFAULT_MODEL_ALIASES: Readonly<Record<string, { provider?: string; model: string }>> = {
  sonnet: { provider: 'anthropic', model: 'claude-sonnet-4-5' },
  opus: { provider: 'anthropic', model: 'claude-opus-4-1' },
  haiku: { provider: 'anthropic', model: 'claude-haiku-4-5' },
};
