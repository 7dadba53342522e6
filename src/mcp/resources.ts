/**
 * Caxton data as MCP resources, each described by a template in `resources/templates/list`:
 *  - `caxton://agents/{name}`: an agent definition (JSON). Needs agents:read and the agent in the
 *    caller's scope, as GET /api/v1/agents/{name}. Listed.
 *  - `caxton://conversations/{id}`: a conversation and its messages in order (JSON). Needs
 *    messages:read and every agent of it in the caller's scope, as GET /api/v1/conversations/{id}.
 *    Listed after the agents, newest first.
 *  - `caxton://memory/{scope}/{name}`: a knowledge-graph entity with its observations and
 *    relations (JSON); only when memory is configured. Needs memory:read and the scope among the
 *    caller's memory scopes, as GET /api/v1/memory/entities/{name}?scope=. Not listed: the backend
 *    has no paged listing of entities (a graph may hold millions), so clients find names with the
 *    memory tools (search_nodes) or the REST API and read them through the template.
 *
 * `resources/list` pages RESOURCE_PAGE at a time. Over stdio there is no principal: the local user
 * reads everything. Something the caller may not see is "not found" (-32002), like something that
 * does not exist; a URI that cannot be parsed is -32602. Text is scrubbed of configured secrets.
 */
import {
  ErrorCode,
  type ReadResourceResult,
  type Resource,
  type ResourceTemplate,
} from '@modelcontextprotocol/sdk/types.js';
import type { AgentRegistry, DeployedAgent } from '../agents/index.js';
import { parseScope, permittedScopes, type MemoryBackend } from '../memory/index.js';
import { readsFor, type BusReads, type Conversation } from '../messaging/index.js';
import { CaxtonError } from '../shared/errors.js';
import { scrubSecrets, scrubSecretsIn } from '../shared/secrets.js';
import type { McpGateway } from './gateway.js';
import { allowed, offeredAgent, rpcError, visibleAgents, type McpCaller } from './offer.js';

/** Bounds one resources/list page; clients follow nextCursor. */
export const RESOURCE_PAGE = 100;
/** The specification's code for an unknown resource (not in the SDK's ErrorCode enum). */
export const RESOURCE_NOT_FOUND = -32002;
/** Most messages of one conversation a read returns (a conversation's max_turns normally bounds it far lower). */
export const TRANSCRIPT_LIMIT = 10_000;

const AGENT_PREFIX = 'caxton://agents/';
const CONVERSATION_PREFIX = 'caxton://conversations/';
const MEMORY_PREFIX = 'caxton://memory/';
const JSON_TYPE = 'application/json';

/** The conversation reads the resources need (the message bus's `reads`). */
export type ConversationReader = Pick<BusReads, 'getConversation' | 'listConversations'>;

export interface ResourceSources {
  /** The knowledge graph; absent when `[memory]` is off (no memory template then). */
  memory?: MemoryBackend | undefined;
  /** Conversations and their messages; absent: no conversation resources. */
  conversations?: ConversationReader | undefined;
  /** Gateway servers' resources and templates (their own URIs), listed after Caxton's. */
  gateway?: McpGateway | undefined;
}

const agentUri = (name: string) => `${AGENT_PREFIX}${encodeURIComponent(name)}`;
const conversationUri = (id: string) => `${CONVERSATION_PREFIX}${encodeURIComponent(id)}`;
const memoryUri = (scope: string, name: string) =>
  `${MEMORY_PREFIX}${encodeURIComponent(scope)}/${encodeURIComponent(name)}`;

const json = (uri: string, body: unknown): ReadResourceResult => ({
  contents: [{ uri, mimeType: JSON_TYPE, text: scrubSecrets(JSON.stringify(body, null, 2)) }],
});
const notFound = (uri: string, why: string) =>
  rpcError(RESOURCE_NOT_FOUND, `resource not found: ${uri} (${why})`, { uri });

function decode(uri: string, part: string, shape: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw rpcError(ErrorCode.InvalidParams, `resource URI "${uri}" is not well formed: expected ${shape}`);
  }
}

function agentResource(a: DeployedAgent): Resource {
  const name = a.definition.name as string;
  return {
    uri: agentUri(name),
    name: `agent ${name}`,
    title: `Agent definition: ${name}`,
    description: a.definition.description || `The definition of the Caxton agent "${name}"`,
    mimeType: JSON_TYPE,
  };
}

function conversationResource(c: Conversation): Resource {
  const who = c.participants.join(', ');
  return {
    uri: conversationUri(c.id),
    name: `conversation ${c.id}`,
    title: `Conversation ${c.id} (${c.state})`,
    description: `${c.protocol ?? 'no protocol'}, ${c.turns} message${c.turns === 1 ? '' : 's'}, started by ${c.initiator}${who ? `; participants: ${who}` : ''}`,
    mimeType: JSON_TYPE,
    annotations: { lastModified: c.updated_at },
  };
}

