import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { readScopeOf } from '../../auth/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { parseDuration } from '../../shared/units.js';
import { BUILTIN_GROUP, HOST_GROUP, TOOL_SOURCE_KINDS, type ToolCatalogue } from '../../tools/index.js';
import type { ToolAuditQuery, ToolAuditReads } from '../../audit/index.js';
import { CALL_OUTCOMES, type CallOutcome } from '../../audit/index.js';
import type { ToolServerManager } from '../../tools/servers/manager.js';
import { requestTraceparent } from '../request-trace.js';
import { errorEnvelopeSchema, issueSchema } from '../schemas.js';
import { docResponses, onFirstRequest, onUse } from '../lazy-schemas.js';

const traceparentField = (traceparent: string | undefined) => (traceparent === undefined ? {} : { traceparent });

/** Deploy bodies carry the module base64-encoded: they may be larger than `[server] max_body_size`. */
export const TOOL_DEPLOY_BODY_LIMIT = 32 * 1024 * 1024;

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

// ------------------------------------------------------------------------------ schemas

const mcpStatusSchema = onUse(() =>
  z
    .object({
      name: z.string(),
      transport: z.string().describe('stdio or http'),
      target: z.string().describe('the command line (stdio) or the URL without credentials (http)'),
      state: z.string(),
      tool_names: z.array(z.string()),
      last_error: z.string().nullable(),
      last_error_at: z.string().nullable(),
      connected_at: z.string().nullable(),
      attempts: z.number().int().describe('failed attempts since the last successful connection'),
      next_retry_at: z.string().nullable(),
      reconnects: z.number().int().describe('successful connections after the first one'),
      server_info: z.object({ name: z.string(), version: z.string() }).nullable(),
      conflicts: z.array(z.string()).describe('tools not registered because another tool holds the name'),
      elicitations_refused: z
        .number()
        .int()
        .optional()
        .describe('elicitation/create requests refused (agents run unattended)'),
      auth: z
        .object({
          grant: z.string(),
          client: z.string(),
          state: z.string().describe('authorized | needs_authorization | none'),
          token_expires_at: z.string().nullable(),
          refreshable: z.boolean(),
          scopes: z.array(z.string()),
          redirect_port: z.number().int().nullable(),
          login_in_progress: z.boolean(),
          login_command: z.string().nullable(),
        })
        .nullable()
        .optional()
        .describe('[mcp_servers.NAME.oauth]: the OAuth state (never a token)'),
    })
    .describe('MCP servers only: the connection (as GET /api/v1/mcp/servers shows it)'),
);

const summarySchema = onUse(() =>
  z.object({
    name: z
      .string()
      .describe(`tool server or MCP server name; "${BUILTIN_GROUP}" and "${HOST_GROUP}" group the single-name tools`),
    kind: z
      .enum(TOOL_SOURCE_KINDS as [string, ...string[]])
      .describe(
        'wasm | javascript: tool server packages; mcp: a mounted MCP server; builtin: calculator, current_time, llm.chat; host: send_message and the memory tools',
      ),
    version: z.string().nullable(),
    description: z.string().nullable(),
    origin: z
      .enum(['builtin', 'api', 'config', 'host'])
      .describe(
        "builtin: shipped with the server (tools/builtin/ or a built-in tool); api: deployed through the API (kept in the data dir); config: [mcp_servers.NAME] in caxton.toml; host: the server's own host tools",
      ),
    state: z
      .string()
      .describe(
        'tool servers: loading (starting in the background; its tools are registered and a call waits for it) | loaded | failed (could not be loaded, see error; no tools registered); MCP servers: connecting | ready | failed | reconnecting | needs_authorization | disabled | closed; groups: loaded',
      ),
    error: z.string().nullable().describe('why a tool server failed to load, or the last error of an MCP server'),
    tools: z
      .array(z.string())
      .describe('registered tool names (SERVER.tool; the single names for the builtin and host groups)'),
    deployed_at: z.string().nullable(),
    mcp: mcpStatusSchema().optional(),
  }),
);

