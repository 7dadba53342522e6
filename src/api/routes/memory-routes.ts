/**
 * Memory REST API under /api/v1/memory (registered by the server's memory wiring when memory is
 * enabled). Scopes are written `workspace`, `global` or `agent:NAME`; reads without `scope` cover
 * every scope, writes without one go to `workspace`. Bad input is a 400 naming the field (413 for
 * oversized values), an unknown entity a 404; every write is one transaction.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Principal } from '../../auth/index.js';
import {
  checkMemoryScope,
  exportJson,
  exportJsonl,
  matchedObservation,
  parseScope,
  permittedScopes,
  prepareImport,
  runImport,
  type ImportFormat,
  type MemoryBackend,
} from '../../memory/index.js';
import { toEnvelope } from '../envelope.js';
import { openSse, wantsEventStream } from '../sse-stream.js';
import {
  checkAdditions,
  checkDeletions,
  checkEntities,
  checkNames,
  checkObservations,
  checkRelations,
} from '../../memory/memory-validate.js';
import { CaxtonError } from '../../shared/errors.js';
import { onFirstRequest, onUse } from '../lazy-schemas.js';

/** Largest import body (JSON or JSONL). */
export const MAX_IMPORT_BYTES = 64 * 1024 * 1024;

const scopeQuery = onUse(() =>
  z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('"workspace", "global" or "agent:NAME"; reads without it cover every scope'),
);

/** The scopes a read covers: the one named (checked before), or every stored scope the caller may use. */
async function scopesOf(
  store: MemoryBackend,
  scope: string | undefined,
  caller: Principal | undefined,
): Promise<string[]> {
  return scope === undefined ? permittedScopes(caller, await store.scopes()) : [parseScope(scope)];
}

function bodyObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new CaxtonError('invalid_request', 'the request body must be a JSON object', { field: '' });
  return body as Record<string, unknown>;
}

function writeScope(body: Record<string, unknown>, query: string | undefined): string {
  const s = body.scope ?? query;
  return s === undefined ? 'workspace' : parseScope(s);
}

export async function memoryRoutes(app: FastifyInstance, opts: { store: MemoryBackend }): Promise<void> {
  const { store } = opts;
  const r = app.withTypeProvider<ZodTypeProvider>();
  // The scope a request names is checked by the memory layer's rule (checkMemoryScope), as the
  // MCP memory tools check theirs. Reads without a scope would cover every scope, imports keep
  // each record's own, and writes default to "workspace".
  app.addHook('preHandler', async (req) => {
    const p = req.principal;
    if (!p || (p.scope.memory === undefined && p.scope.agents === undefined)) return;
    const q = (req.query as Record<string, unknown> | undefined)?.scope;
    const b =
      typeof req.body === 'object' && req.body !== null && !Array.isArray(req.body)
        ? (req.body as Record<string, unknown>).scope
        : undefined;
    const given = typeof b === 'string' ? b : typeof q === 'string' ? q : undefined;
    const url = req.routeOptions.url ?? '';
    const defaultsToWorkspace =
      req.method !== 'GET' && !url.endsWith('/memory/search') && !url.endsWith('/memory/import');
    checkMemoryScope(p, given ?? (defaultsToWorkspace ? 'workspace' : undefined));
  });
  // Imports take JSONL (and plain text) as well as JSON.
  app.addContentTypeParser(
    ['application/x-ndjson', 'application/jsonl', 'application/x-jsonlines', 'text/plain'],
    { parseAs: 'string', bodyLimit: MAX_IMPORT_BYTES },
    (_req, body, done) => done(null, body),
  );
  const tags = ['memory'];

  entityRoutes(app, store);
  graphEditRoutes(app, store);
  queryRoutes(app, store);
  transferRoutes(app, store);

  r.get(
    '/memory/stats',
    {
      schema: {
        summary: 'Entity, relation and observation counts per scope; embedding model; database size',
        description:
          "Counts of the scopes the caller may use, and totals over them alone; for a caller that may not use every scope, the store-wide figures (`database_bytes`, the embedding's `indexed` and `ann`) are left out.",
        tags,
      },
    },
    async (req) => {
      const stats = await store.stats();
      // Only the scopes this caller may use: their figures, and totals summed over them alone.
      const all = Object.keys(stats.by_scope);
      const shown = permittedScopes(req.principal, all);
      if (shown.length === all.length) return stats;
      const by_scope = Object.fromEntries(shown.map((scope) => [scope, stats.by_scope[scope]!]));
      const sum = (k: 'entities' | 'relations' | 'observations') =>
        Object.values(by_scope).reduce((n, c) => n + c[k], 0);
      // The database's size and the vectors indexed (and the index's state) are the whole store's:
      // they would count the hidden scopes, so they are left out.
      const { database_bytes: _bytes, ...rest } = stats;
      return {
        ...rest,
        entities: sum('entities'),
        relations: sum('relations'),
        observations: sum('observations'),
        by_scope,
        embedding: stats.embedding && { model: stats.embedding.model, dimensions: stats.embedding.dimensions },
      };
    },
  );
}

