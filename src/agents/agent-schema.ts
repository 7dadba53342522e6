import { z } from 'zod';
import { durationMs, numberOrText, sizeBytes } from '../shared/zod-units.js';
import { WASM_LIMIT_KEYS, wasmLimitFields, wasmLimits } from '../shared/wasm-limits.js';
import { MAX_PERIOD_MS, MAX_TIMER_MS } from '../shared/units.js';
import {
  AGENT_NAME_RE,
  CAPABILITY_RE,
  DEFAULT_USER_PROMPT_TEMPLATE,
  INTERACTION_PROTOCOLS,
  ISOLATION_MODES,
  STANDARD_BID_FIELDS,
  TOOL_NAME_RE,
  type AgentDefinition,
  type AgentName,
  type Capability,
  type ToolName,
} from './definition.js';

/**
 * The agent document schema: what a TOML file, a Markdown frontmatter (after Claude mapping)
 * or a JSON body must look like. Objects are strict so unknown keys surface as
 * `unrecognized_keys` issues, which the validator turns into warnings.
 */

const SEMVER_RE =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

/** Durations are bounded (1 ms to a Node.js timer's 24.8 days; periods to 366 days), sizes 1 byte to 4 GiB. */
const duration = durationMs();
const period = durationMs({ max: MAX_PERIOD_MS });
const size = sizeBytes();

export const agentNameSchema = z
  .string({ error: 'expected a string' })
  .regex(AGENT_NAME_RE, {
    message:
      'expected a name that starts with a letter or digit and has only letters, digits, "-", "_", "." or single spaces between words (at most 64 characters)',
  })
  .refine((s) => !s.includes('..'), { message: 'a name must not contain ".."' })
  .transform((s) => s as AgentName);

const capabilitySchema = z
  .string({ error: 'expected a string' })
  .regex(CAPABILITY_RE, {
    message: 'expected lower-case letters and digits joined by "-", "_" or "." (e.g. "data-analysis")',
  })
  .transform((s) => s as Capability);

const toolSchema = z
  .string({ error: 'expected a string' })
  .regex(TOOL_NAME_RE, { message: 'expected a tool name such as "http_client" or "server.tool"' })
  .transform((s) => s as ToolName);

const llmSchema = z.strictObject({
  provider: z.string().min(1).optional(),
  model: z.string().min(1).optional(),
  temperature: z.number().min(0).max(2).optional(),
  max_tokens: z.number().int().positive().optional(),
  top_p: z.number().min(0).max(1).optional(),
  stop: z.array(z.string()).optional(),
  fallbacks: z.array(z.string().min(1)).optional(),
});

const memorySchema = z.strictObject(
  {
    enabled: z.boolean().default(false),
    scope: z
      .enum(['agent', 'agent-only', 'workspace', 'global'], { error: 'expected one of "agent", "workspace", "global"' })
      .default('agent')
      .transform((s) => (s === 'agent-only' ? 'agent' : s)),
    auto_store: z.boolean().default(false),
    search_limit: z.number().int().min(1).max(100).default(5),
    min_similarity: z.number().min(0).max(1).default(0.5),
  },
  { error: 'expected a table such as [memory] enabled = true, or (Claude Code) one of "user", "project", "local"' },
);

const limitsSchema = z
  .strictObject({
    max_turns: z.number().int().min(1).max(100).default(10),
    timeout: duration.optional(),
    timeout_ms: z
      .number()
      .int()
      .positive()
      .max(MAX_TIMER_MS, {
        message: `expected at most ${MAX_TIMER_MS} ms (about 24.8 days, the longest Node.js timer)`,
      })
      .optional(),
    max_message_size: size.default(256 * 1024),
  })
  .transform(({ max_turns, timeout, timeout_ms, max_message_size }) => ({
    max_turns,
    timeout_ms: timeout_ms ?? timeout ?? 120_000,
    max_message_size,
  }));

const conversationSchema = z
  .strictObject({
    history_limit: z.number().int().min(0).max(1000).default(20),
    max_turns: z.number().int().min(1).max(10_000).default(50),
    ttl: period.optional(),
    ttl_ms: z
      .number()
      .int()
      .positive()
      .max(MAX_PERIOD_MS, { message: `expected at most ${MAX_PERIOD_MS} ms (366 days)` })
      .optional(),
  })
  .transform(({ history_limit, max_turns, ttl, ttl_ms }) => ({
    history_limit,
    max_turns,
    ttl_ms: ttl_ms ?? ttl ?? 3_600_000,
  }));

const executionSchema = z.strictObject({
  isolation: z
    .enum(ISOLATION_MODES as [string, ...string[]], { error: 'expected "context", "worker" or "process"' })
    .optional(),
  require_approval: z
    .array(
      z.string().regex(TOOL_NAME_RE, { message: 'expected a tool name or pattern such as "workspace.bash" or "fs.*"' }),
      {
        error: 'expected a list of tool names or patterns, e.g. require_approval = ["workspace.bash"]',
      },
    )
    .max(256)
    .optional(),
});

