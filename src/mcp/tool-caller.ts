/**
 * The tools of one external MCP server: listed from it and kept registered as `NAME.tool` on the
 * host tool registry (they stay registered while the server is down), and called on it within the
 * caller's deadline and cancellation, each call audited (tool audit) and its text scrubbed of the
 * configured secrets. The connection itself is the supervisor's (supervisor.ts).
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  ErrorCode,
  McpError,
  type CallToolResult,
  type Progress,
  type Tool as McpToolSpec,
} from '@modelcontextprotocol/sdk/types.js';
import type { JsonSchema } from '../llm/types.js';
import { scrubSecrets, scrubSecretsIn } from '../shared/secrets.js';
import { refusalOf, type PermissionSet } from '../tools/permissions/index.js';
import type { ToolRegistry } from '../tools/tool-registry.js';
import type { Tool, ToolContext, ToolResult } from '../tools/types.js';
import { digestArgs, type ToolAuditSink } from '../audit/index.js';
import type { CallOutcome } from '../audit/index.js';
import { errorText, type McpSupervisor } from './supervisor.js';

const DEADLINE_MARGIN_MS = 25;

/** The text the model sees for an MCP tool result. */
export function resultText(r: CallToolResult): string {
  const parts: string[] = [];
  for (const c of r.content ?? []) {
    switch (c.type) {
      case 'text':
        parts.push(c.text);
        break;
      case 'image':
      case 'audio':
        parts.push(`[${c.type} ${c.mimeType}, ${Math.floor((c.data.length * 3) / 4)} bytes]`);
        break;
      case 'resource':
        parts.push(
          'text' in c.resource && typeof c.resource.text === 'string'
            ? c.resource.text
            : `[resource ${c.resource.uri}${c.resource.mimeType ? ` (${c.resource.mimeType})` : ''}]`,
        );
        break;
      case 'resource_link':
        parts.push(`[resource link ${c.uri}${c.name ? ` (${c.name})` : ''}]`);
        break;
    }
  }
  if (parts.length === 0 && r.structuredContent !== undefined) parts.push(JSON.stringify(r.structuredContent));
  return parts.join('\n');
}

/** A tool result with the configured secrets scrubbed from every text it carries (binary data is left as it is). */
export function scrubResult(r: CallToolResult): CallToolResult {
  const content = (r.content ?? []).map((c) => {
    if (c.type === 'text') return { ...c, text: scrubSecrets(c.text) };
    if (c.type === 'resource' && 'text' in c.resource && typeof c.resource.text === 'string')
      return { ...c, resource: { ...c.resource, text: scrubSecrets(c.resource.text) } };
    return c;
  });
  return {
    ...r,
    content,
    ...(r.structuredContent !== undefined && { structuredContent: scrubSecretsIn(r.structuredContent) }),
  };
}

/** One mounted tool: `server.tool` in Caxton, `tool` on the MCP server. */
export class McpTool implements Tool {
  readonly name: string;
  readonly audits = true;
  description: string;
  input_schema: JsonSchema;
  /** The server's own description of the tool, as listed (a gateway offers it unchanged). */
  spec: McpToolSpec;
  constructor(
    readonly caller: McpToolCaller,
    readonly remoteName: string,
    spec: McpToolSpec,
  ) {
    this.name = `${caller.server}.${remoteName}`;
    this.description = '';
    this.input_schema = {};
    this.spec = spec;
    this.update(spec);
  }

  update(spec: McpToolSpec): void {
    this.spec = spec;
    this.description = spec.description ?? spec.title ?? `tool "${spec.name}" of MCP server "${this.caller.server}"`;
    this.input_schema = spec.inputSchema as JsonSchema;
  }

  /** `[mcp_servers.NAME] idempotent` names it (or "*"). */
  get idempotent(): boolean {
    const listed = this.caller.idempotent;
    return listed.includes('*') || listed.includes(this.remoteName);
  }

  invoke(args: Record<string, unknown>, ctx: ToolContext): Promise<ToolResult> {
    return this.caller.call(this, args, ctx);
  }
}

export class McpToolCaller {
  readonly #sup: McpSupervisor;
  readonly #registry: ToolRegistry;
  readonly #audit: ToolAuditSink | undefined;
  readonly #tools = new Map<string, McpTool>();
  #conflicts: string[] = [];

  /** The workspace's deny rules (`mcp__server__tool`), held on every call whoever makes it. */
  readonly #permissions: PermissionSet | undefined;

  constructor(
    sup: McpSupervisor,
    registry: ToolRegistry,
    audit: ToolAuditSink | undefined,
    permissions?: PermissionSet,
  ) {
    this.#sup = sup;
    this.#registry = registry;
    this.#audit = audit;
    this.#permissions = permissions;
  }

  get server(): string {
    return this.#sup.name;
  }

