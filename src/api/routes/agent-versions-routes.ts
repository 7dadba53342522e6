/**
 * Agent versions: history, one version with its source, the difference between two,
 * and rollback. Registered inside agentRoutes (whose content-type parsers hand bodies over as
 * buffers: the rollback's small JSON body is bounded and parsed here).
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  diffVersions,
  type AgentService,
  type AgentVersion,
  type AgentVersionDetail,
  type AgentVersionsPort,
  type CanaryStatus,
  type ShadowReport,
  type DeployedAgent,
  type Rollout,
  type VersionDiff,
} from '../../agents/index.js';
import { deployActor } from '../../auth/index.js';
import { MAX_INPUT_DEPTH } from '../../shared/depth.js';
import { CaxtonError } from '../../shared/errors.js';
import { jsonProblemError, scanJsonText } from '../../shared/json-text.js';
import { agentDetailSchema, agentNameParams, errorEnvelopeSchema, rolloutSchema } from '../schemas.js';
import { docResponses, onFirstRequest, onUse } from '../lazy-schemas.js';

export const agentVersionSchema = z.object({
  agent: z.string(),
  version: z.number().int(),
  semver: z.string().nullable(),
  hash: z.string(),
  format: z.enum(['toml', 'markdown', 'json']),
  how: z.enum(['api', 'file', 'rollback', 'promotion']),
  origin: z.enum(['api', 'file']),
  path: z.string().nullable(),
  deployed_by: z.string().nullable(),
  deployed_at: z.string(),
  restored_from: z.number().int().nullable(),
});

const versionDetailSchema = onUse(() =>
  agentVersionSchema.extend({
    definition: z.record(z.string(), z.unknown()),
    source: z.string(),
  }),
);

const versionDiffSchema = onUse(() =>
  z.object({
    agent: z.string(),
    from: z.number().int(),
    to: z.number().int(),
    identical: z.boolean(),
    changes: z.array(z.object({ field: z.string(), from: z.unknown().optional(), to: z.unknown().optional() })),
    source_diff: z.string(),
  }),
);

// The domain types are the source of truth; these fail to compile when the schemas drift from them.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const versionSchemaMatches: Same<z.infer<typeof agentVersionSchema>, AgentVersion> = true;
const diffSchemaMatches: Same<
  Omit<z.infer<ReturnType<typeof versionDiffSchema>>, 'changes'>,
  Omit<VersionDiff, 'changes'>
> = true;
void versionSchemaMatches;
const rolloutSchemaMatches: Same<z.infer<ReturnType<typeof rolloutSchema>>, Rollout> = true;
void rolloutSchemaMatches;
void diffSchemaMatches;

const windowFigures = onUse(() =>
  z.object({
    requests: z.number().int(),
    errors: z.number().int(),
    error_rate: z.number(),
    p99_ms: z.number().nullable(),
  }),
);
const canaryStatusSchema = onUse(() =>
  z
    .object({
      stage: z.number().int(),
      weight: z.number().int(),
      candidate: windowFigures(),
      stable: windowFigures(),
      waiting_for: z.string().nullable(),
      hold_ends_at: z.string(),
    })
    .describe(
      "a running canary: its stage and weight, both versions' figures in the stage's window, and what the stage waits for",
    ),
);
const canaryStatusMatches: Same<z.infer<ReturnType<typeof canaryStatusSchema>>, CanaryStatus> = true;
void canaryStatusMatches;

const sideFigures = onUse(() =>
  z.object({
    p50_ms: z.number().nullable(),
    p99_ms: z.number().nullable(),
    tokens: z.number().int(),
  }),
);
const shadowReportSchema = onUse(() =>
  z
    .object({
      compared: z.number().int(),
      agreements: z.number().int(),
      agreement_rate: z.number().nullable(),
      comparison: z.enum(['exact', 'similarity', 'judge']),
      mean_similarity: z.number().nullable(),
      candidate_errors: z.number().int(),
      skipped: z.number().int(),
      stable: sideFigures(),
      candidate: sideFigures(),
      disagreements: z.array(
        z.object({
          request: z.string(),
          stable_answer: z.string(),
          candidate_answer: z.string().nullable(),
          candidate_error: z.string().nullable(),
        }),
      ),
    })
    .describe(
      'a shadow rollout: how many live requests were copied to the candidate, how often the answers agreed, latency and tokens side by side',
    ),
);
const shadowReportMatches: Same<z.infer<ReturnType<typeof shadowReportSchema>>, ShadowReport> = true;
void shadowReportMatches;

/** An agent's rollout (RolloutController.rolloutStatus): on a cluster, the one every node reads. */
const rolloutStatusSchema = onUse(() =>
  z.object({
    running: z.boolean(),
    rollout: rolloutSchema().nullable(),
    canary: canaryStatusSchema().nullable(),
    shadow: shadowReportSchema().nullable(),
  }),
);

