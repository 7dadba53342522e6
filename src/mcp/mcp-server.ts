/**
 * MCP server side: Caxton's tools, agents and their definitions offered to MCP clients. The same
 * `Server` factory backs both transports: Streamable HTTP at POST /mcp (mcp-http.ts, stateless: a
 * fresh server per request) and stdio (`caxton mcp`, stdio.ts).
 *
 * Offered (caxton.toml `[mcp]`): the built-ins named in `builtin_tools`, the host tools matching
 * `host_tools` (send_message, WASM tool servers, mounted MCP servers...), and every agent matching
 * `agents` as a tool `ask_<agent>` whose answer is the agent's reply (Executor.invoke), as a
 * prompt (prompts.ts) and as a resource `caxton://agents/{name}` (resources.ts). With
 * `run_tools`, durable runs' approvals can be listed and decided on (run-tools.ts).
 */
import { randomUUID } from 'node:crypto';
import { inScope, senderOf, type Principal } from '../auth/index.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  type CallToolResult,
  type Progress,
  type ServerCapabilities,
  type Tool as McpToolSpec,
} from '@modelcontextprotocol/sdk/types.js';
import type { AgentRegistry } from '../agents/index.js';
import type { ServerConfig } from '../config/index.js';
import type { ExecutionEvent, Executor } from '../execution/index.js';
import type { Logger } from '../observability/index.js';
import { CaxtonError } from '../shared/errors.js';
import { scrubSecrets, scrubSecretsIn } from '../shared/secrets.js';
import { VERSION } from '../shared/version.js';
import { storeWriteError } from '../storage/index.js';
import type { AuditedResult } from '../tools/audited.js';
import type { ToolRegistry } from '../tools/tool-registry.js';
import type { ToolCallMetrics } from '../tools/catalogue.js';
import type { McpClientManager } from './mcp-client.js';
import { McpGateway, type GatewayTool } from './gateway.js';
import { allowed, matches, rpcError, type McpCaller } from './offer.js';
import { CaxtonMcpPrompts } from './prompts.js';
import { CaxtonMcpResources, type ConversationReader } from './resources.js';
import { McpRunTools } from './run-tools.js';
import type { MemoryBackend } from '../memory/index.js';

export type { McpCaller } from './offer.js';

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

export type McpServeConfig = ServerConfig['mcp'];

export interface McpServeDeps {
  executor: Executor;
  agents: AgentRegistry;
  config: McpServeConfig;
  logger?: Logger;
  /** The knowledge graph, offered as `caxton://memory/{scope}/{name}` resources; absent when `[memory]` is off. */
  memory?: MemoryBackend | undefined;
  /** Conversation reads (the message bus), offered as `caxton://conversations/{id}` resources. */
  conversations?: ConversationReader | undefined;
  /** Counts direct tool calls over MCP in caxton_tool_calls_total{via="mcp"} (ask_<agent> calls are the agent's). */
  metrics?: ToolCallMetrics;
  /** Mounted servers: their status routes, and the gateway servers' tools, prompts and resources (gateway.ts). */
  clients?: McpClientManager | undefined;
}

/** Agents are offered as `ask_<agent>`. */
export const ASK_PREFIX = 'ask_';

const ASK_SCHEMA = {
  type: 'object',
  properties: {
    request: { type: 'string', description: 'What to ask the agent' },
    context: { type: 'string', description: 'Optional extra context for the agent' },
    version: {
      type: 'integer',
      minimum: 1,
      description:
        "Optional: a version the agent's history keeps (as NAME@VERSION elsewhere); the live one when absent",
    },
  },
  required: ['request'],
} as const;

/** A result for the MCP client; its text is scrubbed of the configured secrets (the MCP exit, ADR 0017). */
function text(raw: string, isError = false): CallToolResult {
  const t = scrubSecrets(raw);
  return isError ? { content: [{ type: 'text', text: t }], isError: true } : { content: [{ type: 'text', text: t }] };
}

const mayCallTools = (p: Principal | undefined) => allowed(p, 'tools:call');
const toolInScope = (p: Principal | undefined, name: string) => p === undefined || inScope(p.scope.tools, name);

type Resolved =
  | { kind: 'builtin' | 'host'; registry: ToolRegistry }
  | { kind: 'agent'; agent: string }
  | ({ kind: 'gateway' } & GatewayTool);

/** What Caxton offers over MCP, computed on every list/call (agents and host tools come and go). */
export class CaxtonMcpTools {
  readonly #deps: McpServeDeps;
  readonly gateway: McpGateway;
  /** Durable runs' tools, offered with `[mcp] run_tools` on a server that records runs. */
  readonly #runs: McpRunTools;

