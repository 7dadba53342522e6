import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { agentsVisibleTo, capabilitiesVisibleTo } from '../../auth/index.js';
import {
  DEPLOY_CHECK_CODES,
  listsNoTools,
  unlistedToolsOf,
  type AgentFormat,
  type AgentService,
  type DeployedAgent,
  type DeployOutcome,
} from '../../agents/index.js';
import { deployActor } from '../../auth/index.js';
import { requestTraceparent } from '../request-trace.js';
import { MAX_INPUT_DEPTH } from '../../shared/depth.js';
import { CaxtonError } from '../../shared/errors.js';
import { jsonProblemError, scanJsonText } from '../../shared/json-text.js';
import { agentVersionRoutes } from './agent-versions-routes.js';
import {
  agentDetailSchema,
  agentListSchema,
  agentNameParams,
  capabilityListSchema,
  deployResponseSchema,
  errorEnvelopeSchema,
  listAgentsQuery,
  validateResponseSchema,
} from '../schemas.js';
import { docResponses, onFirstRequest, onUse } from '../lazy-schemas.js';

const CONTENT_FORMATS: Record<string, AgentFormat | undefined> = {
  'application/toml': 'toml',
  'application/x-toml': 'toml',
  'text/toml': 'toml',
  'text/x-toml': 'toml',
  'text/markdown': 'markdown',
  'text/x-markdown': 'markdown',
  'application/json': 'json',
  'text/plain': undefined,
};

export function summary(a: DeployedAgent) {
  const d = a.definition;
  return {
    name: d.name as string,
    version: d.version,
    description: d.description,
    capabilities: d.capabilities as string[],
    tools: d.tools as string[],
    format: a.format,
    origin: a.origin,
    revision: a.revision,
    deployed_at: a.deployed_at,
    updated_at: a.updated_at,
  };
}

export function detail(a: DeployedAgent) {
  return { ...summary(a), definition: a.definition as unknown as Record<string, unknown> };
}

function bodyOf(req: FastifyRequest): { body: Buffer; format: AgentFormat | undefined } {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const body = req.body;
  if (!Buffer.isBuffer(body) || body.length === 0) {
    throw new CaxtonError(
      'invalid_request',
      'the request body is empty; send an agent definition as TOML (application/toml), Markdown (text/markdown) or JSON (application/json)',
    );
  }
  const format = CONTENT_FORMATS[type];
  if (format === 'json' || (format === undefined && startsWithBrace(body))) checkJsonAgentBody(body);
  return { body, format };
}

function startsWithBrace(body: Buffer): boolean {
  for (const b of body.subarray(0, 4096)) {
    if (b === 0x7b) return true;
    if (b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0xef && b !== 0xbb && b !== 0xbf) return false;
  }
  return false;
}

/**
 * The HTTP-level checks every JSON body gets (ADR 0016): nesting deeper than MAX_INPUT_DEPTH is a
 * 400 input_too_deep, a duplicate or prototype key a 400 naming it and its line. Syntax errors
 * are left to the agent parser, which reports them in the agent-issue format.
 */
function checkJsonAgentBody(body: Buffer): void {
  const text = body.toString('utf8');
  const problem = scanJsonText(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, { maxDepth: MAX_INPUT_DEPTH });
  if (problem && problem.kind !== 'syntax') throw jsonProblemError(problem, 'the request body');
}

const errors = {
  400: errorEnvelopeSchema,
  404: errorEnvelopeSchema,
  409: errorEnvelopeSchema,
  413: errorEnvelopeSchema,
  415: errorEnvelopeSchema,
  422: errorEnvelopeSchema,
};

// The canary options stay strings here: the agent service reads them (canaryPlanSchema), so a bad
// one gets the same message whichever way it arrives.
const strategyQuery = onUse(() =>
  z.object({
    strategy: z
      .enum(['direct', 'blue-green', 'canary', 'shadow'])
      .optional()
      .describe(
        "default: the file's [rollout] strategy, else direct. direct: live at once; blue-green: beside the live version, reachable as NAME@VERSION until promoted; canary: blue-green plus a rising share of new conversations, promoted or rolled back by its figures; shadow: blue-green plus a copy of every live request, answers compared and never returned",
      ),
    stages: z
      .string()
      .max(200)
      .optional()
      .describe('canary: the candidate’s share of new conversations per stage, e.g. "5,25,50,100"'),
    hold: z.string().max(20).optional().describe('canary: how long each stage runs at least, e.g. "60s"'),
    min_requests: z
      .string()
      .max(12)
      .optional()
      .describe('canary: candidate executions per stage before it is judged (default 20)'),
    max_error_rate_increase: z
      .string()
      .max(12)
      .optional()
      .describe('canary: the error-rate increase over the stable version that rolls back (0..1, default 0.05)'),
    max_latency_ratio: z
      .string()
      .max(12)
      .optional()
      .describe('canary: the p99 latency ratio to the stable version that rolls back (default 2)'),
  }),
);
const canaryOptionsOf = (q: z.infer<ReturnType<typeof strategyQuery>>) => {
  const o: Record<string, string> = {};
  for (const k of ['stages', 'hold', 'min_requests', 'max_error_rate_increase', 'max_latency_ratio'] as const)
    if (q[k] !== undefined) o[k] = q[k];
  if (q.strategy !== undefined && q.strategy !== 'canary' && Object.keys(o).length > 0)
    throw new CaxtonError('invalid_request', `${Object.keys(o).join(', ')} apply to strategy=canary only`, {
      field: Object.keys(o)[0],
    });
  return o;
};

