import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { agentOwner, NODE_OWNER, type SigningKeyStore } from '../../auth/index.js';
import { errorEnvelopeSchema } from '../schemas.js';

const signingKeySchema = z
  .object({
    id: z.string(),
    owner: z.string().describe('"node", or "agent:NAME"'),
    node: z.string().describe('the node holding the private half'),
    public_key: z.string().describe('raw Ed25519 public key, base64'),
    created_at: z.string(),
    retired_at: z.string().nullable(),
    state: z.enum(['active', 'retired']),
  })
  .describe('A message signing key: its public half (the private half never leaves its node)');

const errors = { 400: errorEnvelopeSchema, 403: errorEnvelopeSchema };

/** "node", "agent:NAME" or an agent's bare name. */
const ownerOf = (v: string): string => (v === NODE_OWNER || v.startsWith('agent:') ? v : agentOwner(v));

/** Message signing keys (ADR 0059): public halves listed, an owner's key rotated on this node. */
export async function signingKeyRoutes(app: FastifyInstance, opts: { keys: SigningKeyStore }): Promise<void> {
  const { keys } = opts;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/signing-keys',
    {
      schema: {
        summary: 'List message signing keys (public halves), active and retired',
        tags: ['auth'],
        response: { 200: z.object({ node: z.string(), keys: z.array(signingKeySchema) }), ...errors },
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
        params: z.object({ owner: z.string().min(1).max(140).describe('"node", or an agent name') }),
        response: { 200: z.object({ key: signingKeySchema, retired: signingKeySchema.nullable() }), ...errors },
      },
    },
    async (req) => keys.rotate(ownerOf(req.params.owner)),
  );
}
