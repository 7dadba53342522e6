/**
 * The nine tools of the MCP reference memory server (same names, same input and output shapes),
 * offered to agents as host tools. Each takes an optional `scope`: "agent" (the calling agent's
 * private memory), "workspace" or "global". Writes go to the given scope, else the agent's
 * `[memory] scope`; reads without a scope see the agent's own memory, the workspace and global.
 * The agent scope is always built from the CALLING agent's name (ToolContext.agent): no argument
 * can reach another agent's private memory.
 *
 * Caxton additions, all optional: `metadata` on create_entities; `entity_type`, `limit`,
 * `min_similarity` on search_nodes, which returns the reference's substring matches AND
 * semantic matches, best first, each entity with its `scope` (and `score` when ranked).
 */
import type { JsonSchema } from '../llm/types.js';
import { CaxtonError, isCaxtonError } from '../shared/errors.js';
import type { AuditedResult } from '../tools/audited.js';
import type { Tool, ToolContext, ToolResult } from '../tools/types.js';
import {
  agentScope,
  checkMemoryScope,
  permittedScopes,
  SCOPE_KINDS,
  toolScope,
  visibleScopes,
  type MemoryCaller,
  type ScopeKind,
} from './scope.js';
import type { MemoryBackend } from './backend.js';
import type { Graph, StoredEntity } from './types.js';
import { checkAdditions, checkDeletions, checkEntities, checkNames, checkRelations } from './memory-validate.js';

export const MEMORY_TOOL_NAMES = [
  'create_entities',
  'create_relations',
  'add_observations',
  'delete_entities',
  'delete_observations',
  'delete_relations',
  'read_graph',
  'search_nodes',
  'open_nodes',
] as const;

const READ_TOOLS: ReadonlySet<string> = new Set(['read_graph', 'search_nodes', 'open_nodes']);

/** An agent's memory settings, as its definition's `[memory]` section has them. */
export interface AgentMemorySettings {
  scope: ScopeKind;
  search_limit: number;
  min_similarity: number;
}

export interface MemoryToolsOptions {
  /** The calling agent's settings (undefined: defaults — scope "agent", 10 results, no threshold). */
  settings?: (agent: string) => AgentMemorySettings | undefined;
}

const SCOPE_PROP = {
  type: 'string',
  enum: [...SCOPE_KINDS],
  description:
    'Memory scope: "agent" (your private memory), "workspace" (shared by this server\'s agents) or "global". Default: your configured scope for writes; for reads, all three.',
};

const ENTITY: JsonSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', description: 'The name of the entity' },
    entityType: { type: 'string', description: 'The type of the entity' },
    observations: {
      type: 'array',
      items: { type: 'string' },
      description: 'An array of observation contents associated with the entity',
    },
    metadata: { type: 'object', description: 'Optional key/value metadata' },
  },
  required: ['name', 'entityType', 'observations'],
};
const RELATION: JsonSchema = {
  type: 'object',
  properties: {
    from: { type: 'string', description: 'The name of the entity where the relation starts' },
    to: { type: 'string', description: 'The name of the entity where the relation ends' },
    relationType: { type: 'string', description: 'The type of the relation' },
  },
  required: ['from', 'to', 'relationType'],
};

/** The principal behind a call, when there is one: its memory scopes bound what the tools touch. */
function callerOf(ctx: ToolContext): MemoryCaller | undefined {
  if (ctx.principal === undefined) return undefined;
  return { id: ctx.principal, scope: ctx.memory_scopes === undefined ? {} : { memory: ctx.memory_scopes } };
}

function json(v: unknown): ToolResult {
  return { content: JSON.stringify(v, null, 2) };
}

/** Entities as the model sees them: the reference fields, plus their scope as a kind ("agent" for its own). */
function present(e: StoredEntity & { score?: number }, agent: string): Record<string, unknown> {
  const own = agentScope(agent);
  return {
    name: e.name,
    entityType: e.entityType,
    observations: e.observations,
    scope: e.scope === own ? 'agent' : e.scope,
    ...(Object.keys(e.metadata).length > 0 && { metadata: e.metadata }),
    ...(e.score !== undefined && { score: e.score }),
  };
}