/** Agent management: list, get, deploy, validate, update, remove; capabilities. */
export async function agentRoutes(app: FastifyInstance, opts: { service: AgentService }): Promise<void> {
  const { service } = opts;
  const registry = service.registry;
  const r = app.withTypeProvider<ZodTypeProvider>();

  // Agent bodies are parsed by the agent parser (with line/column errors), not by fastify; large
  // ones on its worker thread (src/agents/parse-pool.ts, ADR 0020).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(Object.keys(CONTENT_FORMATS), { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  agentReadRoutes(app, service);
  deployRoutes(app, service);
  changeRoutes(app, service);

  await agentVersionRoutes(app, { service, detail });

  r.get(
    '/capabilities',
    {
      schema: {
        summary: 'Capabilities and the agents providing each',
        tags: ['agents'],
        response: docResponses(() => ({ 200: capabilityListSchema() })),
      },
    },
    async (req) => ({
      capabilities: capabilitiesVisibleTo(req.principal, registry.capabilities()),
    }),
  );
}

/** GET /agents, one agent, and its source as deployed. */
function agentReadRoutes(app: FastifyInstance, service: AgentService): void {
  const registry = service.registry;
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/agents',
    {
      schema: {
        summary: 'List agents',
        tags: ['agents'],
        querystring: onFirstRequest(() => listAgentsQuery()),
        response: docResponses(() => ({ 200: agentListSchema(), 400: errorEnvelopeSchema })),
      },
    },
    async (req) => {
      const { capability, limit, offset } = req.query;
      const { agents, total } = agentsVisibleTo(req.principal, registry, {
        ...(capability !== undefined && { capability }),
        limit,
        offset,
      });
      return { agents: agents.map(summary), total, limit, offset };
    },
  );

  r.get(
    '/agents/:name',
    {
      schema: {
        summary: 'Get one agent',
        tags: ['agents'],
        params: onFirstRequest(() => agentNameParams()),
        response: docResponses(() => ({ 200: agentDetailSchema(), 404: errorEnvelopeSchema })),
      },
    },
    async (req) => {
      const a = registry.get(req.params.name);
      if (!a)
        throw new CaxtonError('agent_not_found', `no agent named "${req.params.name}" is deployed`, {
          name: req.params.name,
        });
      const found = service.checkDeployed(a.definition);
      const listed = (code: string) =>
        found
          .filter((i) => i.code === code)
          .map((i) => ({
            tool: a.definition.tools[Number(i.field.split('.')[1])] ?? i.field,
            message: i.message,
            ...(i.suggestion !== undefined && { suggestion: i.suggestion }),
          }));
      return {
        ...detail(a),
        unresolved_tools: listed('tool_unresolved'),
        ungranted_tools: listed('tool_not_granted'),
        ...(listsNoTools(a.definition) && {
          unlisted_tools: {
            setting: service.unlistedTools.length > 0 ? ('granted' as const) : ('none' as const),
            tools: [...unlistedToolsOf(a.definition, service.unlistedTools)],
          },
        }),
      };
    },
  );

  r.get(
    '/agents/:name/source',
    {
      schema: {
        summary: 'The text an API-deployed agent was deployed from',
        tags: ['agents'],
        params: onFirstRequest(() => agentNameParams()),
        response: docResponses(() => ({ 200: z.string(), 404: errorEnvelopeSchema })),
      },
    },
    async (req, reply) => {
      const a = registry.get(req.params.name);
      if (!a)
        throw new CaxtonError('agent_not_found', `no agent named "${req.params.name}" is deployed`, {
          name: req.params.name,
        });
      const src = a.origin.kind === 'api' ? await service.source(a.definition.name) : undefined;
      if (src === undefined)
        throw new CaxtonError(
          'not_found',
          `agent "${a.definition.name}" comes from a file; read ${a.origin.kind === 'file' ? a.origin.path : 'it'} instead`,
        );
      const type =
        a.format === 'toml' ? 'application/toml' : a.format === 'markdown' ? 'text/markdown' : 'application/json';
      return reply.type(`${type}; charset=utf-8`).send(src);
    },
  );
}