const viewSchema = onUse(() =>
  summarySchema().extend({
    tool_specs: z.array(
      z.object({
        name: z.string(),
        description: z.string(),
        input_schema: z.record(z.string(), z.unknown()),
        output_schema: z.record(z.string(), z.unknown()).optional(),
      }),
    ),
    limits: z
      .object({
        memory: z.number(),
        fuel: z.number(),
        timeout_ms: z.number(),
        max_input: z.number(),
        max_output: z.number(),
        max_state: z.number(),
      })
      .nullable()
      .describe('effective limits: the smaller of the manifest and [tools.NAME.limits]'),
    permissions: z
      .unknown()
      .describe('requested by the manifest and granted by the operator; only the intersection is usable'),
    warnings: z.array(issueSchema()),
    digest: z.string().nullable().describe('SHA-256 of the module'),
    module_bytes: z.number().int().nullable(),
    stats: z
      .object({ calls: z.number(), failures: z.number(), instantiations: z.number(), memory_bytes: z.number() })
      .nullable(),
    path: z.string().nullable(),
  }),
);

const deployBody = onUse(() =>
  z
    .object({
      manifest: z
        .string({ error: 'expected the text of caxton-tool.toml' })
        .min(1, { error: 'must not be empty' })
        .describe('the text of caxton-tool.toml'),
      wasm: z
        .string({ error: 'expected the module, base64-encoded' })
        .describe(
          'the module file, base64-encoded: the WebAssembly module, or the JavaScript source when the manifest\'s module ends in .js (runtime "quickjs")',
        ),
    })
    .describe('A tool server package: the manifest text and the module'),
);

const nameParams = onUse(() => z.object({ name: z.string().min(1).max(200).describe('tool server name') }));
const callParams = onUse(() => z.object({ server: z.string().min(1).max(200), tool: z.string().min(1).max(200) }));

const callBody = onUse(() =>
  z
    .object({
      args: z
        .record(z.string(), z.unknown(), { error: 'expected a JSON object of arguments' })
        .default({})
        .describe('the tool arguments (checked against its input schema)'),
      timeout_ms: z
        .number({ error: 'expected milliseconds' })
        .int()
        .min(1)
        .max(600_000)
        .optional()
        .describe('longest the call may take (default: the tool limit plus a second)'),
    })
    .default({ args: {} }),
);

const callResultSchema = onUse(() =>
  z.object({
    tool: z.string(),
    content: z.string().describe('what the model would see'),
    is_error: z.boolean(),
    outcome: z.string().describe(`ok, or why it failed: ${CALL_OUTCOMES.filter((o) => o !== 'ok').join(', ')}`),
    duration_us: z.number(),
    fuel_used: z.number(),
    memory_bytes: z.number(),
    execution_id: z.string(),
    kind: z
      .enum(TOOL_SOURCE_KINDS as [string, ...string[]])
      .optional()
      .describe('the kind of the source that ran the call'),
    json: z.unknown().optional().describe('content parsed as JSON, when it is JSON'),
  }),
);

/** A time bound: ISO 8601, milliseconds since the epoch, or a duration ago ("15m", "2h"). */
function timeBound(field: string) {
  return z
    .string()
    .transform((s, ctx) => {
      if (/^\d{10,}$/.test(s)) return Number(s);
      const ago = /^\d/.test(s) && !s.includes('-') ? parseDuration(s) : undefined;
      if (ago !== undefined) return Date.now() - ago;
      const t = Date.parse(s);
      if (Number.isNaN(t)) {
        ctx.addIssue({
          code: 'custom',
          message: `expected an ISO 8601 time, milliseconds since the epoch, or a duration ago such as "15m"`,
        });
        return z.NEVER;
      }
      return t;
    })
    .optional()
    .describe(`${field}: ISO 8601 time, epoch milliseconds, or a duration ago ("15m")`);
}

const auditQuery = onUse(() =>
  z.object({
    agent: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe('calls made for this agent ("api": calls through this API, "mcp": through /mcp)'),
    tool: z.string().min(1).max(300).optional().describe('a tool (SERVER.tool) or every tool of a server (SERVER.*)'),
    server: z.string().min(1).max(200).optional(),
    conversation: z.string().min(1).max(200).optional(),
    principal: z.string().min(1).max(300).optional().describe('calls made for this authenticated caller (key:ci...)'),
    outcome: z
      .enum(['failed', ...CALL_OUTCOMES] as [CallOutcome | 'failed', ...(CallOutcome | 'failed')[]], {
        error: `expected one of: ${[...CALL_OUTCOMES, 'failed'].join(', ')}`,
      })
      .optional()
      .describe('"failed": every outcome but ok'),
    since: timeBound('since'),
    until: timeBound('until'),
    before_id: z.coerce
      .number({ error: 'expected a record id' })
      .int()
      .min(1)
      .optional()
      .describe('records older than this id (paging)'),
    limit: z.coerce
      .number({ error: 'expected a number' })
      .int({ error: 'expected a whole number' })
      .min(1, { error: 'at least 1' })
      .max(1000, { error: 'at most 1000' })
      .default(100),
  }),
);