const versionParams = agentNameParams().extend({
  version: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
});
const historyQuery = onUse(() =>
  z.object({
    limit: z.coerce.number().int().min(1).max(1000).default(50),
    offset: z.coerce.number().int().min(0).default(0),
  }),
);
const diffQuery = onUse(() =>
  z.object({
    from: z.coerce.number().int().min(1).optional(),
    to: z.coerce.number().int().min(1).optional(),
  }),
);
const rollbackBody = z.strictObject({ to: z.number().int().min(1).optional() });

const errors = { 400: errorEnvelopeSchema, 404: errorEnvelopeSchema, 409: errorEnvelopeSchema };

export async function agentVersionRoutes(
  app: FastifyInstance,
  opts: { service: AgentService; detail: (a: DeployedAgent) => z.infer<ReturnType<typeof agentDetailSchema>> },
): Promise<void> {
  const lookup = versionLookup(opts.service);
  historyRoutes(app, opts.service, lookup);
  rollbackRoutes(app, opts.service, opts.detail, lookup);
}

interface VersionLookup {
  store: (name: string) => AgentVersionsPort;
  nameOf: (name: string) => Promise<string>;
  version: (name: string, v: number) => Promise<AgentVersionDetail>;
}

/** How the routes find an agent's versions, its name and one version, with the 404s they answer. */
function versionLookup(service: AgentService): VersionLookup {
  /** Where `name`'s versions are: this node's store, or on a cluster node the history the nodes share (API agents). */
  const store = (name: string) => {
    const port = service.history.portFor(name);
    if (!port) throw new CaxtonError('not_found', 'this server keeps no agent versions');
    return port;
  };
  /** The agent's name as deployed (or, once removed, as its versions spell it); 404 when it never had a version. */
  const nameOf = async (name: string): Promise<string> => {
    const deployed = service.registry.get(name);
    if (deployed) return deployed.definition.name;
    const newest = (await store(name).list(name, { limit: 1 })).items[0];
    if (!newest)
      throw new CaxtonError('agent_not_found', `no agent named "${name}" is deployed or has versions`, { name });
    return newest.agent;
  };
  const version = async (name: string, v: number): Promise<AgentVersionDetail> => {
    const found = await store(name).get(name, v);
    if (!found) {
      const newest = (await store(name).list(name, { limit: 1 })).items[0];
      throw new CaxtonError(
        'version_not_found',
        `agent "${name}" has no version ${v}${newest ? ` (the newest is ${newest.version})` : ''}`,
        {
          name,
          version: v,
          hint: `caxton agent history ${name} lists the versions kept`,
        },
      );
    }
    return found;
  };
  return { store, nameOf, version };
}

/** An agent's versions: list, show one, diff two. */
function historyRoutes(app: FastifyInstance, service: AgentService, { store, nameOf, version }: VersionLookup): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/agents/:name/versions',
    {
      schema: {
        summary: "An agent's versions, newest first (every deploy, file change and rollback)",
        tags: ['agents'],
        params: onFirstRequest(() => agentNameParams()),
        querystring: onFirstRequest(() => historyQuery()),
        response: docResponses(() => ({
          200: z.object({
            agent: z.string(),
            current: z.number().int().nullable(),
            versions: z.array(agentVersionSchema),
            total: z.number().int(),
            limit: z.number().int(),
            offset: z.number().int(),
          }),
          ...errors,
        })),
      },
    },
    async (req) => {
      const name = await nameOf(req.params.name);
      const { limit, offset } = req.query;
      const page = await store(name).list(name, { limit, offset });
      const current = service.registry.get(name) ? ((await service.liveVersion(name)) ?? null) : null;
      return { agent: name, current, versions: page.items, total: page.total, limit, offset };
    },
  );

  r.get(
    '/agents/:name/versions/:version',
    {
      schema: {
        summary: 'One version of an agent: its definition and the text it was deployed from',
        tags: ['agents'],
        params: onFirstRequest(() => versionParams),
        response: docResponses(() => ({ 200: versionDetailSchema(), ...errors })),
      },
    },
    async (req) => {
      const v = await version(await nameOf(req.params.name), req.params.version);
      return { ...v, definition: v.definition as unknown as Record<string, unknown> };
    },
  );

  r.get(
    '/agents/:name/diff',
    {
      schema: {
        summary: 'What changed between two versions (default: the current one and the one before it)',
        tags: ['agents'],
        params: onFirstRequest(() => agentNameParams()),
        querystring: onFirstRequest(() => diffQuery()),
        response: docResponses(() => ({ 200: versionDiffSchema(), ...errors })),
      },
    },
    async (req) => {
      const name = await nameOf(req.params.name);
      const to = req.query.to ?? (await store(name).latest(name))?.version;
      if (to === undefined) throw new CaxtonError('version_not_found', `agent "${name}" has no versions`, { name });
      const b = await version(name, to);
      let from = req.query.from;
      if (from === undefined) {
        // The newest kept version before `to`.
        const older = (await store(name).list(name, { limit: 1000 })).items.find((v) => v.version < to);
        if (!older)
          throw new CaxtonError('no_earlier_version', `agent "${name}" has no version before ${to} to compare with`, {
            name,
            hint: 'pass from=N',
          });
        from = older.version;
      }
      return diffVersions(await version(name, from), b);
    },
  );
}