  /** The tools the operator declared idempotent (`[mcp_servers.NAME] idempotent`). */
  get idempotent(): readonly string[] {
    return this.#sup.cfg.idempotent ?? [];
  }

  /** The tools registered for this server. */
  tools(): McpTool[] {
    return [...this.#tools.values()];
  }

  /** Registered tool names, sorted. */
  names(): string[] {
    return [...this.#tools.keys()].sort();
  }

  /** Tool names that could not be registered because another tool holds them. */
  get conflicts(): string[] {
    return [...this.#conflicts];
  }

  async list(client: Client): Promise<McpToolSpec[]> {
    const all: McpToolSpec[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor !== undefined ? { cursor } : undefined, {
        timeout: this.#sup.connectTimeout,
      });
      all.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor !== undefined && all.length < 10_000);
    return all;
  }

  /** The server announced new tools: listed again, registered if `current()` still holds. */
  async refresh(client: Client, current: () => boolean): Promise<boolean> {
    const list = await this.list(client);
    if (!current()) return false;
    this.sync(list);
    return true;
  }

  /** Registers new tools, updates changed ones, unregisters those the server no longer has. */
  sync(list: McpToolSpec[]): void {
    const registry = this.#registry;
    const name = this.#sup.name;
    const wanted = new Map(list.map((t) => [`${name}.${t.name}`, t]));
    for (const [full, tool] of this.#tools) {
      if (!wanted.has(full)) {
        if (registry.get(full) === tool) registry.unregister(full);
        this.#tools.delete(full);
      }
    }
    const conflicts: string[] = [];
    for (const [full, spec] of wanted) {
      const have = this.#tools.get(full);
      if (have) {
        have.update(spec);
        continue;
      }
      const tool = new McpTool(this, spec.name, spec);
      try {
        registry.register(tool);
        this.#tools.set(full, tool);
      } catch (e) {
        conflicts.push(full);
        this.#sup.log?.warn({ tool: full, err: errorText(e) }, 'MCP tool not registered: the name is taken');
      }
    }
    this.#conflicts = conflicts;
  }

  /** Unregisters every tool (the server is shutting down). */
  unregisterAll(): void {
    for (const [full, tool] of this.#tools) if (this.#registry.get(full) === tool) this.#registry.unregister(full);
    this.#tools.clear();
  }

  #unavailable(tool: McpTool): string {
    const s = this.#sup;
    const next = s.nextRetryAt;
    const retry = next !== null ? `; next attempt in ${Math.max(0, Math.round((next - Date.now()) / 1000))} s` : '';
    return `MCP server "${s.name}" is unavailable (state: ${s.state}${s.lastError ? `; last error: ${s.lastError}` : ''}${retry}); tool "${tool.name}" cannot be called now`;
  }

  /** Runs one tool call on the server, within the call's deadline and cancellation; the model sees its text. */
  async call(tool: McpTool, args: Record<string, unknown>, ctx: ToolContext): Promise<ToolResult> {
    const r = await this.#invoke(tool, args, ctx);
    if ('failed' in r) return r.failed;
    return r.isError ? { content: r.text, is_error: true } : { content: r.text };
  }

  /**
   * The same call for a gateway (gateway.ts): the server's result as it is (images, audio,
   * embedded resources, structured content), text scrubbed of the configured secrets, and the
   * server's progress notifications handed to `onprogress`.
   */
  async callThrough(
    tool: McpTool,
    args: Record<string, unknown>,
    ctx: ToolContext,
    onprogress?: (p: Progress) => void,
  ): Promise<CallToolResult> {
    const r = await this.#invoke(tool, args, ctx, onprogress);
    if ('failed' in r) return { content: [{ type: 'text', text: r.failed.content }], isError: true };
    return r.result;
  }

  /**
   * Another request to a gateway server (prompts/get, resources/read, completion/complete), within
   * the call timeout. The server's JSON-RPC errors reach the caller as they are; an unavailable
   * server is an internal error that names it and its state.
   */
  async request<T>(
    what: string,
    fn: (client: Client, opts: { signal?: AbortSignal; timeout: number }) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    const s = this.#sup;
    const client = s.client;
    if (s.state !== 'ready' || !client)
      throw new McpError(
        ErrorCode.InternalError,
        `MCP server "${s.name}" is unavailable (state: ${s.state}${s.lastError ? `; last error: ${scrubSecrets(s.lastError)}` : ''}); ${what} cannot be served now`,
      );
    try {
      return await fn(client, { ...(signal && { signal }), timeout: s.cfg.timeout });
    } catch (e) {
      // The server's own JSON-RPC error, passed on with its code; its text may quote a secret.
      if (e instanceof McpError) {
        const passed = new McpError(e.code, '', scrubSecretsIn(e.data));
        passed.message = scrubSecrets(e.message);
        throw passed;
      }
      if (s.client === client) s.lost(errorText(e));
      throw new McpError(
        ErrorCode.InternalError,
        `MCP server "${s.name}" could not be reached for ${what}: ${scrubSecrets(errorText(e))}`,
      );
    }
  }

  async #invoke(
    tool: McpTool,
    args: Record<string, unknown>,
    ctx: ToolContext,
    onprogress?: (p: Progress) => void,
  ): Promise<{ failed: ToolResult } | { result: CallToolResult; text: string; isError: boolean }> {
    const s = this.#sup;
    const name = s.name;
    const started = Date.now();
    const t0 = performance.now();
    const input = Buffer.from(JSON.stringify(args));
    const audit = (outcome: CallOutcome, output: string, error?: string) => {
      this.#audit?.record({
        time: started,
        agent: ctx.agent,
        execution_id: ctx.execution_id,
        ...(ctx.conversation_id !== undefined && { conversation_id: ctx.conversation_id }),
        ...(ctx.principal !== undefined && { principal: ctx.principal }),
        server: name,
        tool: tool.name,
        args_digest: digestArgs(input),
        outcome,
        ...(error !== undefined && { error }),
        duration_us: Math.round((performance.now() - t0) * 1000),
        fuel_used: 0,
        memory_bytes: 0,
        input_bytes: input.length,
        output_bytes: Buffer.byteLength(output),
      });
    };
    const fail = (outcome: CallOutcome, message: string) => {
      const content = scrubSecrets(message); // it may quote the server's error
      audit(outcome, '', content);
      return { failed: { content, is_error: true } };
    };

