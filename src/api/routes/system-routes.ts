import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AgentService } from '../../agents/index.js';
import { agentsVisibleTo, capabilitiesVisibleTo } from '../../auth/index.js';
import { redactSecrets, type ServerConfig } from '../../config/index.js';
import type { ConfigProblem, DependencyState, Readiness } from '../readiness.js';
import { errorEnvelopeSchema, healthSchema, readySchema, statusSchema } from '../schemas.js';
import { docResponses } from '../lazy-schemas.js';

export interface Lifecycle {
  state: 'starting' | 'ready' | 'stopping';
  startedAt: number;
  version: string;
  /** The outside dependencies /ready checks once the node has started (none on a default node). */
  readiness?: Readiness;
  /** What in the configuration will make work fail (GET /health names them; the status overview explains them). */
  problems?: () => ConfigProblem[];
  /**
   * How far the read models written off the delivery path are behind, per model (a cluster node's
   * agent events: recorded and not yet in PostgreSQL). Reported by /ready beside its status; the
   * writers' buffers bound it, so it informs a load balancer without failing readiness.
   */
  lag?: () => Record<string, number>;
}

/** Liveness, readiness, status and effective configuration. */
export async function systemRoutes(
  app: FastifyInstance,
  opts: { service: AgentService; config: ServerConfig; lifecycle: Lifecycle },
): Promise<void> {
  const { service, config, lifecycle } = opts;
  const r = app.withTypeProvider<ZodTypeProvider>();

  // Public: the degraded parts are named by their configuration field only; the authenticated
  // status overview says what is wrong and how to fix it.
  r.get(
    '/health',
    {
      schema: {
        summary:
          'Liveness: the process is up and serving HTTP; `degraded` names configuration that will make work fail',
        tags: ['system'],
        response: docResponses(() => ({ 200: healthSchema() })),
      },
    },
    async () => {
      const degraded = lifecycle.problems?.() ?? [];
      return {
        status: lifecycle.state === 'ready' ? ('ok' as const) : lifecycle.state,
        ...(degraded.length > 0 && { degraded: [...new Set(degraded.map((d) => d.name))] }),
      };
    },
  );

  // Public (load balancers call it without credentials): each dependency is named with whether it
  // answers, never why not (an error may name internal hosts); GET /api/v1/status has the reasons.
  r.get(
    '/ready',
    {
      schema: {
        summary: 'Readiness: started, and every outside dependency (PostgreSQL, NATS) answering',
        tags: ['system'],
        response: docResponses(() => ({ 200: readySchema(), 503: readySchema() })),
      },
    },
    async (_req, reply) => {
      if (lifecycle.state !== 'ready') return reply.code(503).send({ status: lifecycle.state });
      const deps = lifecycle.readiness && lifecycle.readiness.size > 0 ? await lifecycle.readiness.probe() : undefined;
      const lag = lifecycle.lag?.();
      if (!deps || deps.length === 0) return { status: 'ok' as const, ...(lag && { lag }) };
      const dependencies = deps.map((d) => ({ name: d.name, ok: d.ok }));
      return deps.every((d) => d.ok)
        ? { status: 'ok' as const, dependencies, ...(lag && { lag }) }
        : reply.code(503).send({ status: 'unavailable' as const, dependencies, ...(lag && { lag }) });
    },
  );

  r.get(
    '/api/v1/status',
    { schema: { summary: 'Server status', tags: ['system'], response: docResponses(() => ({ 200: statusSchema() })) } },
    async (req) => {
      const files = service.files.fileStatuses();
      const all = agentsVisibleTo(req.principal, service.registry).agents;
      const fromFiles = all.filter((a) => a.origin.kind === 'file').length;
      const mem = process.memoryUsage();
      return {
        version: lifecycle.version,
        uptime_seconds: Math.round((Date.now() - lifecycle.startedAt) / 1000),
        ...(await readyWithDependencies(lifecycle)),
        agents: {
          total: all.length,
          from_files: fromFiles,
          from_api: all.length - fromFiles,
          capabilities: capabilitiesVisibleTo(req.principal, service.registry.capabilities()).length,
        },
        agent_files: {
          loaded: files.filter((f) => f.state === 'loaded').length,
          invalid: files
            .filter((f) => f.state === 'invalid')
            .map((f) => ({ path: f.path, ...(f.agent !== undefined && { agent: f.agent }), errors: f.errors ?? [] })),
          ignored: files.filter((f) => f.state === 'ignored').map((f) => f.path),
        },
        memory: { rss_bytes: mem.rss, heap_used_bytes: mem.heapUsed },
        config: { file: config.source.file, agents_dir: config.agents_dir, data_dir: config.data_dir },
      };
    },
  );

  r.get(
    '/api/v1/config',
    {
      schema: {
        summary: 'Effective server configuration, secrets redacted',
        tags: ['system'],
        response: docResponses(() => ({ 200: z.record(z.string(), z.unknown()), 500: errorEnvelopeSchema })),
      },
    },
    async () => redactSecrets(config) as Record<string, unknown>,
  );
}

/** `ready` (started, and every dependency answering) with the dependencies' states when there are any. */
async function readyWithDependencies(
  lifecycle: Lifecycle,
): Promise<{ ready: boolean; dependencies?: DependencyState[] }> {
  const started = lifecycle.state === 'ready';
  if (!lifecycle.readiness || lifecycle.readiness.size === 0) return { ready: started };
  const dependencies = await lifecycle.readiness.probe();
  if (dependencies.length === 0) return { ready: started };
  return { ready: started && dependencies.every((d) => d.ok), dependencies };
}
