import { CaxtonError } from '../shared/errors.js';
import { z } from 'zod';
import { onUse } from './lazy-schemas.js';

/**
 * Request and response schemas: they validate requests and generate /api/v1/openapi.json. The
 * schemas only responses use are made on first use (lazy-schemas.ts): call them.
 */

/** The `limit` and `cursor` of a keyset-paged list: at most `max` per page, 50 by default. */
export const pageQueryFields = (max: number) => ({
  limit: z.coerce
    .number({ error: 'expected a number' })
    .int({ error: 'expected a whole number' })
    .min(1, { error: 'at least 1' })
    .max(max, { error: `at most ${max}` })
    .default(50),
  cursor: z
    .string()
    .regex(/^\d{1,15}$/, { error: 'expected the next_cursor of a previous page' })
    .optional()
    .describe('the next_cursor of the previous page'),
});

/** One tool call as an execution record keeps it (GET /executions/{id}, a chat thread's turns). */
export const recordedToolCallSchema = onUse(() =>
  z.object({
    id: z.string(),
    name: z.string(),
    arguments: z.string().describe('JSON text, cut at 4 KiB with a marker'),
    result: z.string(),
    outcome: z.enum(['ok', 'error']),
    duration_ms: z.number(),
  }),
);

export const errorEnvelopeSchema = z
  .object({
    error: z.object({
      code: z.string().describe('stable machine-readable error code'),
      message: z.string(),
      details: z.unknown(),
      request_id: z.string(),
    }),
  })
  .describe('Every error response');

export const issueSchema = onUse(() =>
  z.object({
    severity: z.enum(['error', 'warning']),
    code: z.string(),
    message: z.string(),
    file: z.string().optional(),
    line: z.number().int().optional(),
    column: z.number().int().optional(),
    field: z.string().optional(),
    expected: z.string().optional(),
    suggestion: z.string().optional(),
  }),
);

export const agentNameParams = onUse(() =>
  z.object({
    name: z.string().min(1).max(200).describe('agent name (case-insensitive)'),
  }),
);

export const listAgentsQuery = onUse(() =>
  z.object({
    capability: z.string().min(1).max(200).optional().describe('only agents providing this capability'),
    limit: z.coerce.number().int().min(1).max(10_000).default(1000),
    offset: z.coerce.number().int().min(0).default(0),
  }),
);

const originSchema = onUse(() =>
  z.union([
    z.object({ kind: z.literal('file'), path: z.string() }),
    z.object({ kind: z.literal('a2a'), url: z.string().describe("a remote A2A agent's base URL ([a2a_agents.NAME])") }),
    z.object({ kind: z.literal('api') }),
  ]),
);

export const agentSummarySchema = onUse(() =>
  z.object({
    name: z.string(),
    version: z.string(),
    description: z.string(),
    capabilities: z.array(z.string()),
    tools: z.array(z.string()),
    format: z.enum(['toml', 'markdown', 'json']),
    origin: originSchema(),
    revision: z.number().int(),
    deployed_at: z.string(),
    updated_at: z.string(),
  }),
);

export const agentDetailSchema = onUse(() =>
  agentSummarySchema().extend({
    definition: z.record(z.string(), z.unknown()).describe('the full normalized AgentDefinition'),
    unresolved_tools: z
      .array(z.object({ tool: z.string(), message: z.string(), suggestion: z.string().optional() }))
      .optional()
      .describe(
        'GET of one agent: the tools entries this server does not offer now (a tool server removed, an MCP server unmounted), each with why and what to do',
      ),
    ungranted_tools: z
      .array(z.object({ tool: z.string(), message: z.string(), suggestion: z.string().optional() }))
      .optional()
      .describe(
        'GET of one agent: the tools entries this server offers but caxton.toml does not grant (Write without [workspace] write = true...), each naming the setting',
      ),
    unlisted_tools: z
      .object({ setting: z.enum(['granted', 'none']), tools: z.array(z.string()) })
      .optional()
      .describe(
        'GET of a Claude Code agent with no tools key: what it runs with under [agents.claude] unlisted_tools ("granted": the tools caxton.toml grants; "none": no tools)',
      ),
  }),
);

export const agentListSchema = onUse(() =>
  z.object({
    agents: z.array(agentSummarySchema()),
    total: z.number().int(),
    limit: z.number().int(),
    offset: z.number().int(),
  }),
);