function presentGraph(
  g: Graph & { entities: (StoredEntity & { score?: number })[] },
  agent: string,
): Record<string, unknown> {
  return {
    entities: g.entities.map((e) => present(e, agent)),
    relations: g.relations.map((r) => ({ from: r.from, to: r.to, relationType: r.relationType })),
  };
}

export function memoryTools(store: MemoryBackend, opts: MemoryToolsOptions = {}): Tool[] {
  const settings = (agent: string): AgentMemorySettings =>
    opts.settings?.(agent) ?? { scope: 'agent', search_limit: 10, min_similarity: 0 };
  const writeScope = (args: Record<string, unknown>, ctx: ToolContext) => {
    const scope = toolScope(args.scope, ctx.agent, settings(ctx.agent).scope);
    checkMemoryScope(callerOf(ctx), scope);
    return scope;
  };
  // A read without a scope covers what the caller may see of the calling agent's scopes; a caller
  // allowed none of them is refused, as one naming a scope it may not use is.
  const readScopes = (args: Record<string, unknown>, ctx: ToolContext) => {
    const caller = callerOf(ctx);
    if (args.scope !== undefined && args.scope !== null) {
      const scope = toolScope(args.scope, ctx.agent, 'agent');
      checkMemoryScope(caller, scope);
      return [scope];
    }
    const scopes = permittedScopes(caller, visibleScopes(ctx.agent));
    if (scopes.length === 0) checkMemoryScope(caller, undefined);
    return scopes;
  };
  const kit: MemoryToolKit = { store, limits: store.limits, settings, writeScope, readScopes };
  return [...writeTools(kit), ...readTools(kit)];
}

/** What the memory tools share: the store, its limits, and the scopes a call writes to or reads. */
interface MemoryToolKit {
  store: MemoryBackend;
  limits: MemoryBackend['limits'];
  settings: (agent: string) => AgentMemorySettings;
  writeScope: (args: Record<string, unknown>, ctx: ToolContext) => string;
  readScopes: (args: Record<string, unknown>, ctx: ToolContext) => string[];
}

function memoryTool(
  name: string,
  description: string,
  properties: Record<string, unknown>,
  required: string[],
  run: (args: Record<string, unknown>, ctx: ToolContext) => Promise<ToolResult> | ToolResult,
): Tool {
  return {
    name,
    description,
    // A read changes nothing: an interrupted durable run may read again (src/execution/runs).
    idempotent: READ_TOOLS.has(name),
    input_schema: { type: 'object', properties: { ...properties, scope: SCOPE_PROP }, required },
    async invoke(args, ctx): Promise<AuditedResult> {
      try {
        return await run(args, ctx);
      } catch (e) {
        // A scope the caller may not use is a refusal, and is recorded as one (not as a failure).
        if (isCaxtonError(e))
          return { content: e.message, is_error: true, ...(e.code === 'forbidden' && { outcome: 'denied' as const }) };
        throw e;
      }
    },
  };
}

