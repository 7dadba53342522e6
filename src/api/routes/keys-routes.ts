import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { principalScopeSchema, ROLE_PERMISSIONS, ROLES, type ApiKeyStore } from '../../auth/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { MAX_PERIOD_MS, parseDuration } from '../../shared/units.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { docResponses, onFirstRequest, onUse } from '../lazy-schemas.js';

// The module's schemas are built on first use (a request, or the OpenAPI document): a start
// registers the routes without constructing them.
const keySchema = onUse(() =>
  z.object({
    id: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    scope: principalScopeSchema,
    limits: z.record(z.string(), z.number()),
    created_at: z.string(),
    created_by: z.string().nullable(),
    expires_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
    rotated_at: z.string().nullable(),
    last_used_at: z.string().nullable(),
    state: z.enum(['active', 'expired', 'revoked']),
  }),
);

const createBody = onUse(() => {
  const glob = z
    .string()
    .min(1)
    .max(200)
    .regex(/^[^\s]+$/, { message: 'expected a name or a glob such as "support-*" (no spaces)' });
  const globs = z.array(glob).max(100);
  return z.strictObject({
    name: z.string().min(1).max(64),
    role: z.enum(ROLES, { error: `expected one of: ${ROLES.join(', ')}` }),
    expires: z
      .string()
      .refine(
        (s) => {
          const ms = parseDuration(s);
          return ms !== undefined && ms > 0 && ms <= MAX_PERIOD_MS;
        },
        { message: 'expected a duration such as "30d" or "12h" (at most 366 days)' },
      )
      .optional()
      .describe('time to live, e.g. "30d"; absent: never expires'),
    agents: globs.optional().describe('agents this key may use (globs such as "support-*"); absent: all'),
    capabilities: globs.optional(),
    memory: globs.optional().describe('memory scopes'),
    tools: globs.optional().describe('host tools (SERVER.tool, SERVER.*)'),
    limits: z
      .strictObject({
        requests_per_minute: z.number().int().min(1).optional(),
        concurrent_executions: z.number().int().min(1).optional(),
        tokens_per_minute: z.number().int().min(1).optional(),
      })
      .optional(),
  });
});

const keyParams = onUse(() => z.object({ key: z.string().min(1).max(100) }));
const errors = {
  400: errorEnvelopeSchema,
  403: errorEnvelopeSchema,
  404: errorEnvelopeSchema,
  409: errorEnvelopeSchema,
};

export interface KeyRoutesOptions {
  keys: ApiKeyStore;
  /** Current use of a principal against its limits (src/auth/caller-limits.ts), for `caxton key show`. */
  usage?: (principalId: string) => unknown;
}

/** API keys (admin only) and `whoami` (any authenticated caller). Secrets appear only in create and rotate answers. */
export async function keyRoutes(app: FastifyInstance, opts: KeyRoutesOptions): Promise<void> {
  const { keys } = opts;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/whoami',
    { schema: { summary: 'The authenticated caller: principal, role and permissions', tags: ['auth'] } },
    async (req) => {
      const p = req.principal!;
      // The permissions are the role's: the web console hides what the caller may not use.
      return {
        id: p.id,
        kind: p.kind,
        name: p.name,
        role: p.role,
        permissions: [...ROLE_PERMISSIONS[p.role]],
        scope: p.scope,
        ...(opts.usage && { usage: opts.usage(p.id) }),
      };
    },
  );

  r.get(
    '/keys',
    {
      schema: {
        summary: 'List API keys (no secrets)',
        tags: ['auth'],
        querystring: onFirstRequest(() =>
          z.object({ all: z.enum(['true', 'false']).optional().describe('include revoked keys') }),
        ),
        response: docResponses(() => ({ 200: z.object({ keys: z.array(keySchema()) }), ...errors })),
      },
    },
    async (req) => ({
      keys: keys.list({ all: req.query.all === 'true' }),
    }),
  );

  r.post(
    '/keys',
    {
      schema: {
        summary: 'Create an API key; the answer holds the only copy of its secret',
        tags: ['auth'],
        body: onFirstRequest(() => createBody()),
        response: docResponses(() => ({ 201: z.object({ key: keySchema(), secret: z.string() }), ...errors })),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const scope = {
        ...(b.agents && { agents: b.agents }),
        ...(b.capabilities && { capabilities: b.capabilities }),
        ...(b.memory && { memory: b.memory }),
        ...(b.tools && { tools: b.tools }),
      };
      const created = keys.create({
        name: b.name,
        role: b.role,
        scope,
        ...(b.limits && { limits: b.limits }),
        ...(b.expires !== undefined && { ttlMs: parseDuration(b.expires)! }),
        createdBy: req.principal!.id,
      });
      reply.header('cache-control', 'no-store');
      return reply.code(201).send(created);
    },
  );

  r.get(
    '/keys/:key',
    {
      schema: {
        summary: 'One API key (by id or name), with its use against its limits',
        tags: ['auth'],
        params: onFirstRequest(() => keyParams()),
        response: docResponses(() => ({
          200: z.object({ key: keySchema(), usage: z.unknown().optional() }),
          ...errors,
        })),
      },
    },
    async (req) => {
      const key = keys.get(req.params.key);
      if (!key)
        throw new CaxtonError('not_found', `no API key with id or name "${req.params.key}"; see \`caxton key list\``);
      return { key, ...(opts.usage && { usage: opts.usage(`key:${key.name}`) }) };
    },
  );

  r.delete(
    '/keys/:key',
    {
      schema: {
        summary: 'Revoke an API key (it stops working at once)',
        tags: ['auth'],
        params: onFirstRequest(() => keyParams()),
        response: docResponses(() => ({ 200: z.object({ key: keySchema() }), ...errors })),
      },
    },
    async (req) => {
      // A key may revoke itself: this request is answered, only the others made with it end.
      req.releaseCredential?.();
      return { key: keys.revoke(req.params.key) };
    },
  );

  r.post(
    '/keys/:key/rotate',
    {
      schema: {
        summary: 'A new secret for a key; the old one stops working at once',
        tags: ['auth'],
        params: onFirstRequest(() => keyParams()),
        response: docResponses(() => ({ 200: z.object({ key: keySchema(), secret: z.string() }), ...errors })),
      },
    },
    async (req, reply) => {
      reply.header('cache-control', 'no-store');
      // A key may rotate itself: this request gets the new secret, only the others made with the old one end.
      req.releaseCredential?.();
      return keys.rotate(req.params.key);
    },
  );
}
