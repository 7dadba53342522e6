import type { ProviderRegistry } from '../../llm/index.js';
import type { Tool } from '../types.js';

/**
 * LLM providers as a tool ("LLM providers as MCP tools" in the design): other components and
 * tools call a model through the same permission and audit path as any tool.
 */
export function llmChatTool(providers: ProviderRegistry, defaultProvider: string | undefined): Tool {
  return {
    name: 'llm.chat',
    idempotent: true,
    description: 'Asks a configured LLM provider a question and returns its answer.',
    input_schema: {
      type: 'object',
      properties: {
        prompt: { type: 'string' },
        system: { type: 'string' },
        provider: { type: 'string', description: `provider name; default ${defaultProvider ?? '(none)'}` },
        model: { type: 'string' },
        max_tokens: { type: 'integer', minimum: 1 },
      },
      required: ['prompt'],
      additionalProperties: false,
    },
    async invoke(args, ctx) {
      if (typeof args.prompt !== 'string') return { content: 'llm.chat: "prompt" must be a string', is_error: true };
      const name = typeof args.provider === 'string' ? args.provider : defaultProvider;
      if (!name) return { content: 'llm.chat: no provider given and no default provider configured', is_error: true };
      const provider = providers.get(name);
      const model = typeof args.model === 'string' ? args.model : provider.defaultModel;
      if (!model) return { content: `llm.chat: provider "${name}" has no default model; pass "model"`, is_error: true };
      const res = await provider.chat({
        model,
        messages: [
          ...(typeof args.system === 'string' ? [{ role: 'system' as const, content: args.system }] : []),
          { role: 'user', content: args.prompt },
        ],
        ...(typeof args.max_tokens === 'number' && { max_tokens: args.max_tokens }),
        signal: ctx.signal,
      });
      return { content: res.content };
    },
  };
}