const bidFieldSchema = z
  .strictObject(
    {
      type: z.enum(['number', 'integer', 'string', 'boolean'], {
        error: 'expected "number", "integer", "string" or "boolean"',
      }),
      description: z.string().max(1000).optional(),
      required: z.boolean({ error: 'expected true or false' }).default(false),
      minimum: z.number({ error: 'expected a number' }).optional(),
      maximum: z.number({ error: 'expected a number' }).optional(),
    },
    { error: 'expected a table such as [messaging.bid_fields.delivery_days] type = "integer"' },
  )
  .refine((f) => f.minimum === undefined || f.maximum === undefined || f.minimum <= f.maximum, {
    path: ['maximum'],
    message: 'must not be below minimum',
  })
  .refine((f) => (f.minimum === undefined && f.maximum === undefined) || f.type === 'number' || f.type === 'integer', {
    path: ['type'],
    message: 'minimum and maximum apply only to "number" and "integer" fields',
  });

/** `[messaging.bid_fields]`: NAME → its field; names are identifiers that are not a standard bid field. */
const bidFieldsSchema = z
  .record(
    z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,63}$/, {
        message: 'expected a field name of lowercase letters, digits and underscores, e.g. delivery_days',
      })
      .refine((n) => !(STANDARD_BID_FIELDS as readonly string[]).includes(n), {
        message: `is a standard bid field (${STANDARD_BID_FIELDS.join(', ')}); choose another name`,
      }),
    bidFieldSchema,
  )
  .refine((r) => Object.keys(r).length <= 32, { message: 'expected at most 32 bid fields' });

const messagingSchema = z.strictObject({
  protocols: z
    .array(
      z.enum(INTERACTION_PROTOCOLS, {
        error: `expected one of ${INTERACTION_PROTOCOLS.map((p) => `"${p}"`).join(', ')}`,
      }),
    )
    .default([]),
  ontologies: z.array(z.string().min(1).max(256)).default([]),
  languages: z.array(z.string().min(1).max(256)).default([]),
  max_concurrency: z.number().int().min(1).max(1000).optional(),
  send_to: z
    .array(agentNameSchema, { error: 'expected an array of agent names, e.g. send_to = ["reviewer"]' })
    .max(1000)
    .optional(),
  bid_fields: bidFieldsSchema.optional(),
});

/** `[[rollout.checks]]`: a request the new version must answer as expected before its canary starts. */
const rolloutCheckSchema = z.strictObject({
  name: z.string().min(1).max(128).optional(),
  request: z.string({ error: 'expected the request text' }).min(1).max(65_536),
  expect: z
    .string()
    .min(1)
    .max(4096)
    .refine(
      (p) => {
        try {
          new RegExp(p, 'i');
          return true;
        } catch {
          return false;
        }
      },
      { message: 'expected a valid regular expression' },
    )
    .optional(),
  expect_json: z.record(z.string(), z.unknown()).optional(),
});

const rolloutSchema = z
  .strictObject({
    strategy: z
      .enum(['direct', 'blue-green', 'canary', 'shadow'], {
        error: 'expected "direct", "blue-green", "canary" or "shadow"',
      })
      .optional(),
    stages: z.array(z.number().int().min(1).max(100)).min(1).max(20).optional(),
    hold: numberOrText.pipe(durationMs({ min: 0 })).optional(),
    min_requests: z.number().int().min(1).max(1_000_000).optional(),
    max_error_rate_increase: z.number().min(0).max(1).optional(),
    max_latency_ratio: z.number().min(1).max(1000).optional(),
    checks: z.array(rolloutCheckSchema).max(20).default([]),
    judge: agentNameSchema.optional(),
    similarity: z.number().min(0).max(1).optional(),
  })
  .transform(({ hold, ...r }) => ({ ...r, ...(hold !== undefined && { hold_ms: hold }) }));

/** `[wasm]`: the module, its entry point and the sandbox limits of one call. */
const wasmSchema = z
  .strictObject(
    {
      module: z
        .string({ error: 'expected the path of a .wasm file, e.g. module = "pricer.wasm"' })
        .min(1, { message: 'must not be empty' })
        .max(4096),
      entry: z
        .string({ error: 'expected the name of an exported function' })
        .regex(/^[A-Za-z_][A-Za-z0-9_.$-]{0,127}$/, { message: 'expected the name of an exported function' })
        .default('handle'),
      // The tool sandbox's limits: a module agent runs in the same sandbox as a tool server.
      ...wasmLimitFields,
    },
    { error: 'expected a table such as [wasm] module = "pricer.wasm"' },
  )
  .transform(({ module, entry, ...limits }) => ({ module, entry, limits: wasmLimits(limits) }));

/** Upstream's `[tools] available = [...]` form. */
const toolsTableSchema = z.strictObject({ available: z.array(toolSchema) }).transform((t) => t.available);

