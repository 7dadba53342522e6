/**
 * Export and import: versioned JSON round trip, the MCP reference memory server's JSONL both
 * ways (against the real server, @modelcontextprotocol/server-memory, run over stdio), and every
 * kind of bad input refused with an error naming the field or line, changing nothing.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, describe, expect, it } from 'vitest';
import { agentScope, type MemoryBackend } from '../../src/memory/index.js';
import { exportJson, exportJsonl, importMemory, type MemoryExport } from '../../src/memory/transfer.js';
import { BACKENDS, type BackendOpenOptions, type OpenedBackend } from './backends.js';
import { HashEmbedder, localEmbedder, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);
const opened: OpenedBackend[] = [];
afterAll(async () => {
  for (const o of opened.splice(0)) await o.cleanup();
});

async function rejection(
  p: Promise<unknown>,
): Promise<{ code?: string; message: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error('expected a rejection');
}

async function seed(store: MemoryBackend): Promise<void> {
  await store.createEntities('workspace', [
    { name: 'Alice', entityType: 'person', observations: ['works at Acme', 'likes tea'], metadata: { source: 'hr' } },
    { name: 'Acme', entityType: 'organization', observations: ['makes anvils'] },
  ]);
  await store.createRelations('workspace', [{ from: 'Alice', to: 'Acme', relationType: 'works_at' }]);
  await store.createEntities(agentScope('bot'), [{ name: 'todo', entityType: 'list', observations: ['buy milk'] }]);
  await store.createEntities('global', [{ name: 'Earth', entityType: 'planet', observations: ['third from the sun'] }]);
  await store.createRelations('global', [{ from: 'Earth', to: 'Sun', relationType: 'orbits' }]);
}

/** Everything the store holds, without ids, timestamps or vectors, in a stable order; and how many vectors. */
async function snapshot(store: MemoryBackend) {
  const g = await store.readGraph(await store.scopes());
  const key = (x: { scope: string; name?: string; from?: string; to?: string; relationType?: string }) =>
    JSON.stringify([x.scope, x.name ?? x.from, x.to, x.relationType]);
  const ents = g.entities
    .map(({ scope, name, entityType, observations, metadata }) => ({ scope, name, entityType, observations, metadata }))
    .sort((a, b) => key(a).localeCompare(key(b)));
  const rels = [...g.relations].sort((a, b) => key(a).localeCompare(key(b)));
  const st = await store.stats();
  return { ents, rels, indexed: st.embedding?.indexed ?? null };
}

/** One store per test, on each backend: tests inside `describe.each(BACKENDS)` call `newStore(backend)`. */
async function newStore(
  backend: { open(o: BackendOpenOptions): Promise<OpenedBackend> },
  embedder: BackendOpenOptions['embedder'] = new HashEmbedder(),
): Promise<MemoryBackend> {
  const o = await backend.open({ embedder });
  opened.push(o);
  return o.store;
}

