/**
 * Memory as agents use it, on a real server (real SQLite, the real local embedder, a scripted
 * model): the nine reference tools as host tools in context and worker isolation, scope
 * enforcement between agents, {{memory_context}} and auto_store.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentScope, memoryTools, MEMORY_TOOL_NAMES, type MemoryBackend } from '../../src/memory/index.js';
import type { ToolContext } from '../../src/tools/types.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs as removeServerDirs } from '../helpers/tmp.js';
import { BACKENDS, dropServerSchema, serverMemoryToml, type OpenedBackend } from './backends.js';
import { HashEmbedder, removeTempDirs, tempDir } from './helpers.js';

afterAll(() => {
  removeTempDirs();
  removeServerDirs();
});

const ctx = (agent: string): ToolContext => ({
  agent,
  execution_id: 'exec_test',
  deadline: Date.now() + 10_000,
  signal: new AbortController().signal,
});

describe.each(BACKENDS)("memory tools (the reference server's nine, with scopes) ($name)", (backend) => {
  let store: MemoryBackend;
  let opened: OpenedBackend | undefined;
  afterAll(async () => opened?.cleanup());
  let call: (
    agent: string,
    name: string,
    args: Record<string, unknown>,
  ) => Promise<{ content: string; is_error?: boolean }>;
  beforeAll(async () => {
    opened = await backend.open({ embedder: new HashEmbedder() });
    store = opened.store;
    const tools = memoryTools(store, {
      settings: (a) => (a === 'sharer' ? { scope: 'workspace', search_limit: 5, min_similarity: 0 } : undefined),
    });
    call = (agent, name, args) => tools.find((t) => t.name === name)!.invoke(args, ctx(agent));
  });

  it('offers exactly the reference tool names with the reference input shapes', () => {
    const tools = memoryTools(store);
    expect(tools.map((t) => t.name).sort()).toEqual([...MEMORY_TOOL_NAMES].sort());
    const schema = (n: string) => tools.find((t) => t.name === n)!.input_schema as { required: string[] };
    expect(schema('create_entities').required).toEqual(['entities']);
    expect(schema('add_observations').required).toEqual(['observations']);
    expect(schema('delete_entities').required).toEqual(['entityNames']);
    expect(schema('delete_observations').required).toEqual(['deletions']);
    expect(schema('open_nodes').required).toEqual(['names']);
    expect(schema('search_nodes').required).toEqual(['query']);
  });

  it('returns the reference outputs', async () => {
    const created = await call('alice', 'create_entities', {
      entities: [{ name: 'Paris', entityType: 'city', observations: ['capital of France'] }],
    });
    expect(JSON.parse(created.content)).toEqual([
      { name: 'Paris', entityType: 'city', observations: ['capital of France'] },
    ]);
    const rel = await call('alice', 'create_relations', {
      relations: [{ from: 'alice', to: 'Paris', relationType: 'lives_in' }],
    });
    expect(JSON.parse(rel.content)).toEqual([{ from: 'alice', to: 'Paris', relationType: 'lives_in' }]);
    const added = await call('alice', 'add_observations', {
      observations: [{ entityName: 'Paris', contents: ['on the Seine'] }],
    });
    expect(JSON.parse(added.content)).toEqual([{ entityName: 'Paris', addedObservations: ['on the Seine'] }]);
    const opened = JSON.parse((await call('alice', 'open_nodes', { names: ['Paris'] })).content);
    expect(opened).toEqual({
      entities: [
        { name: 'Paris', entityType: 'city', observations: ['capital of France', 'on the Seine'], scope: 'agent' },
      ],
      relations: [{ from: 'alice', to: 'Paris', relationType: 'lives_in' }],
    });
    expect(
      (
        await call('alice', 'delete_observations', {
          deletions: [{ entityName: 'Paris', observations: ['on the Seine'] }],
        })
      ).content,
    ).toBe('Observations deleted successfully');
    expect(
      (
        await call('alice', 'delete_relations', {
          relations: [{ from: 'alice', to: 'Paris', relationType: 'lives_in' }],
        })
      ).content,
    ).toBe('Relations deleted successfully');
    expect((await call('alice', 'delete_entities', { entityNames: ['Paris'] })).content).toBe(
      'Entities deleted successfully',
    );
    expect(JSON.parse((await call('alice', 'read_graph', {})).content)).toEqual({ entities: [], relations: [] });
  });

  it('keeps an agent-scope memory invisible to every other agent', async () => {
    await call('alice', 'create_entities', {
      entities: [{ name: 'vault', entityType: 'secret', observations: ['the vault code is 4711'] }],
    });
    for (const [name, args] of [
      ['read_graph', {}],
      ['read_graph', { scope: 'agent' }],
      ['search_nodes', { query: 'vault' }],
      ['search_nodes', { query: '4711', scope: 'agent' }],
      ['open_nodes', { names: ['vault'] }],
    ] as const) {
      const r = await call('bob', name, args);
      expect(r.content, `${name} ${JSON.stringify(args)}`).not.toMatch(/4711|vault/);
    }
    // bob cannot change it either: his writes land in his own scope
    expect(
      (await call('bob', 'add_observations', { observations: [{ entityName: 'vault', contents: ['x'] }] })).is_error,
    ).toBe(true);
    await call('bob', 'delete_entities', { entityNames: ['vault'] });
    expect(await store.getEntity(agentScope('alice'), 'vault')).toBeDefined();
    // a scope naming another agent is refused
    const other = await call('bob', 'read_graph', { scope: 'agent:alice' });
    expect(other).toMatchObject({ is_error: true });
    expect(other.content).toMatch(/unknown scope "agent:alice"/);
    // alice sees it, by substring and by meaning
    const found = JSON.parse((await call('alice', 'search_nodes', { query: 'vault' })).content) as {
      entities: { name: string; scope: string; score?: number }[];
    };
    expect(found.entities[0]).toMatchObject({ name: 'vault', scope: 'agent' });
  });

  it("writes to the agent's configured scope and shares workspace memories", async () => {
    await call('sharer', 'create_entities', {
      entities: [{ name: 'standup', entityType: 'meeting', observations: ['daily at 9:30'] }],
    });
    expect(await store.getEntity('workspace', 'standup')).toBeDefined();
    const seen = JSON.parse((await call('bob', 'open_nodes', { names: ['standup'] })).content) as {
      entities: { scope: string }[];
    };
    expect(seen.entities).toEqual([expect.objectContaining({ scope: 'workspace' })]);
  });

  it('answers bad arguments with an error result naming the field', async () => {
    const r = await call('alice', 'create_entities', {
      entities: [{ name: 'x', entityType: 'y', observations: ['ok', 42] }],
    });
    expect(r).toMatchObject({ is_error: true });
    expect(r.content).toMatch(/"entities\[0\]\.observations\[1\]" must be a string/);
    const big = await call('alice', 'add_observations', {
      observations: [{ entityName: 'vault', contents: ['a'.repeat(5000)] }],
    });
    expect(big.content).toMatch(/observations\[0\]\.contents\[0\]" has 5000 characters, more than the 4096/);
    const scope = await call('alice', 'create_entities', { scope: 'team', entities: [] });
    expect(scope.content).toMatch(/unknown scope "team"/);
  });
});

describe.each(BACKENDS.map((b) => b.name))(
  'agents with [memory] on a server (real embedder, scripted model; %s)',
  (backend) => {
    let ts: TestServer;
    const schema = `caxton_test_agents_${Math.random().toString(36).slice(2, 10)}`;
    const memoryToml = serverMemoryToml(backend, schema);
    const agent = (name: string, memory: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      stringify({
        name,
        capabilities: ['memory-test'],
        tools: [...MEMORY_TOOL_NAMES],
        system_prompt: `You are ${name}.`,
        user_prompt_template: 'Memories:\n{{memory_context}}\n\nRequest: {{request}}',
        memory,
        ...extra,
      });

    beforeAll(async () => {
      const dir = tempDir();
      const script = join(dir, 'script.toml');
      writeFileSync(
        script,
        stringify({
          rules: [
            {
              name: 'store',
              match: 'Request: please remember the vault',
              turns: [
                {
                  tool_calls: [
                    {
                      name: 'create_entities',
                      arguments: {
                        entities: [{ name: 'vault', entityType: 'secret', observations: ['The vault code is 4711'] }],
                      },
                    },
                  ],
                },
                { content: 'stored' },
              ],
            },
            {
              name: 'list',
              match: 'Request: list your memory',
              turns: [
                { tool_calls: [{ name: 'read_graph', arguments: {} }] },
                { content: 'graph: {{tool_result.read_graph}}' },
              ],
            },
            { name: 'echo', content: 'PROMPT<{{request}}>' },
          ],
        }),
      );
      ts = await startTestServer({
        toml: `[llm]\ndefault_provider = "demo"\n[llm.providers.demo]\ntype = "scripted"\nscript = ${JSON.stringify(script)}\n${memoryToml}`,
        agentFiles: {
          'alice.toml': agent('alice', {
            enabled: true,
            scope: 'agent',
            auto_store: true,
            search_limit: 3,
            min_similarity: 0.3,
          }),
          'bob.toml': agent(
            'bob',
            { enabled: true, scope: 'agent', auto_store: false },
            { execution: { isolation: 'worker' } },
          ),
          'plain.toml': agent('plain', { enabled: false }),
        },
      });
    }, 60_000);
    afterAll(async () => {
      await ts?.close();
      await dropServerSchema(backend, schema);
    });

    it('registers the nine tools as host tools', () => {
      for (const n of MEMORY_TOOL_NAMES) expect(ts.server.executor.hostTools.get(n), n).toBeDefined();
    });

    it('stores through the tool, recalls into {{memory_context}}, and hides it from other agents (context and worker isolation)', async () => {
      const stored = await ts.server.executor.invoke('alice', { request: 'please remember the vault code' });
      expect(stored.tool_calls[0]).toMatchObject({ name: 'create_entities', is_error: false });
      expect(stored.content).toBe('stored');

      const recall = await ts.server.executor.invoke('alice', { request: 'What is the code of the safe?' });
      expect(recall.content).toMatch(/Relevant memories:/);
      expect(recall.content).toMatch(/The vault code is 4711/);

      // bob runs in a worker: the tools reach the server through host calls, with bob's identity
      const bobList = await ts.server.executor.invoke('bob', { request: 'list your memory' });
      expect(bobList.tool_calls[0]).toMatchObject({ name: 'read_graph', is_error: false });
      expect(bobList.content).not.toMatch(/4711/);
      const bobRecall = await ts.server.executor.invoke('bob', { request: 'What is the code of the safe?' });
      expect(bobRecall.content).not.toMatch(/4711/);
      const aliceList = await ts.server.executor.invoke('alice', { request: 'list your memory' });
      expect(aliceList.content).toMatch(/4711/);

      // memory disabled: the placeholder renders empty
      const plain = await ts.server.executor.invoke('plain', { request: 'What is the code of the safe?' });
      expect(plain.content).toBe('PROMPT<Memories:\n\nRequest: What is the code of the safe?>');
    });

    it('auto_store saves successful interactions as observations (only for agents that ask for it)', async () => {
      const store = ts.server.memory!.store;
      await ts.server.executor.invoke('alice', { request: 'Tell me about tulips', conversation_id: 'conv-tulips' });
      await ts.server.executor.invoke('bob', { request: 'Tell me about roses', conversation_id: 'conv-roses' });
      // Both executions' background stores (if any) have finished: bob's absence below is not a
      // store that has not landed yet.
      await ts.server.memory!.execution.settled();
      const e = await store.getEntity(agentScope('alice'), 'conversation:conv-tulips');
      expect(e).toMatchObject({
        entityType: 'interaction',
        metadata: { agent: 'alice', conversation_id: 'conv-tulips' },
      });
      expect(e!.observations[0]).toMatch(/^User: Tell me about tulips\nAssistant: PROMPT</);
      expect(await store.getEntity(agentScope('bob'), 'conversation:conv-roses')).toBeUndefined();
      // and the stored interaction is recalled later
      const later = await ts.server.executor.invoke('alice', { request: 'What did we discuss about tulips?' });
      expect(later.content).toMatch(/conversation:conv-tulips/);
    });
  },
);