/** Roll back to an earlier version, promote a rollout's candidate, show the rollout. */
function rollbackRoutes(
  app: FastifyInstance,
  service: AgentService,
  detail: (a: DeployedAgent) => z.infer<ReturnType<typeof agentDetailSchema>>,
  { nameOf }: VersionLookup,
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    '/agents/:name/rollback',
    {
      schema: {
        summary: 'Deploy an earlier version again (default: the newest whose content differs from the current one)',
        tags: ['agents'],
        params: onFirstRequest(() => agentNameParams()),
        response: docResponses(() => ({
          200: z.object({
            agent: agentDetailSchema(),
            version: agentVersionSchema,
            restored: agentVersionSchema,
            warnings: z.array(z.object({ code: z.string(), field: z.string(), message: z.string() })),
            rollout: rolloutSchema().optional(),
          }),
          ...errors,
        })),
      },
    },
    async (req) => {
      const body = rollbackBodyOf(req.body);
      const out = await service.rollback(req.params.name, body.to, req.principal?.id, {
        actor: deployActor(req.principal),
      });
      req.log.info(
        {
          agent: out.agent.definition.name,
          version: out.version.version,
          restored: out.restored.version,
          rollout: out.rollout?.id,
        },
        'agent rolled back',
      );
      return {
        agent: detail(out.agent),
        version: out.version,
        restored: out.restored,
        warnings: out.warnings,
        ...(out.rollout && { rollout: out.rollout }),
      };
    },
  );

  r.post(
    '/agents/:name/promote',
    {
      schema: {
        summary: "Make a running blue-green rollout's candidate the live version",
        tags: ['agents'],
        params: onFirstRequest(() => agentNameParams()),
        response: docResponses(() => ({
          200: z.object({ agent: agentDetailSchema(), rollout: rolloutSchema(), version: agentVersionSchema }),
          ...errors,
        })),
      },
    },
    async (req) => {
      const out = await service.promote(req.params.name, req.principal?.id, { actor: deployActor(req.principal) });
      req.log.info(
        { agent: out.agent.definition.name, version: out.version.version, promoted: out.rollout.candidate_version },
        'agent rollout promoted',
      );
      return { agent: detail(out.agent), rollout: out.rollout, version: out.version };
    },
  );

  r.get(
    '/agents/:name/rollout',
    {
      schema: {
        summary: "The agent's running rollout, or its last one",
        tags: ['agents'],
        params: onFirstRequest(() => agentNameParams()),
        response: docResponses(() => ({
          200: rolloutStatusSchema().extend({
            agent: z.string(),
            live_version: z.number().int().nullable(),
          }),
          ...errors,
        })),
      },
    },
    async (req) => {
      const name = await nameOf(req.params.name);
      // On a cluster, the rollout as every node sees it (started, promoted or rolled back through any node).
      const status = await service.rollout.rolloutStatus(name);
      return {
        agent: name,
        live_version: service.registry.get(name) ? ((await service.liveVersion(name)) ?? null) : null,
        ...status,
      };
    },
  );
}

/** An empty body is a rollback to the previous content; otherwise `{"to": N}`. */
function rollbackBodyOf(raw: unknown): { to?: number | undefined } {
  if (!Buffer.isBuffer(raw) || raw.length === 0) return {};
  const text = raw.toString('utf8');
  const problem = scanJsonText(text, { maxDepth: MAX_INPUT_DEPTH });
  if (problem) throw jsonProblemError(problem, 'the request body');
  const parsed = rollbackBody.safeParse(JSON.parse(text));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CaxtonError(
      'invalid_request',
      `the request body: ${issue.path.join('.') || 'body'}: ${issue.message}; send {} or {"to": VERSION}`,
      { field: issue.path.join('.') || 'body' },
    );
  }
  return parsed.data;
}