/** Entities: list, create, read and delete one, and one entity's observations. */
function entityRoutes(app: FastifyInstance, store: MemoryBackend): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const L = store.limits;
  const tags = ['memory'];
  r.get(
    '/memory/entities',
    {
      schema: {
        summary: 'List entities',
        tags,
        querystring: onFirstRequest(() =>
          z.object({
            scope: scopeQuery(),
            type: z.string().min(1).optional(),
            limit: z.coerce.number().int().min(1).max(10_000).default(100),
            offset: z.coerce.number().int().min(0).default(0),
          }),
        ),
      },
    },
    async (req) => {
      const scopes = await scopesOf(store, req.query.scope, req.principal);
      const inScopes = (await store.readGraph(scopes)).entities;
      // Every type of the scopes with its count, whatever `type` picks: what a browser offers to pick from.
      const types: Record<string, number> = {};
      for (const e of inScopes) types[e.entityType] = (types[e.entityType] ?? 0) + 1;
      const all = inScopes.filter((e) => req.query.type === undefined || e.entityType === req.query.type);
      return {
        entities: all.slice(req.query.offset, req.query.offset + req.query.limit),
        types,
        total: all.length,
        limit: req.query.limit,
        offset: req.query.offset,
      };
    },
  );

  r.post(
    '/memory/entities',
    {
      schema: {
        summary: 'Create entities (create_entities); existing names are skipped',
        tags,
        querystring: onFirstRequest(() => z.object({ scope: scopeQuery() })),
      },
    },
    async (req, reply) => {
      const body = bodyObject(req.body);
      const scope = writeScope(body, req.query.scope);
      const created = await store.createEntities(scope, checkEntities(body.entities, L));
      return reply.code(201).send({ scope, created });
    },
  );

  r.get(
    '/memory/entities/:name',
    {
      schema: {
        summary: 'One entity (in each scope that has it) and its relations (open_nodes)',
        tags,
        params: onFirstRequest(() => z.object({ name: z.string().min(1) })),
        querystring: onFirstRequest(() => z.object({ scope: scopeQuery() })),
      },
    },
    async (req) => {
      const g = await store.openNodes(await scopesOf(store, req.query.scope, req.principal), [req.params.name]);
      if (g.entities.length === 0)
        throw new CaxtonError(
          'not_found',
          `no entity named "${req.params.name}"${req.query.scope ? ` in scope ${req.query.scope}` : ''}`,
          { name: req.params.name },
        );
      return g;
    },
  );

  r.delete(
    '/memory/entities/:name',
    {
      schema: {
        summary: 'Delete an entity and its relations (delete_entities)',
        tags,
        params: onFirstRequest(() => z.object({ name: z.string().min(1) })),
        querystring: onFirstRequest(() => z.object({ scope: z.string().min(1).max(200) })),
      },
    },
    async (req) => {
      const deleted = await store.deleteEntities(parseScope(req.query.scope), [req.params.name]);
      if (deleted === 0)
        throw new CaxtonError('not_found', `no entity named "${req.params.name}" in scope ${req.query.scope}`, {
          name: req.params.name,
        });
      return { deleted };
    },
  );

  r.post(
    '/memory/entities/:name/observations',
    {
      schema: {
        summary: 'Add observations to an entity (add_observations)',
        tags,
        params: onFirstRequest(() => z.object({ name: z.string().min(1) })),
        querystring: onFirstRequest(() => z.object({ scope: scopeQuery() })),
      },
    },
    async (req) => {
      const body = bodyObject(req.body);
      const scope = writeScope(body, req.query.scope);
      const [res] = await store.addObservations(scope, [
        { entityName: req.params.name, contents: checkObservations(body.contents, 'contents', L) },
      ]);
      return res;
    },
  );
}

