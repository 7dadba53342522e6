import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AUDIT_ACTIONS, AUDIT_OUTCOMES, type AuditQuery, type AuditStore } from '../../audit/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { parseDuration } from '../../shared/units.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { docResponses, onFirstRequest, onUse } from '../lazy-schemas.js';

/** A time bound: ISO 8601, milliseconds since the epoch, or a duration ago ("1h", "24h"). */
function timeBound(field: string) {
  return z
    .string()
    .transform((s, ctx) => {
      if (/^\d{10,}$/.test(s)) return Number(s);
      const ago = /^\d/.test(s) && !s.includes('-') ? parseDuration(s) : undefined;
      if (ago !== undefined) return Date.now() - ago;
      const t = /^\d{4}-\d{2}-\d{2}/.test(s) ? Date.parse(s) : NaN;
      if (Number.isNaN(t)) {
        ctx.addIssue({
          code: 'custom',
          message: `expected an ISO 8601 time (e.g. "2025-01-31T12:00:00Z"), milliseconds since the epoch, or a duration ago (e.g. "1h", "24h"), got ${JSON.stringify(s)}`,
        });
        return z.NEVER;
      }
      return t;
    })
    .optional()
    .describe(`${field}: ISO 8601 time, epoch milliseconds, or a duration ago ("1h")`);
}

const auditQuery = onUse(() =>
  z.object({
    principal: z
      .string()
      .min(1)
      .max(300)
      .optional()
      .describe('a principal id (key:ci, oidc:SUBJECT...); "-" for requests without one'),
    action: z
      .string()
      .min(1)
      .max(100)
      .optional()
      .describe(`an action, or a family such as "memory.*": ${AUDIT_ACTIONS.join(', ')}`),
    outcome: z.enum(AUDIT_OUTCOMES, { error: `expected one of: ${AUDIT_OUTCOMES.join(', ')}` }).optional(),
    target: z.string().min(1).max(512).optional().describe('an agent, tool server, memory scope, dead-letter id...'),
    since: timeBound('since'),
    until: timeBound('until'),
    limit: z.coerce
      .number({ error: 'expected a number' })
      .int({ error: 'expected a whole number' })
      .min(1, { error: 'at least 1' })
      .max(1000, { error: 'at most 1000' })
      .default(100),
    offset: z.coerce
      .number({ error: 'expected a number' })
      .int({ error: 'expected a whole number' })
      .min(0, { error: 'at least 0' })
      .max(10_000_000)
      .default(0),
  }),
);

const auditRecordSchema = onUse(() =>
  z.object({
    id: z.number().int(),
    time: z.string().describe('ISO 8601'),
    principal: z.string().nullable().describe('the principal id; null before authentication or for a 401'),
    principal_kind: z.string().nullable(),
    source: z.string().nullable().describe("the client's address"),
    request_id: z.string().nullable().describe("the server's id of the request"),
    client_request_id: z
      .string()
      .nullable()
      .describe("the client's own id of the request (its X-Request-Id header), when it sent one"),
    action: z.string(),
    method: z.string().nullable(),
    route: z.string().nullable(),
    target: z.string().nullable(),
    outcome: z.enum(AUDIT_OUTCOMES),
    status: z.number().int().nullable(),
    details: z.record(z.string(), z.unknown()).nullable(),
  }),
);

/** GET /audit (under /api/v1): the audit trail, newest first. Without a store ([audit] enabled = false): 404 audit_disabled. */
export async function auditRoutes(app: FastifyInstance, opts: { store?: AuditStore }): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/audit',
    {
      config: { access: { permission: 'audit:read' } },
      schema: {
        summary: 'The audit trail: state-changing operations, newest first',
        description:
          'Every deploy, removal, tool deploy, key change, memory write and import, dead-letter replay, execution and configuration read: time, principal, source address, request id, action, target, outcome (ok, denied, error) and status. ' +
          '`since`/`until` take an ISO 8601 time or a duration ago ("1h"); `action` takes a family such as "memory.*"; `principal=-` selects requests without one. Page with `offset`.',
        tags: ['system'],
        querystring: onFirstRequest(() => auditQuery()),
        response: docResponses(() => ({
          200: z.object({
            records: z.array(auditRecordSchema()),
            count: z.number().int(),
            limit: z.number().int(),
            offset: z.number().int(),
          }),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      if (!opts.store)
        throw new CaxtonError('not_found', 'the audit trail is disabled ([audit] enabled = false in caxton.toml)', {
          reason: 'audit_disabled',
        });
      const q = req.query;
      const query: AuditQuery = { limit: q.limit, offset: q.offset };
      if (q.principal !== undefined) query.principal = q.principal;
      if (q.action !== undefined) query.action = q.action;
      if (q.outcome !== undefined) query.outcome = q.outcome;
      if (q.target !== undefined) query.target = q.target;
      if (q.since !== undefined) query.since = q.since;
      if (q.until !== undefined) query.until = q.until;
      const records = opts.store.query(query, req.principal);
      return { records, count: records.length, limit: q.limit, offset: q.offset };
    },
  );
}
