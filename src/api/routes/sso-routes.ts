/**
 * The web console's single sign-on (src/auth/sso.ts): what the console needs to send the browser
 * to the issuer, and the exchange of the code it brings back. Both are public: they come before
 * any credential exists. Nothing is stored; the token goes to the console, which keeps it in
 * sessionStorage like an API key.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { SsoClient } from '../../auth/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { docResponses, onFirstRequest, onUse } from '../lazy-schemas.js';

const ssoInfoSchema = onUse(() =>
  z.union([
    z.object({ enabled: z.literal(false) }),
    z.object({
      enabled: z.literal(true),
      authorization_endpoint: z.string(),
      client_id: z.string(),
      scope: z.string(),
      redirect_path: z.string().describe("append to this server's origin: the redirect URI registered at the issuer"),
    }),
  ]),
);

const exchangeBodySchema = onUse(() =>
  z.strictObject({
    code: z.string().min(1).max(4096),
    // RFC 7636: 43 to 128 characters of [A-Za-z0-9-._~].
    code_verifier: z.string().regex(/^[A-Za-z0-9._~-]{43,128}$/, {
      message: 'expected a PKCE code verifier: 43 to 128 characters of letters, digits, "-", ".", "_", "~"',
    }),
    redirect_uri: z.string().max(2048),
  }),
);

export async function ssoRoutes(app: FastifyInstance, opts: { client: SsoClient | undefined }): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { client } = opts;

  r.get(
    '/auth/sso',
    {
      schema: {
        summary:
          "The console's single sign-on: the issuer's authorization endpoint and the client (enabled: false without [auth.jwt.sso])",
        tags: ['auth'],
        response: docResponses(() => ({ 200: ssoInfoSchema(), 503: errorEnvelopeSchema })),
      },
    },
    async () =>
      client ? { enabled: true as const, ...(await client.consoleSettings()) } : { enabled: false as const },
  );

  r.post(
    '/auth/sso/token',
    {
      bodyLimit: 16 * 1024,
      schema: {
        summary: 'Exchanges the code the issuer sent back to the console for the bearer token the console then uses',
        tags: ['auth'],
        body: onFirstRequest(() => exchangeBodySchema()),
        response: docResponses(() => ({
          200: z.object({ token: z.string(), expires_in: z.number().optional() }),
          400: errorEnvelopeSchema,
          404: errorEnvelopeSchema,
          503: errorEnvelopeSchema,
        })),
      },
    },
    async (req, reply) => {
      if (!client)
        throw new CaxtonError(
          'not_found',
          'single sign-on is not configured on this server ([auth.jwt.sso]); sign in with an API key',
        );
      const out = await client.exchange(
        req.body.code,
        req.body.code_verifier,
        req.body.redirect_uri,
        `${req.protocol}://${req.host}`,
      );
      reply.header('cache-control', 'no-store');
      return out;
    },
  );
}