  constructor(deps: McpServeDeps) {
    this.#deps = deps;
    this.gateway = new McpGateway(deps.clients, deps.config.host_tools);
    this.#runs = new McpRunTools(() => (deps.config.run_tools ? deps.executor.runs : undefined));
  }

  list(caller: McpCaller = {}): McpToolSpec[] {
    const { executor, agents, config } = this.#deps;
    const p = caller.principal;
    const out: McpToolSpec[] = [];
    const seen = new Set<string>();
    const add = (t: McpToolSpec) => {
      if (seen.has(t.name)) return;
      seen.add(t.name);
      out.push(t);
    };
    const tools = mayCallTools(p);
    for (const t of this.#runs.list()) add(t);
    for (const t of executor.deps.tools.list())
      if (tools && config.builtin_tools.includes(t.name) && toolInScope(p, t.name))
        add({ name: t.name, description: t.description, inputSchema: t.input_schema as McpToolSpec['inputSchema'] });
    for (const t of executor.hostTools.list())
      if (tools && matches(config.host_tools, t.name) && toolInScope(p, t.name) && !this.gateway.owns(t.name))
        add({ name: t.name, description: t.description, inputSchema: t.input_schema as McpToolSpec['inputSchema'] });
    for (const a of agents.list().agents) {
      const name = a.definition.name as string;
      if (!matches(config.agents, name) || (p && !inScope(p.scope.agents, name))) continue;
      add({
        name: `${ASK_PREFIX}${name}`,
        title: `Ask ${name}`,
        description: `Ask the Caxton agent "${name}" and get its answer. ${a.definition.description}`.trim(),
        inputSchema: ASK_SCHEMA as unknown as McpToolSpec['inputSchema'],
      });
    }
    // Gateway servers' tools last, under their own names: Caxton's names win a collision.
    for (const t of this.gateway.tools(caller, seen)) add(t);
    return out;
  }

  #resolve(name: string): Resolved | undefined {
    const { executor, agents, config } = this.#deps;
    if (config.builtin_tools.includes(name) && executor.deps.tools.get(name))
      return { kind: 'builtin', registry: executor.deps.tools };
    if (matches(config.host_tools, name) && executor.hostTools.get(name) && !this.gateway.owns(name))
      return { kind: 'host', registry: executor.hostTools };
    if (name.startsWith(ASK_PREFIX)) {
      const agent = agents.get(name.slice(ASK_PREFIX.length));
      if (agent && matches(config.agents, agent.definition.name as string))
        return { kind: 'agent', agent: agent.definition.name as string };
    }
    const through = this.gateway.tool(name);
    return through && { kind: 'gateway', ...through };
  }