const auditRecordSchema = onUse(() =>
  z.object({
    id: z.number().int(),
    time: z.number().describe('ms since the epoch'),
    agent: z.string(),
    execution_id: z.string().optional(),
    conversation_id: z.string().optional(),
    server: z.string(),
    tool: z.string(),
    args_digest: z.string().describe('SHA-256 of the arguments'),
    outcome: z.string(),
    error: z.string().optional(),
    duration_us: z.number(),
    fuel_used: z.number(),
    memory_bytes: z.number(),
    input_bytes: z.number(),
    output_bytes: z.number(),
    principal: z.string().optional().describe('the authenticated caller whose request led to the call'),
  }),
);

const errors = { 400: errorEnvelopeSchema, 404: errorEnvelopeSchema };

// ------------------------------------------------------------------------------ routes

/**
 * Tool servers (WebAssembly packages) and the audit log of tool calls: deploy, list, show, remove,
 * call, audit. A thin layer over ToolServerManager and ToolAuditStore.
 */
export async function toolRoutes(
  app: FastifyInstance,
  opts: { tools: ToolServerManager; catalogue: ToolCatalogue; audit: ToolAuditReads; bodyLimit: number },
): Promise<void> {
  deployAndListRoutes(app, opts.tools, opts.catalogue, opts.bodyLimit);
  auditRoute(app, opts.audit);
  serverRoutes(app, opts.tools, opts.catalogue);
}

/** Deploy a tool server package, and list every tool source. */
function deployAndListRoutes(
  app: FastifyInstance,
  tools: ToolServerManager,
  catalogue: ToolCatalogue,
  bodyLimit: number,
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    '/tools',
    {
      bodyLimit: Math.max(bodyLimit, TOOL_DEPLOY_BODY_LIMIT),
      schema: {
        summary: 'Deploy (or replace) a tool server package',
        description:
          'JSON body `{"manifest": "<caxton-tool.toml text>", "wasm": "<module file, base64>"}` (for a JavaScript package, the .js source base64-encoded). 201 when new, 200 when it replaced a deployed package of the same name. ' +
          'Nothing is stored or changed unless the manifest is valid, the module loads and its tools can be registered. ' +
          'Errors: 400 invalid_request, 422 validation_failed (manifest errors name file, line, column and field in details.errors; invalid module), 409 conflict (a built-in server or another tool holds the name).',
        tags: ['tools'],
        body: onFirstRequest(() => deployBody()),
        response: docResponses(() => ({
          200: viewSchema(),
          201: viewSchema(),
          400: errorEnvelopeSchema,
          409: errorEnvelopeSchema,
          413: errorEnvelopeSchema,
          422: errorEnvelopeSchema,
        })),
      },
    },
    async (req, reply) => {
      const b64 = req.body.wasm.replace(/\s+/g, '');
      if (b64.length % 4 === 1 || !BASE64_RE.test(b64)) {
        throw new CaxtonError('invalid_request', 'invalid body: wasm: expected the module encoded as base64', {
          issues: [{ field: 'wasm', message: 'is not base64' }],
        });
      }
      const wasm = new Uint8Array(Buffer.from(b64, 'base64'));
      const res = await tools.deploy(req.body.manifest, wasm);
      reply.header('location', `/api/v1/tools/${encodeURIComponent(res.server.name)}`);
      return reply.code(res.created ? 201 : 200).send(res.server);
    },
  );

  r.get(
    '/tools',
    {
      schema: {
        summary: 'List every tool source: tool servers, mounted MCP servers, built-in and host tools',
        description: `Each source with its kind and state. Single-name tools are grouped as "${BUILTIN_GROUP}" (calculator, current_time, llm.chat) and "${HOST_GROUP}" (send_message, memory tools).`,
        tags: ['tools'],
        response: docResponses(() => ({ 200: z.object({ servers: z.array(summarySchema()) }) })),
      },
    },
    async () => ({ servers: catalogue.list() }),
  );
}

