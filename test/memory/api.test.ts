/**
 * REST /api/v1/memory/... on a real server over HTTP (the real local embedder) and the `caxton
 * memory` CLI as a child process against it, once per backend: `[memory] backend = "sqlite"` and
 * `"postgres"` (a fresh schema in the test PostgreSQL, with pgvector).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, expectExit, expectNoStackTrace, parseJson, runCli } from '../cli/helpers/cli.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs as removeServerDirs } from '../helpers/tmp.js';
import pg from 'pg';
import { BACKENDS, dropServerSchema, serverMemoryToml, TEST_PG_URL } from './backends.js';
import { removeTempDirs, tempDir } from './helpers.js';

let ts: TestServer;
afterAll(async () => {
  await cleanup();
  removeTempDirs();
  removeServerDirs();
});

/** Entities in the PostgreSQL schema (null when the backend is SQLite and the schema was never made). */
async function storedEntities(backend: string, schema: string): Promise<number | null> {
  if (backend !== 'postgres') return null;
  const c = new pg.Client({ connectionString: TEST_PG_URL });
  await c.connect();
  try {
    return (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".entities`)).rows[0]!.n;
  } finally {
    await c.end();
  }
}

async function call(
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(`${ts.url}/api/v1${path}`, {
    method,
    ...(body !== undefined && {
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: { 'content-type': contentType },
    }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

describe.each(BACKENDS.map((b) => b.name))('memory over HTTP (%s)', (backend) => {
  const schema = `caxton_test_api_${Math.random().toString(36).slice(2, 10)}`;
  beforeAll(async () => {
    ts = await startTestServer({ toml: serverMemoryToml(backend, schema, 'max_observation_chars = 1000\n') });
  }, 60_000);
  afterAll(async () => {
    await ts?.close();
    await dropServerSchema(backend, schema);
  });

  describe('REST /api/v1/memory', () => {
    it('creates entities and relations, shows, searches, traverses, and reports stats', async () => {
      const c = await call('POST', '/memory/entities', {
        scope: 'workspace',
        entities: [
          {
            name: 'Ada',
            entityType: 'person',
            observations: ['Wrote the first computer program', 'Worked with Charles Babbage'],
          },
          {
            name: 'Analytical Engine',
            entityType: 'machine',
            observations: ['A mechanical general-purpose computer designed by Babbage'],
          },
          { name: 'Babbage', entityType: 'person', observations: ['Mathematician and inventor'] },
        ],
      });
      expect(c.status).toBe(201);
      expect(c.json.created).toHaveLength(3);
      expect(
        (
          await call('POST', '/memory/relations', {
            relations: [
              { from: 'Ada', to: 'Analytical Engine', relationType: 'programmed' },
              { from: 'Babbage', to: 'Analytical Engine', relationType: 'designed' },
            ],
          })
        ).status,
      ).toBe(201);
      expect((await call('POST', '/memory/entities/Ada/observations', { contents: ['Born in 1815'] })).json).toEqual({
        entityName: 'Ada',
        addedObservations: ['Born in 1815'],
      });

      const show = await call('GET', '/memory/entities/Ada');
      expect(show.status).toBe(200);
      expect(show.json.entities[0]).toMatchObject({
        scope: 'workspace',
        observations: ['Wrote the first computer program', 'Worked with Charles Babbage', 'Born in 1815'],
      });
      expect(show.json.relations).toEqual([
        { scope: 'workspace', from: 'Ada', to: 'Analytical Engine', relationType: 'programmed' },
      ]);

      const s = await call('POST', '/memory/search', { query: 'Who was the first programmer?', limit: 2 });
      expect(s.status).toBe(200);
      expect(s.json.results[0].entity.name).toBe('Ada');
      expect(s.json.results[0].score).toBeGreaterThan(0.3);
      // Each hit names the observation it matched and the query's terms in it ("programmer" ~ "program").
      expect(s.json.results[0].match).toEqual({ observation: 0, terms: ['first', 'programmer'] });
      const born = await call('POST', '/memory/search', { query: 'born when', mode: 'keyword', limit: 1 });
      expect(born.json.results[0].match).toEqual({ observation: 2, terms: ['born'] });

      // The list counts each type of the scope, whatever type it is filtered to.
      const people = await call('GET', '/memory/entities?type=person');
      expect(people.json.total).toBe(2);
      expect(people.json.types).toEqual({ machine: 1, person: 2 });

      const t = await call('GET', '/memory/traverse?from=Ada&direction=both&max_depth=2');
      expect(t.json.entities.map((e: { name: string; depth: number }) => [e.name, e.depth])).toEqual([
        ['Ada', 0],
        ['Analytical Engine', 1],
        ['Babbage', 2],
      ]);

      const stats = await call('GET', '/memory/stats');
      expect(stats.json).toMatchObject({
        entities: 3,
        relations: 2,
        by_scope: { workspace: { entities: 3, relations: 2, observations: expect.any(Number) } },
        embedding: { model: 'local:all-MiniLM-L6-v2', dimensions: 384, indexed: 3 },
      });
      // the rows are where the configuration says
      const where = await storedEntities(backend, schema);
      expect(where).toBe(backend === 'postgres' ? 3 : null);
    });

    it('answers bad input with 400/404/413 naming the field, changing nothing', async () => {
      const before = (await call('GET', '/memory/stats')).json;
      const unknownScope = await call('POST', '/memory/entities', {
        scope: 'team',
        entities: [{ name: 'x', entityType: 't', observations: [] }],
      });
      expect(unknownScope.status).toBe(400);
      expect(unknownScope.json.error).toMatchObject({ code: 'invalid_request', details: { field: 'scope' } });
      expect(unknownScope.json.error.message).toMatch(/unknown scope "team"/);
      const big = await call('POST', '/memory/entities', {
        entities: [
          { name: 'ok', entityType: 't', observations: [] },
          { name: 'x', entityType: 't', observations: ['z'.repeat(1001)] },
        ],
      });
      expect(big.status).toBe(413);
      expect(big.json.error.details.field).toBe('entities[1].observations[0]');
      const missing = await call('POST', '/memory/entities/Nobody/observations', { contents: ['x'] });
      expect(missing.status).toBe(404);
      const badImport = await call(
        'POST',
        '/memory/import?scope=workspace',
        '{"type":"entity","name":"A","entityType":"t","observations":[]}\nnot json\n',
        'application/x-ndjson',
      );
      expect(badImport.status).toBe(400);
      expect(badImport.json.error.message).toMatch(/^line 2: not valid JSON/);
      const version = await call('POST', '/memory/import', { format: 'caxton-memory', version: 9, entities: [] });
      expect(version.status).toBe(400);
      expect(version.json.error.details.field).toBe('version');
      const afterStats = (await call('GET', '/memory/stats')).json;
      expect({ ...afterStats, database_bytes: 0 }).toEqual({ ...before, database_bytes: 0 });
    });

    it('streams an import: progress events while embedding, then the result; input errors before the stream', async () => {
      const lines = Array.from({ length: 300 }, (_, i) =>
        JSON.stringify({
          type: 'entity',
          name: `bulk-${i}`,
          entityType: 'note',
          observations: [`bulk fact number ${i}`],
        }),
      );
      const res = await fetch(`${ts.url}/api/v1/memory/import?scope=agent:bulk`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson', accept: 'text/event-stream' },
        body: lines.join('\n'),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
      const events = (await res.text())
        .split('\n\n')
        .filter(Boolean)
        .map((block) => ({
          event: /^event: (.*)$/m.exec(block)?.[1],
          data: JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as Record<string, unknown>,
        }));
      const progress = events.filter((e) => e.event === 'progress').map((e) => e.data);
      expect(progress.length).toBeGreaterThanOrEqual(2); // 300 entities: two batches of at most 256
      expect(progress.at(-1)).toEqual({ done: 300, total: 300 });
      expect(events.at(-1)).toEqual({
        event: 'result',
        data: expect.objectContaining({ format: 'jsonl', entities_created: 300 }),
      });
      expect((await call('GET', '/memory/entities?scope=agent:bulk')).json.total).toBe(300);

      const bad = await fetch(`${ts.url}/api/v1/memory/import?scope=agent:bulk`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson', accept: 'text/event-stream' },
        body: 'not json',
      });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/line 1: not valid JSON/);
      await call('POST', '/memory/entities/delete?scope=agent:bulk', { entityNames: lines.map((_, i) => `bulk-${i}`) });
    });

    it('exports and imports JSON and JSONL', async () => {
      const json = await call('GET', '/memory/export');
      expect(json.json).toMatchObject({ format: 'caxton-memory', version: 1, scopes: ['workspace'] });
      const jsonl = await call('GET', '/memory/export?format=jsonl&scope=workspace');
      expect(jsonl.text.split('\n')[0]).toBe(
        JSON.stringify({
          type: 'entity',
          name: 'Ada',
          entityType: 'person',
          observations: ['Wrote the first computer program', 'Worked with Charles Babbage', 'Born in 1815'],
        }),
      );
      const imported = await call('POST', '/memory/import?scope=agent:archivist', jsonl.text, 'application/x-ndjson');
      expect(imported.json).toMatchObject({ format: 'jsonl', entities_created: 3, relations_created: 2 });
      const again = await call('POST', '/memory/import', json.json);
      expect(again.json).toMatchObject({ format: 'json', entities_created: 0, relations_created: 0 });
      expect((await call('GET', '/memory/entities?scope=agent:archivist')).json.total).toBe(3);
    });
  });

  describe('caxton memory (CLI)', () => {
    const cli = (args: string[]) => runCli([...args, '--server', ts.url], { cwd: tempDir(), timeoutMs: 60_000 });
    beforeAll(() => assertBuilt());

    it('add, relate, show, search, stats, export, import', async () => {
      let r = await cli([
        'memory',
        'add',
        'Grace',
        '--type',
        'person',
        '-o',
        'Invented the first compiler',
        '-o',
        'Rear admiral in the US Navy',
        '--scope',
        'global',
      ]);
      expectExit(r, 0);
      expect(r.stdout).toMatch(/created Grace in global \(2 observations added\)/);
      r = await cli([
        'memory',
        'add',
        'Grace',
        '--type',
        'person',
        '-o',
        'Popularized the term debugging',
        '--scope',
        'global',
        '--json',
      ]);
      expect(parseJson(r)).toEqual({
        scope: 'global',
        name: 'Grace',
        created: false,
        added_observations: ['Popularized the term debugging'],
      });
      await cli([
        'memory',
        'add',
        'COBOL',
        '--type',
        'language',
        '-o',
        'Business-oriented programming language',
        '--scope',
        'global',
      ]);
      r = await cli(['memory', 'relate', 'Grace', 'influenced', 'COBOL', '--scope', 'global']);
      expect(r.stdout).toMatch(/Grace --influenced--> COBOL/);

      r = await cli(['memory', 'show', 'Grace', '--scope', 'global']);
      expectExit(r, 0);
      expect(r.stdout).toMatch(/Grace \(person\) in global/);
      expect(r.stdout).toMatch(/- Popularized the term debugging/);
      expect(r.stdout).toMatch(/Grace --influenced--> COBOL/);

      r = await cli(['memory', 'search', 'who wrote the first compiler?', '--scope', 'global', '--json']);
      expect(parseJson<{ results: { entity: { name: string } }[] }>(r).results[0]!.entity.name).toBe('Grace');
      r = await cli(['memory', 'search', 'who wrote the first compiler?', '--scope', 'global']);
      expect(r.stdout.split('\n')[1]).toMatch(/global\s+person\s+Grace/);

      r = await cli(['memory', 'stats']);
      expect(r.stdout).toMatch(/embedding: local:all-MiniLM-L6-v2 \(384 dimensions/);

      const dir = tempDir();
      const file = join(dir, 'global.jsonl');
      r = await cli(['memory', 'export', '--scope', 'global', '--format', 'jsonl', '--out', file]);
      expectExit(r, 0);
      expect(readFileSync(file, 'utf8').split('\n')).toHaveLength(3);
      r = await cli(['memory', 'import', file, '--scope', 'agent:copy', '--json']);
      expect(parseJson(r)).toMatchObject({ format: 'jsonl', entities_created: 2, relations_created: 1 });
      // without --json the CLI asks for the event stream (a progress bar when stderr is a terminal)
      r = await cli(['memory', 'import', file, '--scope', 'agent:copy2']);
      expectExit(r, 0);
      expect(r.stdout).toMatch(/imported jsonl: 2 entities created, 0 updated, 1 relations created/);

      // a bad file: exit 1 with the line named, no stack trace
      const bad = join(dir, 'bad.jsonl');
      writeFileSync(
        bad,
        '{"type":"entity","name":"A","entityType":"t","observations":[]}\n{"type":"entity","name":"B","entityType":"t","observations":["' +
          'q'.repeat(1001) +
          '"]}\n',
      );
      r = await cli(['memory', 'import', bad, '--scope', 'workspace']);
      expectExit(r, 1);
      expectNoStackTrace(r);
      expect(r.stderr).toMatch(/line 2: "observations\[0\]" has 1001 characters/);
      r = await cli(['memory', 'export', '--format', 'jsonl']);
      expectExit(r, 2);
    }, 120_000);
  });
});
