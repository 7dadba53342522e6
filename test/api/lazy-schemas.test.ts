import Fastify from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { docResponses, lazyValidatorCompiler, onFirstRequest, onUse } from '../../src/api/lazy-schemas.js';
import { openApiDocument } from '../../src/api/openapi.js';

/** A fastify app set up as the API's (app.ts): lazy validation, plain serialization, the document noted. */
function apiLike() {
  const app = Fastify();
  app.setValidatorCompiler(lazyValidatorCompiler);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  return { app, doc: openApiDocument(app, '1.2.3') };
}

describe('route schemas built when first needed', () => {
  it('answers without building them, and the document still lists them', async () => {
    let built = 0;
    const item = onUse(() => {
      built++;
      return z.object({ id: z.string(), size: z.number().int().describe('bytes') });
    });
    const { app, doc } = apiLike();
    app.withTypeProvider<ZodTypeProvider>().get(
      '/items/:id',
      {
        schema: {
          params: z.object({ id: z.string().max(5) }),
          response: docResponses(() => ({ 200: item(), 404: z.object({ error: z.string() }) })),
        },
      },
      // The handler's result is checked against the documented schema by the type provider.
      async (req) => ({ id: req.params.id, size: 3, extra: 'kept' }),
    );
    await app.ready();
    try {
      const ok = await app.inject({ url: '/items/abc' });
      expect(ok.statusCode).toBe(200);
      expect(ok.headers['content-type']).toBe('application/json; charset=utf-8');
      // Serialized as it is: response schemas never strip or check what a handler returns.
      expect(ok.json()).toEqual({ id: 'abc', size: 3, extra: 'kept' });
      const bad = await app.inject({ url: '/items/toolong' });
      expect(bad.statusCode).toBe(400);
      expect(built).toBe(0);

      const document = (await doc()) as {
        paths: Record<string, { get: { responses: Record<string, { content: Record<string, { schema: unknown }> }> } }>;
      };
      expect(built).toBe(1);
      const responses = document.paths['/items/{id}']!.get.responses;
      expect(Object.keys(responses)).toEqual(['200', '404']);
      expect(responses['200']!.content['application/json']!.schema).toMatchObject({
        type: 'object',
        properties: { id: { type: 'string' }, size: { type: 'integer', description: 'bytes' } },
        required: ['id', 'size'],
      });
      await doc();
      expect(built).toBe(1);
    } finally {
      await app.close();
    }
  });

  it("builds a request schema on the route's first request, validates with it, and documents it", async () => {
    let built = 0;
    const { app, doc } = apiLike();
    app.withTypeProvider<ZodTypeProvider>().get(
      '/search',
      {
        schema: {
          querystring: onFirstRequest(() => {
            built++;
            return z.object({ q: z.string().min(2).describe('what to look for'), limit: z.coerce.number().default(5) });
          }),
        },
      },
      // The request is typed from the schema: `limit` is a number after coercion.
      async (req) => ({ q: req.query.q, limit: req.query.limit * 2 }),
    );
    await app.ready();
    try {
      expect(built).toBe(0);
      const ok = await app.inject({ url: '/search?q=abc' });
      expect(ok.statusCode).toBe(200);
      expect(ok.json()).toEqual({ q: 'abc', limit: 10 });
      expect(built).toBe(1);
      const bad = await app.inject({ url: '/search?q=a' });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().message).toMatch(/querystring\/q/);
      expect(built).toBe(1);

      const document = (await doc()) as {
        paths: Record<string, { get: { parameters: { name: string; in: string; description?: string }[] } }>;
      };
      expect(document.paths['/search']!.get.parameters).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ name: 'q', in: 'query', description: 'what to look for' }),
          expect.objectContaining({ name: 'limit', in: 'query' }),
        ]),
      );
      expect(built).toBe(1);
    } finally {
      await app.close();
    }
  });
});