describe.each(BACKENDS)('versioned JSON ($name)', (backend) => {
  it('round-trips every scope: export → import into an empty store gives the same graph, re-embedded', async () => {
    const a = await newStore(backend);
    await seed(a);
    const doc = await exportJson(a);
    expect(doc).toMatchObject({
      format: 'caxton-memory',
      version: 1,
      embedding: { model: 'test:hash', dimensions: 32 },
      scopes: ['agent:bot', 'global', 'workspace'],
    });
    expect(doc.entities.find((e) => e.name === 'Alice')).toMatchObject({
      scope: 'workspace',
      metadata: { source: 'hr' },
    });

    const b = await newStore(backend, new HashEmbedder('test:hash', 32));
    const progress: number[][] = [];
    const r = await importMemory(b, JSON.stringify(doc), { onProgress: (d, t) => progress.push([d, t]) });
    expect(r).toEqual({
      format: 'json',
      entities: 4,
      relations: 2,
      entities_created: 4,
      entities_updated: 0,
      relations_created: 2,
    });
    expect(progress.at(-1)).toEqual([4, 4]);
    expect(await snapshot(b)).toEqual(await snapshot(a));
    expect((await b.getEntity('workspace', 'Alice'))!.created_at).toBe(
      (await a.getEntity('workspace', 'Alice'))!.created_at,
    );
    // semantic search works on the imported graph
    expect((await b.search({ query: 'anvils', scopes: ['workspace'], mode: 'semantic' }))[0]?.entity.name).toBe('Acme');

    // importing again merges: nothing new
    const again = await importMemory(b, doc);
    expect(again).toMatchObject({ entities_created: 0, relations_created: 0 });
    expect(await snapshot(b)).toEqual(await snapshot(a));
  });

  it('exports chosen scopes, and imports into one scope when asked', async () => {
    const a = await newStore(backend);
    await seed(a);
    const doc = await exportJson(a, ['workspace']);
    expect(doc.entities.map((e) => e.name)).toEqual(['Alice', 'Acme']);
    const b = await newStore(backend);
    await importMemory(b, doc, { scope: agentScope('other') });
    expect((await b.readGraph([agentScope('other')])).entities.map((e) => e.name)).toEqual(['Alice', 'Acme']);
    expect((await b.readGraph(['workspace'])).entities).toEqual([]);
  });

  it('merges into existing entities: observations added, metadata merged', async () => {
    const s = await newStore(backend);
    await s.createEntities('workspace', [
      { name: 'Alice', entityType: 'person', observations: ['likes tea'], metadata: { a: 1 } },
    ]);
    await importMemory(s, {
      format: 'caxton-memory',
      version: 1,
      exported_at: '',
      embedding: null,
      scopes: [],
      entities: [
        {
          scope: 'workspace',
          name: 'Alice',
          entityType: 'person',
          observations: ['likes tea', 'plays chess'],
          metadata: { b: 2 },
          created_at: '2020-01-01T00:00:00Z',
          updated_at: '2020-01-01T00:00:00Z',
        },
      ],
      relations: [],
    });
    expect(await s.getEntity('workspace', 'Alice')).toMatchObject({
      observations: ['likes tea', 'plays chess'],
      metadata: { a: 1, b: 2 },
    });
  });
});

