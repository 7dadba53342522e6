import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Principal } from '../../auth/index.js';
import {
  RUN_ORIGINS,
  RUN_STATUSES,
  type DurableRuns,
  type Executor,
  type InvokeRequest,
  approvalViews,
  runSummaryView,
  decideAs,
  listRunsAs,
  readRunAs,
  type RunRecord,
} from '../../execution/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { callerOf, limitOf } from '../caller.js';
import { requestTraceparent } from '../request-trace.js';
import { agentNameParams, errorEnvelopeSchema, idempotencyKeyOf } from '../schemas.js';
import { agentResponseSchema, invokeBodySchema } from './invoke-routes.js';
import { followRun } from './run-events-routes.js';
import { docResponses, onFirstRequest, onUse } from '../lazy-schemas.js';

const runSchema = onUse(() =>
  z.object({
    id: z.string(),
    agent: z.string(),
    version: z.string().nullable().describe('the version of the agent the run started on'),
    origin: z.enum(RUN_ORIGINS),
    status: z.enum(RUN_STATUSES),
    principal: z.string().nullable(),
    conversation_id: z.string().nullable(),
    message_id: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    resumes: z.number().int().describe('how many times the run resumed after an interruption'),
    running_here: z.boolean().describe('whether the run is running on the node that answers'),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
  }),
);

const stepSchema = onUse(() =>
  z
    .object({
      kind: z.enum(['context', 'model', 'tool_start', 'tool_end', 'approval_requested', 'approval', 'resumed']),
      at: z
        .number()
        .optional()
        .describe(
          'when the step was committed, ms since the epoch; the steps committed together share it; absent on steps recorded by an older server',
        ),
    })
    .catchall(z.unknown())
    .describe(
      'One committed step: `model` (a model reply: content, tool_calls, usage, finish_reason), `tool_start` (committed before the call ran), `tool_end` (its result; `interrupted` when it was found unfinished and not run again, `refused` when it was refused rather than run), `approval_requested` and `approval` (a call that waited for a person, and the decision: who, when, why), `context` (the memory context of the first prompt), `resumed` (the run went on again after an interruption or a decision: the time since the step before it is the gap)',
    ),
);

const approvalSchema = onUse(() =>
  z.object({
    turn: z.number().int(),
    call_id: z.string(),
    tool: z.string(),
    arguments: z.record(z.string(), z.unknown()),
    requested_at: z.string(),
    decision: z.enum(['approved', 'denied']).nullable(),
    decided_by: z.string().nullable(),
    decided_at: z.string().nullable(),
    reason: z.string().nullable(),
  }),
);

const runViewSchema = onUse(() =>
  runSchema().extend({
    request: z.string(),
    steps: z.array(stepSchema()),
    approvals: z
      .array(approvalSchema())
      .describe('every call that waited for a person, in order; `decision` null: still waiting'),
    response: agentResponseSchema().nullable(),
  }),
);

function summaryOf(r: RunRecord, runs: DurableRuns): z.output<ReturnType<typeof runSchema>> {
  return runSummaryView(r, runs.isRunningHere(r.id));
}

const listQuery = onUse(() =>
  z.object({
    agent: z.string().min(1).max(200).optional().describe('only runs of this agent'),
    status: z.enum(RUN_STATUSES).optional(),
    origin: z.enum(RUN_ORIGINS).optional(),
    limit: z.coerce
      .number({ error: 'expected a number' })
      .int({ error: 'expected a whole number' })
      .min(1, { error: 'at least 1' })
      .max(500, { error: 'at most 500' })
      .default(50),
    cursor: z
      .string()
      .regex(/^exec_[0-9a-f-]{36}$/, { error: 'expected the next_cursor of a previous page' })
      .optional(),
  }),
);

/**
 * Durable runs (src/execution/runs, docs/runs.md): a run started without waiting
 * (POST /agents/{name}/runs), every run with its recorded steps (GET /runs, GET /runs/{id}), a
 * run followed live (GET /runs/{id}/events), cancelling one and deciding on its approvals. Read in the caller's agent scope: a run of an agent outside it is 404.
 */