/** The tools that change the knowledge graph. */
function writeTools(k: MemoryToolKit): Tool[] {
  return [
    memoryTool(
      'create_entities',
      'Create multiple new entities in the knowledge graph',
      { entities: { type: 'array', items: ENTITY } },
      ['entities'],
      async (a, ctx) => json(await k.store.createEntities(k.writeScope(a, ctx), checkEntities(a.entities, k.limits))),
    ),
    memoryTool(
      'create_relations',
      'Create multiple new relations between entities in the knowledge graph. Relations should be in active voice',
      { relations: { type: 'array', items: RELATION } },
      ['relations'],
      async (a, ctx) =>
        json(await k.store.createRelations(k.writeScope(a, ctx), checkRelations(a.relations, k.limits))),
    ),
    memoryTool(
      'add_observations',
      'Add new observations to existing entities in the knowledge graph',
      {
        observations: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              entityName: { type: 'string', description: 'The name of the entity to add the observations to' },
              contents: {
                type: 'array',
                items: { type: 'string' },
                description: 'An array of observation contents to add',
              },
            },
            required: ['entityName', 'contents'],
          },
        },
      },
      ['observations'],
      async (a, ctx) =>
        json(await k.store.addObservations(k.writeScope(a, ctx), checkAdditions(a.observations, k.limits))),
    ),
    memoryTool(
      'delete_entities',
      'Delete multiple entities and their associated relations from the knowledge graph',
      { entityNames: { type: 'array', items: { type: 'string' }, description: 'An array of entity names to delete' } },
      ['entityNames'],
      async (a, ctx) => {
        await k.store.deleteEntities(k.writeScope(a, ctx), checkNames(a.entityNames, k.limits, 'entityNames'));
        return { content: 'Entities deleted successfully' };
      },
    ),
    memoryTool(
      'delete_observations',
      'Delete specific observations from entities in the knowledge graph',
      {
        deletions: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              entityName: { type: 'string', description: 'The name of the entity containing the observations' },
              observations: {
                type: 'array',
                items: { type: 'string' },
                description: 'An array of observations to delete',
              },
            },
            required: ['entityName', 'observations'],
          },
        },
      },
      ['deletions'],
      async (a, ctx) => {
        await k.store.deleteObservations(k.writeScope(a, ctx), checkDeletions(a.deletions, k.limits));
        return { content: 'Observations deleted successfully' };
      },
    ),
    memoryTool(
      'delete_relations',
      'Delete multiple relations from the knowledge graph',
      { relations: { type: 'array', items: RELATION, description: 'An array of relations to delete' } },
      ['relations'],
      async (a, ctx) => {
        await k.store.deleteRelations(k.writeScope(a, ctx), checkRelations(a.relations, k.limits));
        return { content: 'Relations deleted successfully' };
      },
    ),
  ];
}

/** The tools that read the knowledge graph. */
function readTools(k: MemoryToolKit): Tool[] {
  return [
    memoryTool('read_graph', 'Read the entire knowledge graph', {}, [], async (a, ctx) =>
      json(presentGraph(await k.store.readGraph(k.readScopes(a, ctx)), ctx.agent)),
    ),
    memoryTool(
      'search_nodes',
      'Search for nodes in the knowledge graph based on a query: entities whose name, type or observations contain it, and entities similar in meaning, best first',
      {
        query: {
          type: 'string',
          description: 'The search query to match against entity names, types, and observation content',
        },
        entity_type: { type: 'string', description: 'Only entities of this type' },
        limit: { type: 'number', description: 'Most entities found by meaning (default: your memory search_limit)' },
        min_similarity: { type: 'number', description: 'Least similarity (0..1) of entities found by meaning' },
      },
      ['query'],
      async (a, ctx) => {
        if (typeof a.query !== 'string' || a.query.trim() === '')
          throw new CaxtonError('invalid_request', '"query" must be a non-empty string', { field: 'query' });
        const scopes = k.readScopes(a, ctx);
        const s = k.settings(ctx.agent);
        const type = typeof a.entity_type === 'string' ? a.entity_type : undefined;
        const substring = (await k.store.searchNodes(scopes, a.query)).entities.filter(
          (e) => type === undefined || e.entityType === type,
        );
        const hits = await k.store.search({
          query: a.query,
          scopes,
          limit: typeof a.limit === 'number' ? a.limit : s.search_limit,
          min_similarity: typeof a.min_similarity === 'number' ? a.min_similarity : s.min_similarity,
          ...(type !== undefined && { entity_type: type }),
        });
        const key = (e: StoredEntity) => `${e.scope}\u0000${e.name}`;
        const ranked = new Set(hits.map((h) => key(h.entity)));
        const entities = [
          ...hits.map((h) => ({ ...h.entity, score: h.score })),
          ...substring.filter((e) => !ranked.has(key(e))),
        ];
        return json(presentGraph({ entities, relations: await k.store.relationsTouching(entities) }, ctx.agent));
      },
    ),
    memoryTool(
      'open_nodes',
      'Open specific nodes in the knowledge graph by their names',
      { names: { type: 'array', items: { type: 'string' }, description: 'An array of entity names to retrieve' } },
      ['names'],
      async (a, ctx) =>
        json(
          presentGraph(
            await k.store.openNodes(k.readScopes(a, ctx), checkNames(a.names, k.limits, 'names')),
            ctx.agent,
          ),
        ),
    ),
  ];
}