export const agentDocumentSchema = z
  .strictObject({
    name: agentNameSchema,
    version: z
      .string({ error: 'expected a string' })
      .regex(SEMVER_RE, { message: 'expected a semantic version such as "1.0.0"' })
      .default('1.0.0'),
    description: z.string({ error: 'expected a string' }).default(''),
    capabilities: z.array(capabilitySchema, { error: 'expected an array of strings' }).optional(),
    tools: z
      .union([z.array(toolSchema), toolsTableSchema], {
        error: 'expected an array of tool names, e.g. tools = ["http_client"]',
      })
      .default([]),
    // Required unless [wasm] names a module (checked below, as a missing field).
    system_prompt: z.string({ error: 'expected a string' }).min(1, { message: 'must not be empty' }).optional(),
    user_prompt_template: z.string({ error: 'expected a string' }).default(DEFAULT_USER_PROMPT_TEMPLATE),
    documentation: z.string({ error: 'expected a string' }).optional(),
    llm: llmSchema.default({}),
    memory: memorySchema.default({
      enabled: false,
      scope: 'agent',
      auto_store: false,
      search_limit: 5,
      min_similarity: 0.5,
    }),
    parameters: z.record(z.string(), z.unknown()).default({}),
    limits: limitsSchema.default({ max_turns: 10, timeout_ms: 120_000, max_message_size: 256 * 1024 }),
    conversation: conversationSchema.default({ history_limit: 20, max_turns: 50, ttl_ms: 3_600_000 }),
    execution: executionSchema.default({}),
    messaging: messagingSchema.default({ protocols: [], ontologies: [], languages: [] }),
    metadata: z.record(z.string(), z.unknown()).default({}),
    rollout: rolloutSchema.optional(),
    wasm: wasmSchema.optional(),
  })
  // Run even when other fields are wrong, so a missing prompt is reported with them.
  .refine(
    (d) => {
      const doc = d as { system_prompt?: unknown; wasm?: unknown } | null;
      return typeof doc !== 'object' || doc === null || doc.system_prompt !== undefined || doc.wasm !== undefined;
    },
    {
      path: ['system_prompt'],
      message: 'required field "system_prompt" is missing',
      params: { missing: true },
      when: () => true,
    },
  )
  .transform((d): AgentDefinition => {
    const def: AgentDefinition = {
      name: d.name,
      version: d.version,
      description: d.description,
      capabilities: d.capabilities ?? [],
      tools: [...new Set(d.tools)],
      system_prompt: d.system_prompt ?? '',
      user_prompt_template: d.user_prompt_template,
      llm: d.llm,
      memory: d.memory as AgentDefinition['memory'],
      parameters: d.parameters,
      limits: d.limits,
      conversation: d.conversation,
      execution: d.execution as AgentDefinition['execution'],
      messaging: d.messaging as AgentDefinition['messaging'],
      metadata: d.metadata,
    };
    if (d.documentation !== undefined) def.documentation = d.documentation;
    if (d.rollout !== undefined) def.rollout = stripUndefined(d.rollout);
    if (d.wasm !== undefined) def.wasm = d.wasm;
    return def;
  });

/** Top-level keys of an agent document, for typo suggestions and misplaced-key detection. */
export const TOP_LEVEL_KEYS = [
  'name',
  'version',
  'description',
  'capabilities',
  'tools',
  'system_prompt',
  'user_prompt_template',
  'documentation',
  'llm',
  'memory',
  'parameters',
  'limits',
  'conversation',
  'execution',
  'messaging',
  'metadata',
  'rollout',
  'wasm',
  'disallowed_tools',
  'permission_mode',
] as const;

/** Top-level keys that are plain values (not tables), which a TOML table header can swallow. */
export const TOP_LEVEL_VALUE_KEYS = [
  'name',
  'version',
  'description',
  'capabilities',
  'tools',
  'system_prompt',
  'user_prompt_template',
  'documentation',
  'disallowed_tools',
  'permission_mode',
] as const;

/** Keys known inside each table, for "did you mean" suggestions. */
export const TABLE_KEYS: Record<string, readonly string[]> = {
  llm: ['provider', 'model', 'temperature', 'max_tokens', 'top_p', 'stop', 'fallbacks'],
  memory: ['enabled', 'scope', 'auto_store', 'search_limit', 'min_similarity'],
  limits: ['max_turns', 'timeout', 'timeout_ms', 'max_message_size'],
  conversation: ['history_limit', 'max_turns', 'ttl', 'ttl_ms'],
  execution: ['isolation', 'require_approval'],
  messaging: ['protocols', 'ontologies', 'languages', 'max_concurrency', 'send_to', 'bid_fields'],
  tools: ['available'],
  wasm: ['module', 'entry', ...WASM_LIMIT_KEYS],
  rollout: [
    'strategy',
    'stages',
    'hold',
    'min_requests',
    'max_error_rate_increase',
    'max_latency_ratio',
    'checks',
    'judge',
    'similarity',
  ],
};

/** Optional fields left out rather than written as undefined (exactOptionalPropertyTypes). */
function stripUndefined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}
