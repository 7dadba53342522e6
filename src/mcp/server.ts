/**
 * MCP server side: Caxton's tools, agents and their definitions offered to MCP clients. The same
 * `Server` factory backs both transports: Streamable HTTP at POST /mcp (http.ts, stateless: a
 * fresh server per request) and stdio (`caxton mcp`, stdio.ts).
 *
 * Offered (caxton.toml `[mcp]`): the built-ins named in `builtin_tools`, the host tools matching
 * `host_tools` (send_message, WASM tool servers, mounted MCP servers...), and every agent matching
 * `agents` as a tool `ask_<agent>` whose answer is the agent's reply (Executor.invoke), as a
 * prompt (prompts.ts) and as a resource `caxton://agents/{name}` (resources.ts).
 */
import { randomUUID } from 'node:crypto';
import { inScope, type Principal } from '../auth/index.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  type CallToolResult,
  type ServerCapabilities,
  type Tool as McpToolSpec,
} from '@modelcontextprotocol/sdk/types.js';
import type { AgentRegistry } from '../agents/index.js';
import type { ServerConfig } from '../config/index.js';
import type { ExecutionEvent, Executor } from '../execution/index.js';
import type { Logger } from '../observability/index.js';
import { CaxtonError } from '../shared/errors.js';
import { scrubSecrets } from '../shared/secrets.js';
import { VERSION } from '../shared/version.js';
import type { ToolRegistry } from '../tools/registry.js';
import type { ToolCallMetrics } from '../tools/catalogue.js';
import { allowed, matches, rpcError, type McpCaller } from './offer.js';
import { CaxtonMcpPrompts } from './prompts.js';
import { CaxtonMcpResources, type ConversationReader } from './resources.js';
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
}

/** Agents are offered as `ask_<agent>`. */
export const ASK_PREFIX = 'ask_';

