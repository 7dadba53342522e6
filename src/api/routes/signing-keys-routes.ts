import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { agentOwner, NODE_OWNER, type SigningKeyStore } from '../../auth/index.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { docResponses, onFirstRequest, onUse } from '../lazy-schemas.js';

const signingKeySchema = onUse(() =>
  z
    .object({
      id: z.string(),
      owner: z.string().describe('"node", "agent:NAME", or "principal:ID" (a caller\'s registered key)'),
      node: z.string().describe('the node holding the private half ("outside" for a caller\'s registered key)'),
      public_key: z.string().describe('raw Ed25519 public key, base64'),
      created_at: z.string(),
      retired_at: z.string().nullable(),
      state: z.enum(['active', 'retired']),
    })
    .describe('A message signing key: its public half (the private half never leaves its node)'),
);

const errors = { 400: errorEnvelopeSchema, 403: errorEnvelopeSchema };

/** "node", "agent:NAME" or an agent's bare name. */
const ownerOf = (v: string): string => (v === NODE_OWNER || v.startsWith('agent:') ? v : agentOwner(v));

/** Message signing keys (ADR 0059): public halves listed, an owner's key rotated on this node, a caller's key registered (ADR 0115). */
export async function signingKeyRoutes(app: FastifyInstance, opts: { keys: SigningKeyStore }): Promise<void> {
  const { keys } = opts;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/signing-keys',
    {
      schema: {
        summary: 'List message signing keys (public halves), active and retired',
        tags: ['auth'],
        response: docResponses(() => ({
          200: z.object({ node: z.string(), keys: z.array(signingKeySchema()) }),
          ...errors,
        })),
      },
    },
    async () => ({ node: keys.node, keys: keys.list() }),
  );

  r.post(
    '/signing-keys/:owner/rotate',
    {
      schema: {
        summary:
          'A new signing key for an owner on this node; the old one is retired and still verifies what it signed',
        tags: ['auth'],
        params: onFirstRequest(() =>
          z.object({ owner: z.string().min(1).max(140).describe('"node", or an agent name') }),
        ),
        response: docResponses(() => ({
          200: z.object({ key: signingKeySchema(), retired: signingKeySchema().nullable() }),
          ...errors,
        })),
      },
    },
    async (req) => keys.rotate(ownerOf(req.params.owner)),
  );

  r.post(
    '/signing-keys/principals',
    {
      schema: {
        summary: "Register a caller's Ed25519 public key: messages it signs are accepted as that principal's",
        description:
          "The key row is endorsed by the trust anchor like every signing key (ADR 0114); the principal's key registered before is retired. A message the principal submits may then carry `signature` (ADR 0115, docs/messaging.md). Registering the active key again changes nothing.",
        tags: ['auth'],
        body: onFirstRequest(() =>
          z.object({
            principal: z
              .string()
              .min(1)
              .max(240)
              .describe('the caller\'s id as GET /api/v1/whoami shows it, e.g. "key:ci"'),
            public_key: z
              .string()
              .min(1)
              .max(2000)
              .describe('the 32 raw bytes of the public key in base64, or an SPKI PEM'),
          }),
        ),
        response: docResponses(() => ({
          201: z.object({ key: signingKeySchema(), retired: signingKeySchema().nullable() }),
          ...errors,
        })),
      },
    },
    async (req, reply) => reply.code(201).send(keys.registerPrincipalKey(req.body.principal, req.body.public_key)),
  );
}