  /**
   * Runs one call for an MCP client. A tool that is not offered is the caller's mistake and a
   * JSON-RPC error (-32602, thrown as an McpError: the specification's listing); everything that goes
   * wrong once a tool is found (refusals, bad arguments, failures) is an `isError` result the model can read.
   */
  async call(name: string, args: Record<string, unknown>, opts: McpCallOptions): Promise<CallToolResult> {
    const { signal, client, traceparent, caller = {}, progress } = opts;
    // Caxton's own names first; the checks are the runs' own, as on REST (run-tools.ts).
    if (this.#runs.offers(name)) return this.#runs.call(name, args, caller);
    const target = this.#resolve(name);
    const unknown = () =>
      rpcError(
        ErrorCode.InvalidParams,
        `Unknown tool: "${name}" is not offered by this Caxton server (tools/list names the ones that are)`,
      );
    if (!target) throw unknown();
    // The HTTP route let the caller in with agents:invoke; tools need tools:call and the caller's scopes.
    const p = caller.principal;
    // An agent outside the caller's scope is not offered to it (tools/list leaves it out), so asking
    // it answers exactly as a name nothing offers: the answer does not tell that it exists. The
    // audit still records the refusal.
    if (p && target.kind === 'agent' && !inScope(p.scope.agents, target.agent)) {
      caller.refused?.();
      throw unknown();
    }
    // A gateway tool is in scope by its Caxton name (`NAME.tool`), as agents and the audit name it.
    const scoped = target.kind === 'gateway' ? target.tool.name : name;
    if (p && target.kind !== 'agent' && (!mayCallTools(p) || !toolInScope(p, scoped))) {
      caller.refused?.();
      return text(
        `${p.id} (role ${p.role}) may not call the tool "${scoped}": it needs the tools:call permission${p.scope.tools ? ' and the tool in its scope' : ''}`,
        true,
      );
    }
    // The key's memory scopes go with the call: the memory tools refuse any other scope.
    const who = p ? { principal: p.id } : {};
    const caller_ = `mcp${client ? `:${client}` : ''}`;
    if (target.kind === 'agent') {
      const request = args.request;
      if (typeof request !== 'string' || request === '') return text(`"request" must be a non-empty string`, true);
      const context = args.context;
      const version = args.version;
      if (version !== undefined && !(typeof version === 'number' && Number.isSafeInteger(version) && version >= 1))
        return text(
          `"version" must be a whole number from 1 (a version of agent "${target.agent}" its history keeps)`,
          true,
        );
      try {
        // NAME@VERSION resolves as on every surface (src/agents/rollouts/version-resolver.ts).
        const res = await this.#deps.executor.invoke(
          version === undefined ? target.agent : `${target.agent}@${version}`,
          {
            request,
            ...(typeof context === 'string' && context !== '' && { context }),
            ...(traceparent !== undefined && { traceparent }),
            ...who,
          },
          {
            signal,
            origin: 'mcp',
            ...(p && { limit: { principalId: p.id, limits: caller.limits } }),
            ...(progress && { onEvent: progressOf(progress.step) }),
          },
        );
        return {
          content: [{ type: 'text', text: res.content }],
          structuredContent: {
            agent: res.agent,
            execution_id: res.execution_id,
            finish_reason: res.finish_reason,
            turns: res.turns,
            usage: res.usage,
          },
        };
      } catch (caught) {
        // A write the store refused (disk full, data dir gone) is said as the API says it.
        const e = storeWriteError(caught) ?? caught;
        if (e instanceof CaxtonError) return text(`agent "${target.agent}" failed (${e.code}): ${e.message}`, true);
        this.#deps.logger?.error({ err: e, tool: name }, 'MCP ask failed');
        return text(`agent "${target.agent}" failed: ${e instanceof Error ? e.message : String(e)}`, true);
      }
    }
    // The key's memory scopes go with the call: the memory tools refuse any other scope.
    const ctx = {
      agent: caller_,
      execution_id: `mcp_${randomUUID()}`,
      deadline: Date.now() + this.#deps.config.timeout,
      signal,
      ...(traceparent !== undefined && { traceparent }),
      ...who,
      // Messages it sends are the caller's own (send_message): sent as its principal, in its scope.
      ...(p !== undefined && p.kind !== 'local' && { sender: senderOf(p) }),
      ...(p?.scope.memory !== undefined && { memory_scopes: p.scope.memory }),
    };
    const t0 = performance.now();
    if (target.kind === 'gateway') {
      // The server's result as it is, its progress forwarded with the client's own token.
      const r = await target.conn.callThrough(target.tool, args, ctx, progress?.forward);
      this.#deps.metrics?.tool(
        target.tool.name,
        r.isError === true ? 'error' : 'ok',
        (performance.now() - t0) / 1000,
        'mcp',
      );
      return r;
    }
    try {
      const r: AuditedResult = await target.registry.invoke([name], name, args, ctx);
      // Refused, not run (a workspace deny rule, a tool's own grant): the request's audit says denied.
      if (r.refused === true || r.outcome === 'denied') caller.refused?.();
      this.#deps.metrics?.tool(name, r.is_error === true ? 'error' : 'ok', (performance.now() - t0) / 1000, 'mcp');
      return text(r.content, r.is_error === true);
    } catch (e) {
      return text(`tool "${name}" was cancelled: ${e instanceof Error ? e.message : String(e)}`, true);
    }
  }
}

export interface McpCallOptions {
  signal: AbortSignal;
  /** The MCP client's name (clientInfo), recorded as the tool context's agent `mcp:<client>`. */
  client?: string | undefined;
  traceparent?: string | undefined;
  caller?: McpCaller;
  /** The client gave a progress token; absent: nobody listens. */
  progress?: McpProgress;
}

export interface McpProgress {
  /** One more step of an `ask_<agent>` execution (a tool call or its result). */
  step: (message: string) => void;
  /** A gateway server's own notification, passed on as it is. */
  forward: (p: Progress) => void;
}