export async function runRoutes(app: FastifyInstance, opts: { executor: Executor }): Promise<void> {
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });
  const runs = (): DurableRuns => {
    const d = opts.executor.runs;
    if (!d)
      throw new CaxtonError('not_found', 'runs are not recorded on this server ([execution] durable_runs = false)', {
        reason: 'runs_disabled',
      });
    return d;
  };

  startAndListRoutes(app, runs);
  oneRunRoutes(app, runs, streams);
}

/** POST /agents/{name}/runs (start a durable run) and GET /runs. */
function startAndListRoutes(app: FastifyInstance, runs: () => DurableRuns): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    '/agents/:name/runs',
    {
      schema: {
        summary: 'Start a run without waiting for it',
        description:
          'Answers 202 with the run id as soon as the run is recorded; the run goes on in the background and survives restarts. Read it with GET /runs/{id}, stop it with POST /runs/{id}/cancel. With `Idempotency-Key`, the same key from the same caller to the same agent is the same run.',
        tags: ['execution'],
        params: onFirstRequest(() => agentNameParams()),
        body: onFirstRequest(() => invokeBodySchema()),
        response: docResponses(() => ({
          202: z.object({ run_id: z.string(), status: z.enum(RUN_STATUSES), links: z.object({ self: z.string() }) }),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
          413: errorEnvelopeSchema,
          429: errorEnvelopeSchema,
        })),
      },
    },
    async (req, reply) => {
      const body = req.body;
      const request: InvokeRequest = { request: body.request };
      if (body.context !== undefined) request.context = body.context;
      if (body.parameters !== undefined) request.parameters = body.parameters;
      if (body.conversation_id !== undefined) request.conversation_id = body.conversation_id;
      if (body.capability !== undefined) request.capability = body.capability;
      const tp = requestTraceparent(req);
      if (tp !== undefined) request.traceparent = tp;
      const { principal } = callerOf(req);
      if (principal !== undefined) request.principal = principal;
      const limit = limitOf(req);
      const key = idempotencyKeyOf(req.headers);
      const id = await runs().start(req.params.name, request, {
        origin: 'background',
        ...(limit && { limit }),
        ...(key !== undefined && { idempotencyKey: key }),
      });
      const stored = await runs().journal.get(id);
      return reply
        .code(202)
        .send({ run_id: id, status: stored?.run.status ?? 'running', links: { self: `/api/v1/runs/${id}` } });
    },
  );

  r.get(
    '/runs',
    {
      schema: {
        summary: 'Runs, newest first',
        description:
          'Every durable run (invoke, background, /v1, MCP, message deliveries) with its status; `status=running` lists what is unfinished. Pass `next_cursor` as `cursor` for the next page.',
        tags: ['execution'],
        querystring: onFirstRequest(() => listQuery()),
        response: docResponses(() => ({
          200: z.object({ runs: z.array(runSchema()), next_cursor: z.string().optional() }),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const q = req.query;
      const d = runs();
      const page = await listRunsAs(d, req.principal, {
        ...(q.agent !== undefined && { agent: q.agent }),
        ...(q.status !== undefined && { status: q.status }),
        ...(q.origin !== undefined && { origin: q.origin }),
        cursor: q.cursor,
        limit: q.limit,
      });
      return {
        runs: page.runs.map((x) => summaryOf(x, d)),
        ...(page.next !== undefined && { next_cursor: page.next }),
      };
    },
  );
}

/** One run: read it, follow it (server-sent events), cancel it, decide its pending approvals. */
function oneRunRoutes(app: FastifyInstance, runs: () => DurableRuns, streams: Set<() => void>): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const readable = (id: string, req: { principal?: Principal }) => readRunAs(runs(), req.principal, id);

  r.get(
    '/runs/:id',
    {
      schema: {
        summary: 'One run with every step it recorded',
        description:
          'Steps in the order they were committed: model replies, tool starts and ends. A resumed run reused what it had recorded; `resumes` counts its interruptions.',
        tags: ['execution'],
        params: onFirstRequest(() => z.object({ id: z.string().min(1).max(200) })),
        response: docResponses(() => ({ 200: runViewSchema(), 404: errorEnvelopeSchema })),
      },
    },
    async (req) => {
      const { run, steps } = await readable(req.params.id, req);
      return {
        ...summaryOf(run, runs()),
        request: run.request.request,
        steps: steps as unknown as z.output<ReturnType<typeof stepSchema>>[],
        approvals: approvalViews(steps),
        response: run.response,
      };
    },
  );

  r.get(
    '/runs/:id/events',
    {
      schema: {
        summary: 'Follow a run (server-sent events)',
        description:
          'Every step the run recorded, then each step as it is committed: `step` (a step as in GET /runs/{id}, with its `index`), `status` when its status changes (`waiting` names the tool, call_id and arguments of each call it waits on for approval), then `end` (status, response, error) and the stream closes. A run waiting for a person keeps the stream open (a comment line every 15 s) until it is decided on. Changes made by another node of a cluster arrive within a second.',
        tags: ['execution'],
        params: onFirstRequest(() => z.object({ id: z.string().min(1).max(200) })),
        response: docResponses(() => ({ 200: z.string().describe('text/event-stream'), 404: errorEnvelopeSchema })),
      },
    },
    async (req, reply) => followRun(req, reply, runs(), await readable(req.params.id, req), streams),
  );

  r.post(
    '/runs/:id/cancel',
    {
      schema: {
        summary: 'Cancel a run',
        description:
          'Stops a run running on this node, or marks an unfinished one cancelled so that it is not resumed; on a cluster, the node running it stops it at its next lease renewal. A finished run is left as it is.',
        tags: ['execution'],
        params: onFirstRequest(() => z.object({ id: z.string().min(1).max(200) })),
        response: docResponses(() => ({ 200: runSchema(), 404: errorEnvelopeSchema })),
      },
    },
    async (req) => {
      await readable(req.params.id, req);
      const run = await runs().cancel(req.params.id);
      if (!run) throw new CaxtonError('not_found', `no run "${req.params.id}"`, { id: req.params.id });
      return summaryOf(run, runs());
    },
  );

  const decisionBody = z.strictObject({
    call_id: z.string().min(1).max(200).optional().describe('the call to decide on; default: the first waiting'),
    reason: z.string().max(2_000).optional().describe("why; a denial's reason reaches the model"),
  });
  for (const decision of ['approved', 'denied'] as const) {
    const verb = decision === 'approved' ? 'approve' : 'deny';
    r.post(
      `/runs/:id/${verb}`,
      {
        schema: {
          summary: decision === 'approved' ? 'Approve a call a run waits on' : 'Deny a call a run waits on',
          description:
            decision === 'approved'
              ? 'The call runs and the run goes on from its recorded steps (on this node). Optional JSON body `{"call_id": "…", "reason": "…"}` (default: the first waiting call). The decision, who made it and when are recorded in the run and the audit trail.'
              : 'The call is not run: the model gets a tool error with the reason, and the run goes on. Optional JSON body `{"call_id": "…", "reason": "…"}` (default: the first waiting call). The decision, who made it and when are recorded in the run and the audit trail.',
          tags: ['execution'],
          params: onFirstRequest(() => z.object({ id: z.string().min(1).max(200) })),
          response: docResponses(() => ({
            200: runSchema(),
            400: errorEnvelopeSchema,
            404: errorEnvelopeSchema,
            409: errorEnvelopeSchema,
          })),
        },
      },
      async (req) => {
        // The body is optional (the first waiting call, no reason): read here rather than by a route schema, which would require one.
        const parsed = decisionBody.safeParse(req.body ?? {});
        if (!parsed.success) {
          const issue = parsed.error.issues[0]!;
          const field = issue.path.join('.') || 'body';
          throw new CaxtonError(
            'invalid_request',
            `the request body: ${field}: ${issue.message}; send {} or {"call_id": "…", "reason": "…"}`,
            { field },
          );
        }
        const body = parsed.data;
        const run = await decideAs(runs(), req.principal, req.params.id, {
          decision,
          callId: body.call_id,
          reason: body.reason,
        });
        return summaryOf(run, runs());
      },
    );
  }
}
