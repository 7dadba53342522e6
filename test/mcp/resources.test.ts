/**
 * CaxtonMcpResources on its own (no server): conversations and memory entities as MCP resources,
 * their templates, paging, the REST routes' permission and memory-scope rules, not-found answers
 * and secret scrubbing. The same resources through a running server: server.test.ts.
 */
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../src/agents/index.js';
import type { Principal } from '../../src/auth/index.js';
import type { MemoryBackend, StoredEntity, StoredRelation } from '../../src/memory/index.js';
import type { Conversation, ConversationId, StoredMessage } from '../../src/messaging/index.js';
import { CaxtonMcpResources, RESOURCE_NOT_FOUND, RESOURCE_PAGE, type ConversationReader } from '../../src/mcp/index.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { registerSecrets } from '../../src/shared/secrets.js';

const T0 = '2026-01-01T00:00:00.000Z';

function conversation(i: number): Conversation {
  return {
    id: `conv_${String(i).padStart(4, '0')}` as ConversationId,
    protocol: 'fipa-request',
    state: 'completed',
    initiator: 'user',
    participants: ['user', 'helper'],
    capability: null,
    turns: 2,
    max_turns: 50,
    created_at: T0,
    updated_at: T0,
    expires_at: null,
    reason: null,
  };
}

function message(
  conv: string,
  n: number,
  performative: string,
  sender: string,
  receiver: string,
  content: string,
): StoredMessage {
  return {
    message: {
      id: `msg_${n}`,
      performative,
      sender,
      receivers: [receiver],
      content,
      conversation_id: conv,
      params: {},
      timestamp: `2026-01-01T00:00:0${n}.000Z`,
      chain: [],
    },
    routed_to: [receiver],
  } as unknown as StoredMessage;
}

/** A bus stand-in holding `n` conversations, newest first as the bus lists them. */
function reader(n: number): ConversationReader {
  const all = Array.from({ length: n }, (_, i) => conversation(n - i));
  return {
    listConversations: async (q = {}) => ({
      items: all.slice(q.offset ?? 0, (q.offset ?? 0) + (q.limit ?? 50)),
      total: all.length,
    }),
    getConversation: async (id: string) => {
      const c = all.find((x) => x.id === id);
      if (!c) throw new CaxtonError('conversation_not_found', `no conversation with id "${id}"`, { id });
      return {
        conversation: c,
        messages: [
          message(id, 1, 'request', 'user', 'helper', 'hello'),
          message(id, 2, 'inform', 'helper', 'user', 'token sk-test-SECRET-123456 here'),
        ],
      };
    },
  } as ConversationReader;
}

const entities: StoredEntity[] = [
  {
    scope: 'workspace',
    name: 'Ada',
    entityType: 'person',
    observations: ['wrote the first program'],
    metadata: {},
    created_at: T0,
    updated_at: T0,
  },
  {
    scope: 'workspace',
    name: 'a/b c',
    entityType: 'path',
    observations: [],
    metadata: {},
    created_at: T0,
    updated_at: T0,
  },
  {
    scope: 'agent:helper',
    name: 'Ada',
    entityType: 'note',
    observations: ['private to helper'],
    metadata: {},
    created_at: T0,
    updated_at: T0,
  },
];
const relations: StoredRelation[] = [
  { scope: 'workspace', from: 'Ada', to: 'Analytical Engine', relationType: 'programmed' },
];

/** The two memory operations the resources use; the rest of the backend is never reached. */
const memory = {
  getEntity: async (scope: string, name: string) => entities.find((e) => e.scope === scope && e.name === name),
  relationsTouching: async (es: readonly { scope: string; name: string }[]) =>
    relations.filter((r) => es.some((e) => e.scope === r.scope && (e.name === r.from || e.name === r.to))),
} as unknown as MemoryBackend;

const principal = (memoryScope?: string[]): Principal => ({
  id: 'key:test',
  kind: 'key',
  name: 'test',
  role: 'viewer',
  scope: { ...(memoryScope && { memory: memoryScope }) },
});