/** Observations added and deleted, relations listed, added and deleted, entities deleted in bulk. */
function graphEditRoutes(app: FastifyInstance, store: MemoryBackend): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const L = store.limits;
  const tags = ['memory'];
  r.post(
    '/memory/observations/add',
    {
      schema: {
        summary: 'Add observations to several entities (add_observations)',
        tags,
        querystring: onFirstRequest(() => z.object({ scope: scopeQuery() })),
      },
    },
    async (req) => {
      const body = bodyObject(req.body);
      return {
        results: await store.addObservations(writeScope(body, req.query.scope), checkAdditions(body.observations, L)),
      };
    },
  );

  r.post(
    '/memory/observations/delete',
    {
      schema: {
        summary: 'Delete observations (delete_observations)',
        tags,
        querystring: onFirstRequest(() => z.object({ scope: scopeQuery() })),
      },
    },
    async (req) => {
      const body = bodyObject(req.body);
      await store.deleteObservations(writeScope(body, req.query.scope), checkDeletions(body.deletions, L));
      return { success: true };
    },
  );

  r.get(
    '/memory/relations',
    {
      schema: { summary: 'List relations', tags, querystring: onFirstRequest(() => z.object({ scope: scopeQuery() })) },
    },
    async (req) => ({
      relations: (await store.readGraph(await scopesOf(store, req.query.scope, req.principal))).relations,
    }),
  );

  r.post(
    '/memory/relations',
    {
      schema: {
        summary: 'Create relations (create_relations); existing ones are skipped',
        tags,
        querystring: onFirstRequest(() => z.object({ scope: scopeQuery() })),
      },
    },
    async (req, reply) => {
      const body = bodyObject(req.body);
      const scope = writeScope(body, req.query.scope);
      return reply
        .code(201)
        .send({ scope, created: await store.createRelations(scope, checkRelations(body.relations, L)) });
    },
  );

  r.post(
    '/memory/relations/delete',
    {
      schema: {
        summary: 'Delete relations (delete_relations)',
        tags,
        querystring: onFirstRequest(() => z.object({ scope: scopeQuery() })),
      },
    },
    async (req) => {
      const body = bodyObject(req.body);
      return {
        deleted: await store.deleteRelations(writeScope(body, req.query.scope), checkRelations(body.relations, L)),
      };
    },
  );

  r.post(
    '/memory/entities/delete',
    {
      schema: {
        summary: 'Delete entities by name (delete_entities)',
        tags,
        querystring: onFirstRequest(() => z.object({ scope: scopeQuery() })),
      },
    },
    async (req) => {
      const body = bodyObject(req.body);
      return {
        deleted: await store.deleteEntities(
          writeScope(body, req.query.scope),
          checkNames(body.entityNames, L, 'entityNames'),
        ),
      };
    },
  );
}