/** The execution's tool calls and results as progress lines (tokens are not: one notification per token would flood the client). */
function progressOf(progress: McpProgress['step']): (e: ExecutionEvent) => void {
  return (e) => {
    if (e.type === 'tool_call') progress(`turn ${e.turn}: calling ${e.call.name}`);
    else if (e.type === 'tool_result')
      progress(`${e.name} ${e.is_error ? 'failed' : 'answered'} (${Math.round(e.duration_ms)} ms)`);
  };
}

export interface McpServerOptions {
  caller?: McpCaller;
  /**
   * Whether this transport can deliver the `list_changed` notifications: stdio can (stdio.ts sends them
   * when agents or mounted servers change); stateless HTTP cannot (no stream outlives a request), so
   * it must not advertise them.
   */
  listChanged?: boolean;
}

/** A new MCP `Server` offering Caxton's tools, agents (tools, prompts, resources) and logging (one per HTTP request, one per stdio session). */
export function createMcpServer(
  deps: McpServeDeps,
  tools = new CaxtonMcpTools(deps),
  opts: McpServerOptions = {},
): Server {
  const caller = opts.caller ?? {};
  const listChanged = opts.listChanged === true;
  const gateway = tools.gateway;
  const prompts = new CaxtonMcpPrompts(deps.agents, deps.config.agents, gateway);
  const resources = new CaxtonMcpResources(deps.agents, deps.config.agents, {
    memory: deps.memory,
    conversations: deps.conversations,
    gateway,
  });
  const capabilities: ServerCapabilities = {
    tools: listChanged ? { listChanged: true } : {},
    prompts: listChanged ? { listChanged: true } : {},
    resources: listChanged ? { listChanged: true } : {},
    logging: {},
    // Only a gateway server completes arguments; Caxton's own prompts have none worth completing.
    ...(gateway.completes(caller) && { completions: {} }),
  };
  const server = new Server(
    { name: 'caxton', version: VERSION },
    {
      capabilities,
      instructions: `Caxton multi-agent server. Tools named ${ASK_PREFIX}<agent> ask an agent and return its answer; the others are Caxton's tools. Each agent is also a prompt (its system prompt and parameters) and a resource caxton://agents/<name> (its definition); resources/templates/list names the other resources (conversations, memory entities).`,
    },
  );
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: tools.list(caller) }));
  server.setRequestHandler(CallToolRequestSchema, (req, extra) => {
    // A client's W3C trace context in the request's `_meta` (as Caxton's own MCP client sends it).
    const tp = (req.params._meta as { traceparent?: unknown } | undefined)?.traceparent;
    const token = req.params._meta?.progressToken;
    let step = 0;
    // Progress goes on the request's own stream (an SSE response over HTTP), so it works stateless too.
    const send = (p: Progress) =>
      void extra
        .sendNotification({ method: 'notifications/progress', params: { ...p, progressToken: token! } })
        .catch(() => {});
    const progress: McpProgress | undefined =
      token === undefined ? undefined : { step: (message) => send({ progress: ++step, message }), forward: send };
    return tools.call(req.params.name, req.params.arguments ?? {}, {
      signal: extra.signal,
      client: server.getClientVersion()?.name,
      traceparent: typeof tp === 'string' && TRACEPARENT.test(tp) ? tp : undefined,
      caller,
      ...(progress && { progress }),
    });
  });
  server.setRequestHandler(ListPromptsRequestSchema, (req) => prompts.list(caller, req.params?.cursor));
  server.setRequestHandler(GetPromptRequestSchema, async (req, extra) => {
    const { name } = req.params;
    const owner = prompts.offers(name, caller) ? undefined : gateway.promptOwner(name, caller);
    if (!owner) return prompts.get(name, req.params.arguments ?? {}, caller);
    return scrubSecretsIn(await owner.request(`prompt "${name}"`, (c, o) => c.getPrompt(req.params, o), extra.signal));
  });
  // The SDK refuses a completion handler without the capability: only when a gateway server completes.
  if (capabilities.completions)
    server.setRequestHandler(CompleteRequestSchema, async (req, extra) => {
      const owner = gateway.completionOwner(req.params.ref, caller);
      if (!owner) return { completion: { values: [], hasMore: false } };
      return scrubSecretsIn(
        await owner.request('completion/complete', (c, o) => c.complete(req.params, o), extra.signal),
      );
    });
  server.setRequestHandler(ListResourcesRequestSchema, (req) => resources.list(caller, req.params?.cursor));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
    resourceTemplates: resources.templates(caller),
  }));
  server.setRequestHandler(ReadResourceRequestSchema, (req, extra) =>
    resources.read(req.params.uri, caller, extra.signal),
  );
  return server;
}