async function refused(p: Promise<unknown>): Promise<McpError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(McpError);
  return e as McpError;
}

const text = (r: { contents: unknown[] }) =>
  JSON.parse((r.contents[0] as { text: string }).text) as Record<string, unknown>;

describe('MCP resources: templates', () => {
  it('offer agents, conversations and memory entities; the memory template only when memory is configured', () => {
    const withMemory = new CaxtonMcpResources(new AgentRegistry(), ['*'], { memory, conversations: reader(0) });
    expect(withMemory.templates({}).map((t) => t.uriTemplate)).toEqual([
      'caxton://agents/{name}',
      'caxton://conversations/{id}',
      'caxton://memory/{scope}/{name}',
    ]);
    const without = new CaxtonMcpResources(new AgentRegistry(), ['*'], { conversations: reader(0) });
    expect(without.templates({}).map((t) => t.uriTemplate)).toEqual([
      'caxton://agents/{name}',
      'caxton://conversations/{id}',
    ]);
    expect(without.templates({}).every((t) => t.mimeType === 'application/json')).toBe(true);
  });
});

describe('MCP resources: conversations', () => {
  it('are listed after the agents, newest first, in bounded pages with nextCursor', async () => {
    const r = new CaxtonMcpResources(new AgentRegistry(), ['*'], { conversations: reader(RESOURCE_PAGE + 30) });
    const first = await r.list({});
    expect(first.resources).toHaveLength(RESOURCE_PAGE);
    expect(first.resources[0]).toMatchObject({
      uri: `caxton://conversations/conv_0130`,
      mimeType: 'application/json',
      title: 'Conversation conv_0130 (completed)',
      description: 'fipa-request, 2 messages, started by user; participants: user, helper',
      annotations: { lastModified: T0 },
    });
    expect(first.nextCursor).toBeDefined();
    const second = await r.list({}, first.nextCursor);
    expect(second.resources.map((x) => x.uri)).toHaveLength(30);
    expect(second.resources.at(-1)!.uri).toBe('caxton://conversations/conv_0001');
    expect(second.nextCursor).toBeUndefined();
    expect((await refused(r.list({}, 'bm90IGEgY3Vyc29y'))).code).toBe(ErrorCode.InvalidParams);
  });

  it('read as the conversation and its messages in order (performative, sender, receivers, timestamps), scrubbed of secrets', async () => {
    registerSecrets(['sk-test-SECRET-123456']); // process-wide, as the server registers its configured secrets
    const r = new CaxtonMcpResources(new AgentRegistry(), ['*'], { conversations: reader(3) });
    const read = await r.read('caxton://conversations/conv_0002', { principal: principal() });
    expect(read.contents[0]).toMatchObject({ uri: 'caxton://conversations/conv_0002', mimeType: 'application/json' });
    const body = text(read) as { conversation: { id: string; state: string }; messages: Record<string, unknown>[] };
    expect(body.conversation).toMatchObject({ id: 'conv_0002', state: 'completed' });
    expect(body.messages.map((m) => [m.performative, m.sender, m.receivers, m.timestamp])).toEqual([
      ['request', 'user', ['helper'], '2026-01-01T00:00:01.000Z'],
      ['inform', 'helper', ['user'], '2026-01-01T00:00:02.000Z'],
    ]);
    expect(body.messages[1]!.content).toBe('token *** here');
    expect(JSON.stringify(read)).not.toContain('SECRET');
  });

  it('an unknown conversation is -32002', async () => {
    const r = new CaxtonMcpResources(new AgentRegistry(), ['*'], { conversations: reader(1) });
    const e = await refused(r.read('caxton://conversations/conv_nope', {}));
    expect(e.code).toBe(RESOURCE_NOT_FOUND);
    expect(e.message).toContain('no such conversation');
    // Without a conversation reader the URI is not one this server knows.
    expect(
      (await refused(new CaxtonMcpResources(new AgentRegistry(), ['*']).read('caxton://conversations/conv_0001', {})))
        .code,
    ).toBe(RESOURCE_NOT_FOUND);
  });
});

