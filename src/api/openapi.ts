/**
 * GET /api/v1/openapi.json, built on its first request rather than at start. The routes are
 * noted as they are registered (an `onRoute` hook before any of them); the first request replays
 * them, schemas and all, into a scratch fastify instance with `@fastify/swagger`, which generates
 * the document as it would have from the API itself. Neither `@fastify/swagger` nor its YAML
 * support is loaded by a server nobody asks for its document, and no route pays for the plugin's
 * hook as it is registered.
 */
import type { FastifyInstance, RouteOptions } from 'fastify';
import { jsonSchemaTransform, validatorCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { agentDocumentSchema } from '../agents/index.js';
import { builtSchema } from './lazy-schemas.js';
import { messageBodyDocSchema } from './routes/messaging-routes.js';

/** What a route's registration tells the document. */
type NotedRoute = Pick<RouteOptions, 'method' | 'url' | 'schema' | 'config' | 'constraints'>;

/**
 * Notes every route registered on `app` from now on (call it before any route) and returns the
 * function that builds the document, once, when it is first asked for (after `app` is ready).
 */
export function openApiDocument(app: FastifyInstance, version: string): () => Promise<unknown> {
  const routes: NotedRoute[] = [];
  app.addHook('onRoute', (r) => {
    // fastify's own HEAD twins of GET routes: @fastify/swagger leaves them out too.
    if (r.method === 'HEAD') return;
    routes.push(r);
  });
  let built: Promise<unknown> | undefined;
  return () => (built ??= build(routes, version));
}

async function build(routes: readonly NotedRoute[], version: string): Promise<unknown> {
  const [{ default: Fastify }, { default: swagger }] = await Promise.all([
    import('fastify'),
    import('@fastify/swagger'),
  ]);
  const scratch = Fastify({ exposeHeadRoutes: false });
  try {
    scratch.setValidatorCompiler(validatorCompiler);
    scratch.setSerializerCompiler(() => (data) => JSON.stringify(data));
    await scratch.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Caxton API',
          version,
          description: 'Management API of the Caxton multi-agent orchestration server',
        },
      },
      transform: jsonSchemaTransform,
    });
    const handler = async () => null;
    for (const r of routes)
      scratch.route({
        method: r.method,
        url: r.url,
        handler,
        ...(r.schema && { schema: documented(r.schema) }),
        ...(r.config && { config: r.config }),
        ...(r.constraints && { constraints: r.constraints }),
      });
    await scratch.ready();
    return withParsedBodies(scratch.swagger() as OpenApiPaths);
  } finally {
    await scratch.close();
  }
}

/** A route's schemas, each built (lazy-schemas.ts). */
function documented(schema: NonNullable<NotedRoute['schema']>): NotedRoute['schema'] {
  const built: Record<string, unknown> = { ...schema };
  for (const part of ['body', 'querystring', 'params', 'headers', 'response'])
    if (built[part] !== undefined) built[part] = builtSchema(built[part]);
  return built;
}

type OpenApiPaths = { paths?: Record<string, Record<string, Record<string, unknown>>> };

/** The generated document, plus the body schemas of the routes that parse their bodies themselves (agents, messages). */
function withParsedBodies(doc: OpenApiPaths): OpenApiPaths {
  const agentBodySchema = z.toJSONSchema(agentDocumentSchema, { io: 'input', unrepresentable: 'any' });
  const requestBody = {
    required: true,
    description:
      'An agent definition: TOML (primary), Markdown with YAML frontmatter (Claude Code subagent format), or JSON',
    content: {
      'application/toml': { schema: { type: 'string' } },
      'text/markdown': { schema: { type: 'string' } },
      'application/json': { schema: agentBodySchema },
    },
  };
  for (const [path, method] of [
    ['/api/v1/agents', 'post'],
    ['/api/v1/agents/validate', 'post'],
    ['/api/v1/agents/{name}', 'put'],
  ] as const) {
    const op = doc.paths?.[path]?.[method];
    if (op) op.requestBody = requestBody;
  }
  const send = doc.paths?.['/api/v1/messages']?.post;
  if (send) {
    send.requestBody = {
      required: true,
      description: 'A FIPA-ACL message (JSON)',
      content: {
        'application/json': {
          schema: z.toJSONSchema(messageBodyDocSchema(), { io: 'input', unrepresentable: 'any' }),
        },
      },
    };
  }
  return doc;
}