/** Semantic search and graph traversal. */
function queryRoutes(app: FastifyInstance, store: MemoryBackend): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['memory'];
  r.post(
    '/memory/search',
    {
      schema: {
        summary: 'Semantic, keyword or hybrid search; results best first with their scores',
        tags,
        body: onFirstRequest(() =>
          z.object({
            query: z.string().min(1).max(65_536),
            scope: z.string().min(1).max(200).optional(),
            entity_type: z.string().min(1).optional(),
            limit: z.number().int().min(1).max(100).default(10),
            min_similarity: z.number().min(0).max(1).default(0),
            mode: z.enum(['hybrid', 'semantic', 'keyword']).default('hybrid'),
          }),
        ),
      },
    },
    async (req) => {
      const b = req.body;
      const results = await store.search({
        query: b.query,
        scopes: await scopesOf(store, b.scope, req.principal),
        limit: b.limit,
        min_similarity: b.min_similarity,
        mode: b.mode,
        ...(b.entity_type !== undefined && { entity_type: b.entity_type }),
      });
      // Each hit names the observation it matched, so a result shows that one rather than the first.
      return { results: results.map((h) => ({ ...h, match: matchedObservation(h.entity.observations, b.query) })) };
    },
  );

  r.get(
    '/memory/traverse',
    {
      schema: {
        summary: 'Walk the graph from an entity along relations (of the given types) to a maximum depth',
        tags,
        querystring: onFirstRequest(() =>
          z.object({
            from: z.string().min(1),
            scope: z.string().min(1).max(200).default('workspace'),
            relation_types: z.string().optional().describe('comma-separated'),
            max_depth: z.coerce.number().int().min(0).max(10).default(2),
            direction: z.enum(['out', 'in', 'both']).default('out'),
            limit: z.coerce.number().int().min(1).max(100_000).default(1000),
          }),
        ),
      },
    },
    async (req) => {
      const q = req.query;
      const types = q.relation_types
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      return store.traverse({
        scope: parseScope(q.scope),
        from: q.from,
        max_depth: q.max_depth,
        direction: q.direction,
        limit: q.limit,
        ...(types && { relation_types: types }),
      });
    },
  );
}

/** Export and import (JSON, and the reference server's JSONL). */
function transferRoutes(app: FastifyInstance, store: MemoryBackend): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['memory'];
  r.get(
    '/memory/export',
    {
      schema: {
        summary: "Export as versioned JSON (every scope, or one) or as the MCP reference server's JSONL (one scope)",
        tags,
        querystring: onFirstRequest(() =>
          z.object({ scope: scopeQuery(), format: z.enum(['json', 'jsonl']).default('json') }),
        ),
      },
    },
    async (req, reply) => {
      if (req.query.format === 'jsonl') {
        if (req.query.scope === undefined)
          throw new CaxtonError('invalid_request', 'a JSONL export covers one scope: give "scope"', { field: 'scope' });
        return reply.type('application/x-ndjson').send(await exportJsonl(store, parseScope(req.query.scope)));
      }
      return exportJson(store, await scopesOf(store, req.query.scope, req.principal));
    },
  );

  r.post(
    '/memory/import',
    {
      bodyLimit: MAX_IMPORT_BYTES,
      schema: {
        summary: "Import versioned JSON or the reference server's JSONL (checked in full, then one transaction)",
        description:
          'With `Accept: text/event-stream` the answer is a stream: `progress` events ({done, total} entities embedded), then `result` (as the JSON answer) or `error` (the error envelope). Input errors are answered before the stream opens, with their HTTP status.',
        tags,
        querystring: onFirstRequest(() =>
          z.object({ scope: scopeQuery(), format: z.enum(['json', 'jsonl']).optional() }),
        ),
      },
    },
    async (req, reply) => {
      const body = req.body;
      const format = req.query.format as ImportFormat | undefined;
      const scope = req.query.scope === undefined ? undefined : parseScope(req.query.scope);
      const input =
        typeof body === 'string'
          ? body
          : body === undefined || body === null
            ? ''
            : format === 'jsonl'
              ? JSON.stringify(body)
              : (body as never);
      if (input === '') throw new CaxtonError('invalid_request', 'the import body is empty', { field: '' });
      const prepared = prepareImport(store, input, {
        ...(format !== undefined && { format }),
        ...(scope !== undefined && { scope }),
      });
      if (!wantsEventStream(req)) {
        const result = await runImport(store, prepared);
        req.log.info(result, 'memory import');
        return result;
      }
      const sse = openSse(req, reply);
      try {
        // The import goes on if the client leaves: it is one transaction, done or not done.
        const result = await runImport(store, prepared, (done, total) => sse.send('progress', { done, total }));
        req.log.info(result, 'memory import');
        sse.send('result', result);
      } catch (e) {
        const { body } = toEnvelope(e, req, MAX_IMPORT_BYTES);
        req.log.info({ code: body.error.code, message: body.error.message }, 'streamed memory import failed');
        sse.send('error', body);
      } finally {
        sse.end();
      }
      return reply;
    },
  );
}