/** A rollout of an agent's new version (src/agents/rollouts/rollouts.ts; checked against Rollout in routes/agent-versions-routes.ts). */
export const rolloutSchema = onUse(() =>
  z.object({
    id: z.number().int(),
    agent: z.string(),
    strategy: z.enum(['blue-green', 'canary', 'shadow']),
    stable_version: z.number().int(),
    candidate_version: z.number().int(),
    state: z.enum(['running', 'promoted', 'rolled_back']),
    started_at: z.string(),
    started_by: z.string().nullable(),
    ended_at: z.string().nullable(),
    ended_by: z.string().nullable(),
    reason: z.string().nullable(),
    plan: z
      .object({
        stages: z.array(z.number().int()),
        hold_ms: z.number(),
        min_requests: z.number().int(),
        max_error_rate_increase: z.number(),
        max_latency_ratio: z.number(),
      })
      .nullable()
      .describe('canary only: stages (percent of new conversations), hold time per stage, and the rollback thresholds'),
    stage: z.number().int().describe('canary only: the stage reached (0-based index into plan.stages)'),
    stage_started_at: z.string(),
  }),
);

export const deployResponseSchema = onUse(() =>
  z.object({
    agent: agentDetailSchema(),
    warnings: z.array(issueSchema()),
    /** The agent version this deploy recorded (or, when unchanged, the current one). */
    version: z.number().int().optional(),
    /** The body equals the deployed version: nothing was stored or changed. */
    unchanged: z.boolean().optional(),
    message: z.string().optional(),
    /** A blue-green deploy: the rollout it started (see GET /api/v1/agents/{name}/rollout). */
    rollout: rolloutSchema().optional(),
  }),
);

export const validateResponseSchema = onUse(() =>
  z.object({
    valid: z.boolean(),
    format: z.enum(['toml', 'markdown', 'json']),
    name: z.string().optional(),
    errors: z.array(issueSchema()),
    warnings: z.array(issueSchema()),
  }),
);

export const capabilityListSchema = onUse(() =>
  z.object({
    capabilities: z.array(z.object({ capability: z.string(), agents: z.array(z.string()) })),
  }),
);

export const healthSchema = onUse(() =>
  z.object({
    status: z.enum(['ok', 'starting', 'stopping']),
    degraded: z
      .array(z.string())
      .optional()
      .describe(
        'configuration fields that will make work fail (a provider with no key, a missing script); GET /api/v1/status/overview says why and how to fix them',
      ),
  }),
);

/** GET /ready: `unavailable` when the node started but a dependency does not answer. */
export const readySchema = onUse(() =>
  z.object({
    status: z.enum(['ok', 'starting', 'stopping', 'unavailable']),
    dependencies: z.array(z.object({ name: z.string(), ok: z.boolean() })).optional(),
    /** Per read model written off the delivery path: items recorded and not yet written. */
    lag: z.record(z.string(), z.number().int().nonnegative()).optional(),
  }),
);

export const dependencyStateSchema = onUse(() =>
  z.object({
    name: z.string(),
    ok: z.boolean(),
    reason: z.string().optional(),
    checked_at: z.string(),
  }),
);

export const statusSchema = onUse(() =>
  z.object({
    version: z.string(),
    uptime_seconds: z.number(),
    ready: z.boolean(),
    /** Each outside dependency /ready checks, with why it failed. */
    dependencies: z.array(dependencyStateSchema()).optional(),
    agents: z.object({
      total: z.number().int(),
      from_files: z.number().int(),
      from_api: z.number().int(),
      capabilities: z.number().int(),
    }),
    agent_files: z.object({
      loaded: z.number().int(),
      invalid: z.array(z.object({ path: z.string(), agent: z.string().optional(), errors: z.array(issueSchema()) })),
      ignored: z.array(z.string()),
    }),
    memory: z.object({ rss_bytes: z.number(), heap_used_bytes: z.number() }),
    config: z.object({ file: z.string().nullable(), agents_dir: z.string(), data_dir: z.string() }),
  }),
);

export const agentQueryContentTypes = ['application/toml', 'text/markdown', 'application/json'] as const;

/**
 * The request's Idempotency-Key header, checked: printable ASCII, at most 200 characters (it becomes
 * part of a stored run's key). Read in the handler rather than through a route's `headers` schema,
 * whose parsed object would stand in for every other header.
 */
export function idempotencyKeyOf(headers: Record<string, string | string[] | undefined>): string | undefined {
  const v = headers['idempotency-key'];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^[\x21-\x7e]{1,200}$/.test(v))
    throw new CaxtonError(
      'invalid_request',
      'the Idempotency-Key header must be 1 to 200 printable ASCII characters without spaces, given once',
      { field: 'Idempotency-Key' },
    );
  return v;
}
