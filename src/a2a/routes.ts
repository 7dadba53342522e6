/**
 * The A2A routes (docs/a2a.md), at the server's root:
 *  - GET  /a2a/NAME/.well-known/agent-card.json: an exposed agent's card (one agent per base path);
 *  - GET  /a2a/agents: the catalogue, every exposed agent's card the caller may see;
 *  - POST /a2a/NAME: the JSON-RPC binding (the SDK's JsonRpcTransportHandler over AgentA2aHandler),
 *    answered as JSON, or as server-sent events for SendStreamingMessage and SubscribeToTask;
 *  - /a2a/NAME/message:send, /a2a/NAME/tasks...: the HTTP+JSON binding (rest.ts) over the same
 *    handler.
 * Each route carries its access policy (src/auth/route-policies.ts: `config.access`): a card and
 * the catalogue need agents:read (unless `[a2a] public_cards`), a call agents:invoke, both on an
 * agent in the key's scope; an agent not exposed is not found, as one that does not exist.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { JsonRpcTransportHandler, ServerCallContext, validateVersion } from '@a2a-js/sdk/server';
import type { AgentCard } from '@a2a-js/sdk';
import type { AgentDefinition, AgentRegistry } from '../agents/index.js';
import { annotateAudit } from '../audit/index.js';
import { agentVisible, globMatch, type Access } from '../auth/index.js';
import type { A2aConfig, ServerConfig } from '../config/index.js';
import type { ChatThreads, Executor } from '../execution/index.js';
import { CaxtonError } from '../shared/errors.js';
import type { Workspace } from '../tools/workspace/index.js';
import { A2A_BASE, agentCardOf, cardJson, type CardSettings } from './card.js';
import { AgentA2aHandler, type A2aCaller } from './handler.js';
import type { PushNotifier } from './push.js';
import { requestedVersion, restRoutes, type A2aCall } from './rest.js';
import { dataFrame, pipeSse, type SseFormat } from './sse.js';

type Plugin = (app: FastifyInstance) => Promise<void>;

export interface A2aRouteDeps {
  executor: Executor;
  threads: ChatThreads;
  registry: AgentRegistry;
  config: { a2a: A2aConfig; auth: ServerConfig['auth'] };
  /** Push notifications, when `[a2a] push_notifications` is on. */
  push?: PushNotifier | undefined;
  /** The workspace grant, whose files a completed task carries (files.ts). */
  workspace?: Workspace | undefined;
  /** The gRPC listener's address for the cards, once it listens (`[a2a] grpc_listen`, grpc.ts). */
  grpcAddress?: (() => string | undefined) | undefined;
}

/** One call's agent, as the caller's: its card and a handler acting for the caller. */
export type AgentCall = Omit<A2aCall, 'gone'>;

/**
 * The exposed agent `name` for one call of `caller`, its card naming the interfaces at `baseUrl`
 * (and the gRPC listener's); not found unless exposed. Every binding opens its calls here.
 */
export function agentCall(deps: A2aRouteDeps, name: string, baseUrl: string, caller: A2aCaller): AgentCall {
  const cfg = deps.config.a2a;
  const def = exposed(cfg, name) ? deps.registry.get(name)?.definition : undefined;
  if (def === undefined)
    throw new CaxtonError('agent_not_found', `no agent "${name}" is served over A2A ([a2a] expose)`, {
      agent: name,
    });
  const runs = deps.executor.runs;
  if (!runs)
    throw new CaxtonError(
      'not_supported',
      'A2A tasks are durable runs, which this server does not record ([execution] durable_runs = false)',
      { reason: 'runs_disabled' },
    );
  const card: AgentCard = agentCardOf(def, baseUrl, cardSettings(deps));
  const handler = new AgentA2aHandler({
    runs,
    threads: deps.threads,
    agent: def.name as string,
    card: () => card,
    caller,
    push: deps.push,
    workspace: deps.workspace,
  });
  return { card, handler };
}

const cardSettings = (deps: A2aRouteDeps): CardSettings => ({
  a2a: deps.config.a2a,
  auth: deps.config.auth,
  grpc: deps.grpcAddress?.(),
});