    // A deny rule refuses the call here, below every surface: an agent's run in any isolation, the
    // API, and Caxton's MCP endpoint (a host tool or a gateway's), each refusal audited as denied.
    const refusal = this.#permissions && (await refusalOf(this.#permissions, tool.name, args));
    if (refusal) {
      audit('denied', '', refusal);
      return { failed: { content: refusal, is_error: true, refused: true } };
    }
    const client = s.client;
    if (s.state !== 'ready' || !client) return fail('io_error', this.#unavailable(tool));
    // Just inside the caller's deadline, so that this call (not the registry's backstop) times out,
    // tells the server to cancel, and says which server did not answer.
    const timeout = Math.max(1, Math.min(s.cfg.timeout, ctx.deadline - Date.now() - DEADLINE_MARGIN_MS));
    try {
      // The calling execution's trace context travels in `_meta` (MCP has no header for it over stdio).
      const params = {
        name: tool.remoteName,
        arguments: args,
        ...(ctx.traceparent !== undefined && { _meta: { traceparent: ctx.traceparent } }),
      };
      // With onprogress the SDK sends a progress token of its own and hands each notification on.
      const r = (await client.callTool(params, undefined, {
        signal: ctx.signal,
        timeout,
        ...(onprogress && { onprogress, resetTimeoutOnProgress: false }),
      })) as CallToolResult | { toolResult: unknown };
      // The server's output is outside text: scrubbed of the configured secrets (ADR 0017).
      const result: CallToolResult =
        'toolResult' in r ? { content: [{ type: 'text', text: JSON.stringify(r.toolResult) }] } : r;
      const text = scrubSecrets(resultText(result));
      const isError = result.isError === true;
      audit(isError ? 'error' : 'ok', text, isError ? text.slice(0, 1000) : undefined);
      return { result: scrubResult(result), text, isError };
    } catch (e) {
      if (ctx.signal.aborted) {
        audit('error', '', 'cancelled: the execution was cancelled or timed out');
        throw e;
      }
      if (e instanceof McpError && e.code === (ErrorCode.RequestTimeout as number)) {
        return fail(
          'timeout',
          `MCP server "${name}" did not answer tool "${tool.name}" within ${timeout} ms; the call was cancelled`,
        );
      }
      if (e instanceof McpError && e.code === (ErrorCode.ConnectionClosed as number)) {
        return fail(
          'io_error',
          `MCP server "${name}" closed the connection during the call to "${tool.name}": ${s.lastError ?? 'connection closed'} (state: ${s.state}; reconnecting with backoff)`,
        );
      }
      if (e instanceof McpError) {
        return fail(
          e.code === (ErrorCode.InvalidParams as number) ? 'invalid_input' : 'error',
          `MCP server "${name}" refused tool "${tool.name}": ${e.message}`,
        );
      }
      const auth = s.authNeeded(e);
      if (auth) {
        s.unauthorized(client, auth);
        return fail('io_error', `MCP server "${name}" could not be called for tool "${tool.name}": ${auth.message}`);
      }
      // Not an MCP error: the transport broke (HTTP unreachable, child pipe gone).
      if (s.client === client) s.lost(errorText(e));
      return fail(
        'io_error',
        `MCP server "${name}" could not be reached for tool "${tool.name}": ${errorText(e)} (state: ${s.state}; reconnecting with backoff)`,
      );
    }
  }
}