/** POST /agents (deploy) and POST /agents/validate. */
function deployRoutes(app: FastifyInstance, service: AgentService): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    '/agents',
    {
      schema: {
        summary: 'Deploy an agent (TOML, Markdown or JSON body)',
        tags: ['agents'],
        response: docResponses(() => ({ 201: deployResponseSchema(), ...errors })),
      },
    },
    async (req, reply) => {
      const { body, format } = bodyOf(req);
      const out = await service.deploy(
        {
          body,
          ...(format && { format }),
          deployed_by: req.principal?.id,
          actor: deployActor(req.principal),
          traceparent: requestTraceparent(req),
        },
        'create',
      );
      req.log.info({ agent: out.agent.definition.name, version: out.version?.version }, 'agent deployed');
      logCheckWarnings(req, out);
      return reply
        .code(201)
        .header('location', `/api/v1/agents/${encodeURIComponent(out.agent.definition.name)}`)
        .send(deployed(out));
    },
  );

  r.post(
    '/agents/validate',
    {
      schema: {
        summary: 'Validate an agent definition; deploys nothing',
        tags: ['agents'],
        response: docResponses(() => ({
          200: validateResponseSchema(),
          400: errorEnvelopeSchema,
          413: errorEnvelopeSchema,
          415: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const { body, format } = bodyOf(req);
      const res = await service.validate({ body, ...(format && { format }) });
      return res.ok
        ? { valid: true, format: res.format, name: res.definition.name as string, errors: [], warnings: res.warnings }
        : { valid: false, format: res.format, errors: res.errors, warnings: res.warnings };
    },
  );
}

/** PUT /agents/{name} (a new version, by the strategy asked for) and DELETE /agents/{name}. */
function changeRoutes(app: FastifyInstance, service: AgentService): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.put(
    '/agents/:name',
    {
      schema: {
        summary: 'Update an API-deployed agent',
        tags: ['agents'],
        params: onFirstRequest(() => agentNameParams()),
        querystring: onFirstRequest(() => strategyQuery()),
        response: docResponses(() => ({ 200: deployResponseSchema(), ...errors })),
      },
    },
    async (req) => {
      const { body, format } = bodyOf(req);
      const canary = canaryOptionsOf(req.query);
      const out = await service.deploy(
        {
          body,
          ...(format && { format }),
          deployed_by: req.principal?.id,
          actor: deployActor(req.principal),
          traceparent: requestTraceparent(req),
          strategy: req.query.strategy,
          canary,
        },
        'update',
        req.params.name,
      );
      if (out.unchanged)
        req.log.info(
          { agent: out.agent.definition.name, version: out.version?.version },
          'agent unchanged: the body equals the deployed version',
        );
      else
        req.log.info(
          { agent: out.agent.definition.name, revision: out.agent.revision, version: out.version?.version },
          'agent updated',
        );
      logCheckWarnings(req, out);
      return deployed(out);
    },
  );

  r.delete(
    '/agents/:name',
    {
      schema: {
        summary: 'Remove an API-deployed agent',
        tags: ['agents'],
        params: onFirstRequest(() => agentNameParams()),
        response: docResponses(() => ({ 204: z.null(), 404: errorEnvelopeSchema, 409: errorEnvelopeSchema })),
      },
    },
    async (req, reply) => {
      const removed = await service.remove(req.params.name, deployActor(req.principal));
      req.log.info({ agent: removed.definition.name }, 'agent removed');
      return reply.code(204).send(null);
    },
  );
}

/** A deploy's answer: the agent, its warnings, the version recorded, and whether nothing changed. */
function deployed(out: DeployOutcome) {
  return {
    agent: detail(out.agent),
    warnings: out.warnings,
    ...(out.version && { version: out.version.version }),
    ...(out.unchanged === true && {
      unchanged: true,
      message: `identical to version ${out.version?.version ?? out.agent.revision}: nothing changed`,
    }),
    ...(out.rollout && {
      rollout: out.rollout,
      message: `version ${out.rollout.candidate_version} deployed beside version ${out.rollout.stable_version} (blue-green): address it as ${out.rollout.agent}@${out.rollout.candidate_version}; caxton agent promote ${out.rollout.agent} makes it live`,
    }),
  };
}

/** What the server cannot resolve for a deployed agent (model, provider, tool) is worth a warn line, as for agents_dir files. */
function logCheckWarnings(req: FastifyRequest, out: DeployOutcome): void {
  for (const w of out.warnings)
    if (DEPLOY_CHECK_CODES.has(w.code))
      req.log.warn({ agent: out.agent.definition.name, field: w.field, code: w.code }, w.message);
}