describe.each(BACKENDS)('bad imports are refused with a clear error and change nothing ($name)', (backend) => {
  const base = (): MemoryExport => ({
    format: 'caxton-memory',
    version: 1,
    exported_at: '2026-01-01T00:00:00Z',
    embedding: null,
    scopes: ['workspace'],
    entities: [
      {
        scope: 'workspace',
        name: 'New1',
        entityType: 't',
        observations: ['fine'],
        metadata: {},
        created_at: '2026-01-01T00:00:00Z',
        updated_at: '2026-01-01T00:00:00Z',
      },
      {
        scope: 'workspace',
        name: 'New2',
        entityType: 't',
        observations: ['fine'],
        metadata: {},
        created_at: '2026-01-01T00:00:00Z',
        updated_at: '2026-01-01T00:00:00Z',
      },
    ],
    relations: [{ scope: 'workspace', from: 'New1', to: 'New2', relationType: 'r' }],
  });
  const cases: {
    label: string;
    input: () => string;
    scope?: string;
    code: string;
    message: RegExp;
    field?: string;
    line?: number;
  }[] = [
    {
      label: 'unknown scope',
      input: () => {
        const d = base();
        (d.entities[1] as { scope: string }).scope = 'team';
        return JSON.stringify(d);
      },
      code: 'invalid_request',
      message: /unknown scope "team" in "entities\[1\]\.scope"/,
      field: 'entities[1].scope',
    },
    {
      label: 'oversized observation',
      input: () => {
        const d = base();
        d.entities[1]!.observations = ['ok', 'x'.repeat(5000)];
        return JSON.stringify(d);
      },
      code: 'payload_too_large',
      message: /"entities\[1\]\.observations\[1\]" has 5000 characters, more than the 4096/,
      field: 'entities[1].observations[1]',
    },
    {
      label: 'wrong export version',
      input: () => JSON.stringify({ ...base(), version: 2 }),
      code: 'invalid_request',
      message: /unsupported export version 2 in "version": this server reads version 1/,
      field: 'version',
    },
    {
      label: 'wrong format name',
      input: () => JSON.stringify({ ...base(), format: 'neo4j' }),
      code: 'invalid_request',
      message: /"format" must be "caxton-memory"/,
      field: 'format',
    },
    {
      label: 'truncated JSON',
      input: () => JSON.stringify(base()).slice(0, 120),
      code: 'invalid_request',
      message: /not valid JSON/,
    },
    {
      label: 'entity without a type',
      input: () => JSON.stringify({ ...base(), entities: [{ scope: 'global', name: 'x', observations: [] }] }),
      code: 'invalid_request',
      message: /"entities\[0\]\.entityType" must be a string/,
      field: 'entities[0].entityType',
    },
    {
      label: 'JSONL: a malformed line',
      input: () => '{"type":"entity","name":"A","entityType":"t","observations":[]}\n{"type":"entity","name":"B",\n',
      scope: 'workspace',
      code: 'invalid_request',
      message: /^line 2: not valid JSON/,
      line: 2,
    },
    {
      label: 'JSONL: an unknown line type',
      input: () =>
        '{"type":"entity","name":"A","entityType":"t","observations":[]}\n\n{"type":"edge","from":"A","to":"B"}',
      scope: 'workspace',
      code: 'invalid_request',
      message: /^line 3: "type" must be "entity" or "relation"/,
      line: 3,
    },
    {
      label: 'JSONL: an oversized observation',
      input: () =>
        `{"type":"entity","name":"A","entityType":"t","observations":[]}\n{"type":"entity","name":"B","entityType":"t","observations":["${'y'.repeat(4097)}"]}`,
      scope: 'workspace',
      code: 'payload_too_large',
      message: /^line 2: "observations\[0\]" has 4097 characters/,
      line: 2,
    },
    {
      label: 'JSONL without a scope',
      input: () => '{"type":"entity","name":"A","entityType":"t","observations":[]}',
      code: 'invalid_request',
      message: /needs the scope/,
      field: 'scope',
    },
  ];

  for (const c of cases) {
    it(c.label, async () => {
      const s = await newStore(backend);
      await seed(s);
      const before = await snapshot(s);
      const err = await rejection(importMemory(s, c.input(), { ...(c.scope !== undefined && { scope: c.scope }) }));
      expect(err.code).toBe(c.code);
      expect(err.message).toMatch(c.message);
      if (c.field !== undefined) expect(err.details?.field).toBe(c.field);
      if (c.line !== undefined) expect(err.details?.line).toBe(c.line);
      expect(await snapshot(s)).toEqual(before);
    });
  }

  it('an embedder failure part-way through a large import changes nothing', async () => {
    const emb = new HashEmbedder();
    const s = await newStore(backend, emb);
    await seed(s);
    const before = await snapshot(s);
    const d = base();
    d.entities = Array.from({ length: 1000 }, (_, i) => ({
      scope: 'workspace',
      name: `E${i}`,
      entityType: 't',
      observations: [`observation ${i}`],
      metadata: {},
      created_at: d.exported_at,
      updated_at: d.exported_at,
    }));
    emb.failAfter = emb.embedded + 600; // the third batch of 256 fails
    await expect(importMemory(s, d)).rejects.toThrow(/embedder failed/);
    expect(await snapshot(s)).toEqual(before);
  });
});