describe('MCP resources: memory entities', () => {
  const r = new CaxtonMcpResources(new AgentRegistry(), ['*'], { memory, conversations: reader(0) });

  it('read as the entity with its observations and relations', async () => {
    const read = await r.read('caxton://memory/workspace/Ada', {});
    expect(read.contents[0]).toMatchObject({ uri: 'caxton://memory/workspace/Ada', mimeType: 'application/json' });
    expect(text(read)).toEqual({ entity: entities[0], relations });
    // Scopes and names are percent-encoded in the URI; "agent:NAME" is a scope of its own.
    expect(text(await r.read('caxton://memory/workspace/a%2Fb%20c', {})).entity).toMatchObject({ name: 'a/b c' });
    const priv = await r.read('caxton://memory/agent%3Ahelper/Ada', {});
    expect(priv.contents[0]!.uri).toBe('caxton://memory/agent%3Ahelper/Ada');
    expect(text(priv).entity).toMatchObject({ observations: ['private to helper'] });
    expect(text(await r.read('caxton://memory/agent:Helper/Ada', {})).entity).toMatchObject({ scope: 'agent:helper' });
  });

  it('are not listed (no paged entity listing): only the template', async () => {
    expect((await r.list({})).resources).toEqual([]);
  });

  it('an unknown entity is -32002; a malformed URI or scope is -32602', async () => {
    expect((await refused(r.read('caxton://memory/workspace/Nobody', {}))).code).toBe(RESOURCE_NOT_FOUND);
    expect((await refused(r.read('caxton://memory/global/Ada', {}))).code).toBe(RESOURCE_NOT_FOUND);
    expect((await refused(r.read('caxton://memory/workspace', {}))).code).toBe(ErrorCode.InvalidParams);
    expect((await refused(r.read('caxton://memory/workspace/', {}))).code).toBe(ErrorCode.InvalidParams);
    const bad = await refused(r.read('caxton://memory/elsewhere/Ada', {}));
    expect(bad.code).toBe(ErrorCode.InvalidParams);
    expect(bad.message).toContain('unknown scope "elsewhere"');
    expect((await refused(r.read('caxton://memory/workspace/%E0%A4%A', {}))).code).toBe(ErrorCode.InvalidParams);
  });

  it("keeps to the key's memory scopes, as the REST routes do: another scope is not found", async () => {
    const workspaceOnly = { principal: principal(['workspace']) };
    expect(text(await r.read('caxton://memory/workspace/Ada', workspaceOnly)).entity).toMatchObject({
      scope: 'workspace',
    });
    const e = await refused(r.read('caxton://memory/agent:helper/Ada', workspaceOnly));
    expect(e.code).toBe(RESOURCE_NOT_FOUND);
    expect(e.message).not.toContain('private to helper');
    const agents = { principal: principal(['agent:*']) };
    expect(text(await r.read('caxton://memory/agent:helper/Ada', agents)).entity).toMatchObject({
      scope: 'agent:helper',
    });
    expect((await refused(r.read('caxton://memory/workspace/Ada', agents))).code).toBe(RESOURCE_NOT_FOUND);
    // No principal (stdio): the local user reads every scope.
    expect(text(await r.read('caxton://memory/agent:helper/Ada', {})).entity).toMatchObject({ scope: 'agent:helper' });
  });

  it('without memory configured, a memory URI is -32002 and names the templates offered', async () => {
    const e = await refused(
      new CaxtonMcpResources(new AgentRegistry(), ['*'], { conversations: reader(0) }).read(
        'caxton://memory/workspace/Ada',
        {},
      ),
    );
    expect(e.code).toBe(RESOURCE_NOT_FOUND);
    expect(e.message).toContain('this server offers caxton://agents/{name}, caxton://conversations/{id}');
  });
});