/** resources/list walks the agents, the conversations, then the gateway servers' resources; the cursor says where it stopped. */
type Section = 'agents' | 'conversations' | 'gateway';

function encodeCursor(section: Section, offset: number): string {
  return Buffer.from(`${section}:${offset}`).toString('base64url');
}

/** A cursor this server did not hand out is the caller's mistake: JSON-RPC -32602. */
function decodeCursor(cursor: string | undefined): { section: Section; offset: number } {
  if (cursor === undefined) return { section: 'agents', offset: 0 };
  const m = /^(agents|conversations|gateway):(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m)
    throw rpcError(
      ErrorCode.InvalidParams,
      `invalid cursor "${cursor.slice(0, 40)}": pass the nextCursor of the previous page, or none for the first page`,
    );
  return { section: m[1] as Section, offset: Number(m[2]) };
}

export class CaxtonMcpResources {
  readonly #memory: MemoryBackend | undefined;
  readonly #conversations: ConversationReader | undefined;
  readonly #gateway: McpGateway | undefined;

  constructor(
    readonly agents: AgentRegistry,
    readonly patterns: readonly string[],
    sources: ResourceSources = {},
  ) {
    this.#memory = sources.memory;
    this.#conversations = sources.conversations;
    this.#gateway = sources.gateway;
  }