describe.each(BACKENDS)("the MCP reference memory server's JSONL ($name)", (backend) => {
  const serverScript = createRequire(import.meta.url).resolve('@modelcontextprotocol/server-memory/dist/index.js');

  /** Runs the reference server on `file`, calls `fn` with a connected client, and stops it. */
  async function withReference<T>(file: string, fn: (c: Client) => Promise<T>): Promise<T> {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [serverScript],
      env: { ...(process.env as Record<string, string>), MEMORY_FILE_PATH: file },
      stderr: 'ignore',
    });
    const client = new Client({ name: 'caxton-test', version: '1.0.0' });
    await client.connect(transport);
    try {
      return await fn(client);
    } finally {
      await client.close();
    }
  }
  const text = (r: unknown) => (r as { content: { text: string }[] }).content[0]!.text;

  it('imports a file the reference server wrote, and the reference server reads what Caxton exports', async () => {
    const dir = tempDir();
    const file = join(dir, 'memory.jsonl');
    await withReference(file, async (c) => {
      await c.callTool({
        name: 'create_entities',
        arguments: {
          entities: [
            { name: 'John_Smith', entityType: 'person', observations: ['Speaks fluent Spanish', 'Graduated in 2019'] },
            { name: 'Anthropic', entityType: 'organization', observations: ['AI safety company'] },
          ],
        },
      });
      await c.callTool({
        name: 'create_relations',
        arguments: { relations: [{ from: 'John_Smith', to: 'Anthropic', relationType: 'works_at' }] },
      });
      await c.callTool({
        name: 'add_observations',
        arguments: { observations: [{ entityName: 'John_Smith', contents: ['Prefers morning meetings'] }] },
      });
    });
    const written = readFileSync(file, 'utf8');
    expect(written.split('\n')).toHaveLength(3);

    const store = await newStore(backend, await localEmbedder());
    const r = await importMemory(store, written, { scope: 'workspace' });
    expect(r).toMatchObject({ format: 'jsonl', entities: 2, relations: 1, entities_created: 2, relations_created: 1 });
    const g = await store.readGraph(['workspace']);
    expect(g.entities.map(({ name, entityType, observations }) => ({ name, entityType, observations }))).toEqual([
      {
        name: 'John_Smith',
        entityType: 'person',
        observations: ['Speaks fluent Spanish', 'Graduated in 2019', 'Prefers morning meetings'],
      },
      { name: 'Anthropic', entityType: 'organization', observations: ['AI safety company'] },
    ]);
    // imported entities are embedded: found by meaning
    expect(
      (await store.search({ query: 'Who can speak Spanish?', scopes: ['workspace'], mode: 'semantic' }))[0]?.entity
        .name,
    ).toBe('John_Smith');

    // Caxton's JSONL export is byte-identical to what the reference server wrote for the same graph
    const exported = await exportJsonl(store, 'workspace');
    expect(exported).toBe(written);

    // and the reference server reads Caxton's export (with one more entity) as its own
    await store.createEntities('workspace', [
      { name: 'Paris', entityType: 'city', observations: ['capital of France'] },
    ]);
    await store.createRelations('workspace', [{ from: 'John_Smith', to: 'Paris', relationType: 'lives_in' }]);
    const file2 = join(dir, 'from-caxton.jsonl');
    writeFileSync(file2, await exportJsonl(store, 'workspace'));
    const graph = await withReference(
      file2,
      async (c) =>
        JSON.parse(text(await c.callTool({ name: 'read_graph', arguments: {} }))) as {
          entities: unknown[];
          relations: unknown[];
        },
    );
    expect(graph.entities).toHaveLength(3);
    expect(graph.relations).toEqual([
      { from: 'John_Smith', to: 'Anthropic', relationType: 'works_at' },
      { from: 'John_Smith', to: 'Paris', relationType: 'lives_in' },
    ]);
    const found = await withReference(
      file2,
      async (c) =>
        JSON.parse(text(await c.callTool({ name: 'search_nodes', arguments: { query: 'france' } }))) as {
          entities: { name: string }[];
        },
    );
    expect(found.entities.map((e) => e.name)).toEqual(['Paris']);
  }, 60_000);
});