const ASK_SCHEMA = {
  type: 'object',
  properties: {
    request: { type: 'string', description: 'What to ask the agent' },
    context: { type: 'string', description: 'Optional extra context for the agent' },
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

type Resolved = { kind: 'builtin' | 'host'; registry: ToolRegistry } | { kind: 'agent'; agent: string };

/** What Caxton offers over MCP, computed on every list/call (agents and host tools come and go). */
export class CaxtonMcpTools {
  readonly #deps: McpServeDeps;

  constructor(deps: McpServeDeps) {
    this.#deps = deps;
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
    for (const t of executor.deps.tools.list())
      if (tools && config.builtin_tools.includes(t.name) && toolInScope(p, t.name)) add({ name: t.name, description: t.description, inputSchema: t.input_schema as McpToolSpec['inputSchema'] });
    for (const t of executor.hostTools.list())
      if (tools && matches(config.host_tools, t.name) && toolInScope(p, t.name)) add({ name: t.name, description: t.description, inputSchema: t.input_schema as McpToolSpec['inputSchema'] });
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
    return out;
  }

  #resolve(name: string): Resolved | undefined {
    const { executor, agents, config } = this.#deps;
    if (config.builtin_tools.includes(name) && executor.deps.tools.get(name)) return { kind: 'builtin', registry: executor.deps.tools };
    if (matches(config.host_tools, name) && executor.hostTools.get(name)) return { kind: 'host', registry: executor.hostTools };
    if (name.startsWith(ASK_PREFIX)) {
      const agent = agents.get(name.slice(ASK_PREFIX.length));
      if (agent && matches(config.agents, agent.definition.name as string)) return { kind: 'agent', agent: agent.definition.name as string };
    }
    return undefined;
  }

  /**
   * Runs one call for an MCP client. A tool that is not offered is the caller's mistake and a
   * JSON-RPC error (-32602, thrown as an McpError: the specification's listing); everything that goes
   * wrong once a tool is found (refusals, bad arguments, failures) is an `isError` result the model can read.
   */
  async call(name: string, args: Record<string, unknown>, opts: McpCallOptions): Promise<CallToolResult> {
    const { signal, client, traceparent, caller = {}, progress } = opts;
    const target = this.#resolve(name);
    if (!target) throw rpcError(ErrorCode.InvalidParams, `Unknown tool: "${name}" is not offered by this Caxton server (tools/list names the ones that are)`);
    // The HTTP route let the caller in with agents:invoke; tools need tools:call and the caller's scopes.
    const p = caller.principal;
    if (p && target.kind === 'agent' && !inScope(p.scope.agents, target.agent)) return text(`${p.id} may not use the agent "${target.agent}"`, true);
    if (p && target.kind !== 'agent' && (!mayCallTools(p) || !toolInScope(p, name)))
      return text(`${p.id} (role ${p.role}) may not call the tool "${name}": it needs the tools:call permission${p.scope.tools ? ' and the tool in its scope' : ''}`, true);
    const who = p ? { principal: p.id } : {};
    const caller_ = `mcp${client ? `:${client}` : ''}`;
    if (target.kind === 'agent') {
      const request = args.request;
      if (typeof request !== 'string' || request === '') return text(`"request" must be a non-empty string`, true);
      const context = args.context;
      try {
        const res = await this.#deps.executor.invoke(
          target.agent,
          { request, ...(typeof context === 'string' && context !== '' && { context }), ...(traceparent !== undefined && { traceparent }), ...who },
          { signal, ...(p && { limit: { principalId: p.id, limits: caller.limits } }), ...(progress && { onEvent: progressOf(progress) }) },
        );
        return {
          content: [{ type: 'text', text: res.content }],
          structuredContent: { agent: res.agent, execution_id: res.execution_id, finish_reason: res.finish_reason, turns: res.turns, usage: res.usage },
        };
      } catch (e) {
        if (e instanceof CaxtonError) return text(`agent "${target.agent}" failed (${e.code}): ${e.message}`, true);
        this.#deps.logger?.error({ err: e, tool: name }, 'MCP ask failed');
        return text(`agent "${target.agent}" failed: ${e instanceof Error ? e.message : String(e)}`, true);
      }
    }
    const ctx = { agent: caller_, execution_id: `mcp_${randomUUID()}`, deadline: Date.now() + this.#deps.config.timeout, signal, ...(traceparent !== undefined && { traceparent }), ...who };
    const t0 = performance.now();
    try {
      const r = await target.registry.invoke([name], name, args, ctx);
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
  /** Called as an `ask_<agent>` execution moves on (tool calls and their results); absent: nobody listens. */
  progress?: (message: string) => void;
}

/** The execution's tool calls and results as progress lines (tokens are not: one notification per token would flood the client). */
function progressOf(progress: (message: string) => void): (e: ExecutionEvent) => void {
  return (e) => {
    if (e.type === 'tool_call') progress(`turn ${e.turn}: calling ${e.call.name}`);
    else if (e.type === 'tool_result') progress(`${e.name} ${e.is_error ? 'failed' : 'answered'} (${Math.round(e.duration_ms)} ms)`);
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
export function createMcpServer(deps: McpServeDeps, tools = new CaxtonMcpTools(deps), opts: McpServerOptions = {}): Server {
  const caller = opts.caller ?? {};
  const listChanged = opts.listChanged === true;
  const prompts = new CaxtonMcpPrompts(deps.agents, deps.config.agents);
  const resources = new CaxtonMcpResources(deps.agents, deps.config.agents, { memory: deps.memory, conversations: deps.conversations });
  const capabilities: ServerCapabilities = {
    tools: listChanged ? { listChanged: true } : {},
    prompts: listChanged ? { listChanged: true } : {},
    resources: listChanged ? { listChanged: true } : {},
    logging: {},
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
    const progress =
      token === undefined
        ? undefined
        : (message: string) => void extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: ++step, message } }).catch(() => {});
    return tools.call(req.params.name, req.params.arguments ?? {}, {
      signal: extra.signal,
      client: server.getClientVersion()?.name,
      traceparent: typeof tp === 'string' && TRACEPARENT.test(tp) ? tp : undefined,
      caller,
      ...(progress && { progress }),
    });
  });
  server.setRequestHandler(ListPromptsRequestSchema, (req) => prompts.list(caller, req.params?.cursor));
  server.setRequestHandler(GetPromptRequestSchema, (req) => prompts.get(req.params.name, req.params.arguments ?? {}, caller));
  server.setRequestHandler(ListResourcesRequestSchema, (req) => resources.list(caller, req.params?.cursor));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({ resourceTemplates: resources.templates(caller) }));
  server.setRequestHandler(ReadResourceRequestSchema, (req) => resources.read(req.params.uri, caller));
  return server;
}
