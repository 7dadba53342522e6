import { z } from 'zod';
import { AGENT_NAME_RE, INTERACTION_PROTOCOLS, ISOLATION_MODES, type AgentDefinition } from './definition.js';

/**
 * The shape of a stored agent definition (the `definition` column of `agents`): what the parser
 * produced at deploy time, checked again when the store is read back. A row edited by hand, written
 * by another version or damaged into valid JSON of the wrong shape would otherwise load, and every
 * listing, detail or execution that touches it would fail (a 500) instead of the start skipping it.
 *
 * Not agentDocumentSchema: that one reads what a person writes (durations as "30s", defaults to
 * fill in); this checks its output, field for field, and lets unknown keys through (a newer
 * version's additions do not make a row unreadable).
 */
const str = z.string();
const strings = z.array(z.string());
const num = z.number();
const record = z.record(z.string(), z.unknown());

export const storedDefinitionSchema = z.looseObject({
  name: z.string().regex(AGENT_NAME_RE),
  version: str,
  description: str,
  capabilities: strings,
  tools: strings,
  system_prompt: str,
  user_prompt_template: str,
  documentation: str.optional(),
  llm: z.looseObject({
    provider: str.optional(),
    model: str.optional(),
    temperature: num.optional(),
    max_tokens: num.optional(),
    top_p: num.optional(),
    stop: strings.optional(),
    fallbacks: strings.optional(),
  }),
  memory: z.looseObject({
    enabled: z.boolean(),
    scope: z.enum(['agent', 'workspace', 'global']),
    auto_store: z.boolean(),
    search_limit: num,
    min_similarity: num,
  }),
  parameters: record,
  limits: z.looseObject({ max_turns: num, timeout_ms: num, max_message_size: num }),
  conversation: z.looseObject({ history_limit: num, max_turns: num, ttl_ms: num }),
  execution: z.looseObject({ isolation: z.enum(ISOLATION_MODES).optional() }),
  messaging: z.looseObject({
    protocols: z.array(z.enum(INTERACTION_PROTOCOLS)),
    ontologies: strings,
    languages: strings,
    max_concurrency: num.optional(),
    send_to: strings.optional(),
  }),
  metadata: record,
  rollout: z
    .looseObject({
      strategy: z.enum(['direct', 'blue-green', 'canary', 'shadow']).optional(),
      stages: z.array(num).optional(),
      checks: z.array(record),
    })
    .optional(),
  wasm: z
    .looseObject({
      module: str,
      entry: str,
      limits: z.looseObject({
        memory: num,
        fuel: num,
        timeout_ms: num,
        max_input: num,
        max_output: num,
        max_state: num,
      }),
      path: str.optional(),
      digest: str.optional(),
    })
    .optional(),
});

/** The definition, or what is wrong with it: at most three fields, each with what was expected. */
export function checkStoredDefinition(
  value: unknown,
): { ok: true; definition: AgentDefinition } | { ok: false; problem: string } {
  const r = storedDefinitionSchema.safeParse(value);
  if (r.success) return { ok: true, definition: value as AgentDefinition };
  const issues = r.error.issues;
  const shown = issues
    .slice(0, 3)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : 'the definition'}: ${describe(i)}`);
  return { ok: false, problem: `${shown.join('; ')}${issues.length > 3 ? `; and ${issues.length - 3} more` : ''}` };
}

function describe(i: z.core.$ZodIssue): string {
  if (i.code === 'invalid_type') return `expected ${/^[aeiou]/.test(i.expected) ? 'an' : 'a'} ${i.expected}`;
  return i.message;
}