  templates(caller: McpCaller): ResourceTemplate[] {
    const p = caller.principal;
    const out: ResourceTemplate[] = [];
    if (allowed(p, 'agents:read'))
      out.push({
        uriTemplate: `${AGENT_PREFIX}{name}`,
        name: 'agent',
        title: 'Agent definition',
        description: 'A deployed agent: its definition as JSON (the parsed form of its TOML or Markdown file)',
        mimeType: JSON_TYPE,
      });
    if (this.#conversations && allowed(p, 'messages:read'))
      out.push({
        uriTemplate: `${CONVERSATION_PREFIX}{id}`,
        name: 'conversation',
        title: 'Conversation transcript',
        description:
          'A conversation between agents (state, protocol, participants) and its FIPA-ACL messages in order: performative, sender, receivers, content, timestamp',
        mimeType: JSON_TYPE,
      });
    if (this.#memory && allowed(p, 'memory:read'))
      out.push({
        uriTemplate: `${MEMORY_PREFIX}{scope}/{name}`,
        name: 'memory-entity',
        title: 'Memory entity',
        description:
          'A knowledge-graph entity with its type, observations, metadata and every relation from or to it. scope: "workspace", "global" or "agent:NAME"',
        mimeType: JSON_TYPE,
      });
    out.push(...(this.#gateway?.templates(caller) ?? []));
    return out;
  }

  async list(caller: McpCaller, cursor?: string): Promise<{ resources: Resource[]; nextCursor?: string }> {
    const p = caller.principal;
    let { section, offset } = decodeCursor(cursor);
    const resources: Resource[] = [];
    if (section === 'agents') {
      const all = allowed(p, 'agents:read') ? visibleAgents(this.agents, this.patterns, caller) : [];
      resources.push(...all.slice(offset, offset + RESOURCE_PAGE).map(agentResource));
      if (offset + RESOURCE_PAGE < all.length)
        return { resources, nextCursor: encodeCursor('agents', offset + RESOURCE_PAGE) };
      section = 'conversations';
      offset = 0;
    }
    const conversations = this.#conversations;
    if (section === 'conversations' && conversations && allowed(p, 'messages:read')) {
      const room = RESOURCE_PAGE - resources.length;
      // A full page of agents: say there is more only if there is a conversation to come.
      const page = await readsFor(conversations, p).listConversations({ limit: Math.max(room, 1), offset });
      if (room === 0) {
        if (page.total > offset) return { resources, nextCursor: encodeCursor('conversations', offset) };
      } else {
        resources.push(...page.items.map(conversationResource));
        const next = offset + page.items.length;
        if (page.items.length > 0 && next < page.total)
          return { resources, nextCursor: encodeCursor('conversations', next) };
      }
    }
    if (section !== 'gateway') {
      section = 'gateway';
      offset = 0;
    }
    const through = this.#gateway?.resources(caller) ?? [];
    const room = RESOURCE_PAGE - resources.length;
    resources.push(...through.slice(offset, offset + room));
    return offset + room < through.length
      ? { resources, nextCursor: encodeCursor('gateway', offset + room) }
      : { resources };
  }

  async read(uri: string, caller: McpCaller, signal?: AbortSignal): Promise<ReadResourceResult> {
    if (uri.startsWith(AGENT_PREFIX)) return this.#readAgent(uri, caller);
    if (uri.startsWith(CONVERSATION_PREFIX) && this.#conversations)
      return this.#readConversation(uri, caller, this.#conversations);
    if (uri.startsWith(MEMORY_PREFIX) && this.#memory) return this.#readMemory(uri, caller, this.#memory);
    // caxton:// is Caxton's own: a gateway server cannot answer for it.
    const owner = uri.startsWith('caxton://') ? undefined : this.#gateway?.resourceOwner(uri, caller);
    if (owner)
      return scrubSecretsIn(await owner.request(`resource ${uri}`, (c, o) => c.readResource({ uri }, o), signal));
    throw notFound(
      uri,
      `this server offers ${
        this.templates(caller)
          .map((t) => t.uriTemplate)
          .join(', ') || 'no resources to this caller'
      }`,
    );
  }

  #readAgent(uri: string, caller: McpCaller): ReadResourceResult {
    const p = caller.principal;
    if (!allowed(p, 'agents:read'))
      throw rpcError(
        ErrorCode.InvalidParams,
        `${p!.id} (role ${p!.role}) may not read agent definitions: it needs the agents:read permission`,
      );
    const name = decode(uri, uri.slice(AGENT_PREFIX.length), `${AGENT_PREFIX}{name}`);
    const a = offeredAgent(this.agents, this.patterns, caller, name);
    if (!a) throw notFound(uri, 'no such agent offered');
    const body = {
      definition: a.definition,
      format: a.format,
      revision: a.revision,
      deployed_at: a.deployed_at,
      updated_at: a.updated_at,
    };
    return json(agentUri(a.definition.name as string), body);
  }

  async #readConversation(
    uri: string,
    caller: McpCaller,
    conversations: ConversationReader,
  ): Promise<ReadResourceResult> {
    const p = caller.principal;
    if (!allowed(p, 'messages:read'))
      throw rpcError(
        ErrorCode.InvalidParams,
        `${p!.id} (role ${p!.role}) may not read conversations: it needs the messages:read permission`,
      );
    const id = decode(uri, uri.slice(CONVERSATION_PREFIX.length), `${CONVERSATION_PREFIX}{id}`);
    if (id === '' || id.length > 200) throw notFound(uri, 'no such conversation');
    let got: Awaited<ReturnType<ConversationReader['getConversation']>>;
    try {
      got = await readsFor(conversations, p).getConversation(id, { limit: TRANSCRIPT_LIMIT });
    } catch (e) {
      if (e instanceof CaxtonError && (e.code === 'conversation_not_found' || e.code === 'not_found'))
        throw notFound(uri, 'no such conversation');
      throw e;
    }
    const { conversation, messages } = got;
    const body = {
      conversation,
      // As GET /api/v1/conversations/{id}: each stored message and where it was routed, oldest first.
      messages: messages.map((s) => ({ ...s.message, routed_to: s.routed_to })),
      ...(messages.length < conversation.turns && messages.length === TRANSCRIPT_LIMIT && { truncated: true }),
    };
    return json(conversationUri(conversation.id), body);
  }

  async #readMemory(uri: string, caller: McpCaller, memory: MemoryBackend): Promise<ReadResourceResult> {
    const p = caller.principal;
    const shape = `${MEMORY_PREFIX}{scope}/{name}`;
    if (!allowed(p, 'memory:read'))
      throw rpcError(
        ErrorCode.InvalidParams,
        `${p!.id} (role ${p!.role}) may not read memory: it needs the memory:read permission`,
      );
    const rest = uri.slice(MEMORY_PREFIX.length);
    const slash = rest.indexOf('/');
    if (slash <= 0 || slash === rest.length - 1)
      throw rpcError(ErrorCode.InvalidParams, `resource URI "${uri}" is not well formed: expected ${shape}`);
    const written = decode(uri, rest.slice(0, slash), shape);
    const name = decode(uri, rest.slice(slash + 1), shape);
    let scope: string;
    try {
      scope = parseScope(written);
    } catch (e) {
      throw rpcError(ErrorCode.InvalidParams, `resource URI "${uri}": ${e instanceof Error ? e.message : String(e)}`);
    }
    // The memory layer's scope rule, answered as "not found" so a resource read does not tell
    // which entities exist in scopes the caller may not use.
    if (permittedScopes(p, [written, scope]).length === 0)
      throw notFound(uri, `no such entity in a memory scope this caller may read`);
    const entity = await memory.getEntity(scope, name);
    if (!entity) throw notFound(uri, `no entity named "${name}" in scope ${scope}`);
    const relations = await memory.relationsTouching([{ scope, name: entity.name }]);
    return json(memoryUri(scope, entity.name), { entity, relations });
  }
}