/** The audit log of tool calls. */
function auditRoute(app: FastifyInstance, audit: ToolAuditReads): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/tools/audit',
    {
      schema: {
        summary: 'The audit log of tool calls, newest first',
        description:
          'Every call of a WebAssembly, JavaScript or MCP tool, and of the workspace, web and todo tools: time, agent, conversation, tool, SHA-256 of the arguments, outcome, duration, fuel and memory. Page with before_id = next_before_id.',
        tags: ['tools'],
        querystring: onFirstRequest(() => auditQuery()),
        response: docResponses(() => ({
          200: z.object({ records: z.array(auditRecordSchema()), next_before_id: z.number().int().nullable() }),
          400: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const q = req.query;
      const scope = readScopeOf(req.principal);
      const query: ToolAuditQuery = { limit: q.limit, ...(scope !== undefined && { agents: scope }) };
      if (q.agent !== undefined) query.agent = q.agent;
      if (q.tool !== undefined) query.tool = q.tool;
      if (q.server !== undefined) query.server = q.server;
      if (q.conversation !== undefined) query.conversation_id = q.conversation;
      if (q.principal !== undefined) query.principal = q.principal;
      if (q.outcome !== undefined) query.outcome = q.outcome;
      if (q.since !== undefined) query.since = q.since;
      if (q.until !== undefined) query.until = q.until;
      if (q.before_id !== undefined) query.before_id = q.before_id;
      const records = await audit.find(query);
      return { records, next_before_id: records.length === q.limit ? records.at(-1)!.id : null };
    },
  );
}

/** One tool source: show, remove, and call one of its tools. */
function serverRoutes(app: FastifyInstance, tools: ToolServerManager, catalogue: ToolCatalogue): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/tools/:name',
    {
      schema: {
        summary:
          'One tool source: its tools; for a tool server its limits, permissions and stats; for an MCP server its connection (state, last error, reconnects)',
        tags: ['tools'],
        params: onFirstRequest(() => nameParams()),
        response: docResponses(() => ({ 200: viewSchema(), ...errors })),
      },
    },
    async (req) => {
      const v = catalogue.view(req.params.name);
      if (!v)
        throw new CaxtonError(
          'tool_not_found',
          `no tool server named "${req.params.name}" (nor an MCP server, "${BUILTIN_GROUP}" or "${HOST_GROUP}")`,
          { name: req.params.name },
        );
      return v;
    },
  );

  r.delete(
    '/tools/:name',
    {
      schema: {
        summary: 'Remove a deployed tool server',
        tags: ['tools'],
        params: onFirstRequest(() => nameParams()),
        response: docResponses(() => ({ 200: z.object({ removed: z.string() }), ...errors, 409: errorEnvelopeSchema })),
      },
    },
    async (req) => {
      await tools.remove(req.params.name);
      return { removed: req.params.name };
    },
  );

  r.post(
    '/tools/:server/:tool/call',
    {
      schema: {
        summary: 'Call a tool directly (audited as agent "api")',
        description:
          `Any source: a tool server's or MCP server's tool (\`think/sequentialthinking\`), or a single-name tool through its group (\`${BUILTIN_GROUP}/calculator\`, \`${HOST_GROUP}/send_message\`; \`llm/chat\` also reaches llm.chat). ` +
          'Body `{"args": {...}, "timeout_ms"?: N}`. 200 with the result; a tool that fails (invalid arguments, denied host or path, fuel, timeout, MCP server unavailable...) answers 200 with is_error true and the outcome. 404 tool_not_found for an unknown source or tool.',
        tags: ['tools'],
        params: onFirstRequest(() => callParams()),
        body: onFirstRequest(() => callBody()),
        response: docResponses(() => ({ 200: callResultSchema(), ...errors })),
      },
    },
    async (req) => {
      const { server, tool } = req.params;
      const res = await catalogue.call(server, tool, req.body.args, {
        ...(req.body.timeout_ms !== undefined && { timeoutMs: req.body.timeout_ms }),
        ...(req.principal && { principal: req.principal.id }),
        ...traceparentField(requestTraceparent(req)),
      });
      let json: unknown;
      try {
        json = res.is_error ? undefined : JSON.parse(res.content);
      } catch {
        json = undefined;
      }
      return { ...res, ...(json !== undefined && { json }) };
    },
  );
}