/** Marks a plugin as not encapsulated, so its routes keep their own paths (no /api/v1 prefix). */
function atRoot(plugin: Plugin): Plugin {
  (plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
  return plugin;
}

/** Whether `[a2a] expose` names the agent. */
export function exposed(cfg: A2aConfig, name: string): boolean {
  return cfg.expose.some((p) => globMatch(p, name));
}

/** The A2A routes; none when `[a2a] expose` is empty. */
export function a2aPlugins(deps: A2aRouteDeps): Plugin[] {
  const cfg = deps.config.a2a;
  if (cfg.expose.length === 0) return [];
  return [atRoot((app) => a2aRoutes(app, deps))];
}

async function a2aRoutes(app: FastifyInstance, deps: A2aRouteDeps): Promise<void> {
  const { registry } = deps;
  const cfg = deps.config.a2a;
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });

  const baseUrl = (req: FastifyRequest): string => cfg.public_url ?? `${req.protocol}://${req.host}`;
  const definitionOf = (name: string): AgentDefinition => {
    const def = exposed(cfg, name) ? registry.get(name)?.definition : undefined;
    if (def === undefined)
      throw new CaxtonError('agent_not_found', `no agent "${name}" is served over A2A ([a2a] expose)`, {
        agent: name,
      });
    return def;
  };

  const cardAccess: Access = cfg.public_cards ? { public: true } : { permission: 'agents:read', agentParam: 'agent' };
  app.get<{ Params: { agent: string } }>(
    `${A2A_BASE}/:agent/.well-known/agent-card.json`,
    {
      config: { access: cardAccess },
      schema: { summary: "An agent's A2A Agent Card", tags: ['a2a'], hide: true },
    },
    async (req, reply) => {
      const card = cardJson(agentCardOf(definitionOf(req.params.agent), baseUrl(req), cardSettings(deps)));
      return reply.header('cache-control', 'no-cache').send(card);
    },
  );

  app.get(
    `${A2A_BASE}/agents`,
    {
      config: { access: cfg.public_cards ? { public: true } : { permission: 'agents:read' } },
      schema: { summary: 'Every exposed agent the caller may see, with its Agent Card', tags: ['a2a'], hide: true },
    },
    async (req) => {
      const base = baseUrl(req);
      const agents = registry
        .list({ visible: (name) => exposed(cfg, name) && agentVisible(req.principal, name) })
        .agents.map((a) => cardJson(agentCardOf(a.definition, base, cardSettings(deps))));
      return { agents };
    },
  );

  app.post<{ Params: { agent: string } }>(
    `${A2A_BASE}/:agent`,
    {
      config: { access: { permission: 'agents:invoke', agentParam: 'agent' } },
      schema: {
        summary: 'A2A JSON-RPC: send messages, read, follow and cancel tasks, set their push notification configs',
        tags: ['a2a'],
        hide: true,
      },
    },
    async (req, reply) => rpc(req, reply),
  );

  /** The agent a request names, its card, and a handler acting for the caller until the client goes away. */
  const open = (req: FastifyRequest<{ Params: { agent: string } }>, reply: FastifyReply): A2aCall => {
    const gone = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) gone.abort();
    });
    const caller: A2aCaller = {
      principal: req.principal,
      limits: req.limits,
      signal: gone.signal,
      refused: () => annotateAudit(req, { outcome: 'denied' }),
      failed: (code) => annotateAudit(req, { outcome: 'error', details: { error_code: code } }),
    };
    return { ...agentCall(deps, req.params.agent, baseUrl(req), caller), gone };
  };
  restRoutes(app, { open, streams });

  async function rpc(req: FastifyRequest<{ Params: { agent: string } }>, reply: FastifyReply): Promise<unknown> {
    const { card, handler, gone } = open(req, reply);
    const body = req.body as { id?: unknown } | undefined;
    const id = typeof body?.id === 'string' || typeof body?.id === 'number' ? body.id : null;
    const context = new ServerCallContext({ requestedVersion: requestedVersion(req) });
    try {
      validateVersion(context.requestedVersion, card, 'JSONRPC');
    } catch (e) {
      return reply.send({ jsonrpc: '2.0', id, error: JsonRpcTransportHandler.mapToJSONRPCError(e) });
    }
    const answer = await new JsonRpcTransportHandler(handler).handle(req.body as Record<string, unknown>, context);
    if (!(Symbol.asyncIterator in answer)) return reply.send(answer);
    const it = answer[Symbol.asyncIterator]();
    let first: IteratorResult<unknown>;
    try {
      first = await it.next();
    } catch (e) {
      // Refused before anything streamed: one JSON-RPC error, as for the other methods.
      return reply.send({ jsonrpc: '2.0', id, error: JsonRpcTransportHandler.mapToJSONRPCError(e) });
    }
    return pipeSse(req, reply, first, it, rpcFrames(id), gone, streams);
  }
}

/** JSON-RPC events: each already an answer to the request; an error mid-stream is one more. */
const rpcFrames = (id: string | number | null): SseFormat => ({
  event: dataFrame,
  error: (e) => dataFrame({ jsonrpc: '2.0', id, error: JsonRpcTransportHandler.mapToJSONRPCError(e) }),
});
