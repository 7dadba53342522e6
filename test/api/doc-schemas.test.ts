import Fastify from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { docResponses, onUse } from '../../src/api/doc-schemas.js';
import { openApiDocument } from '../../src/api/openapi.js';

describe('response schemas built when the API document is', () => {
  it('answers without building them, and the document still lists them', async () => {
    let built = 0;
    const item = onUse(() => {
      built++;
      return z.object({ id: z.string(), size: z.number().int().describe('bytes') });
    });
    const app = Fastify();
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(() => (data) => JSON.stringify(data));
    const doc = openApiDocument(app, '1.2.3');
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
});
