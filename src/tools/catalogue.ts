/**
 * Every tool source of a server in one catalogue: WebAssembly and JavaScript tool
 * servers (ToolServerManager), mounted MCP servers (their tools are host tools `NAME.tool`), the
 * built-in tools (`calculator`, `current_time`, `llm.chat`: the executor's own registry) and the
 * other host tools (`send_message`, the memory tools). REST (`/api/v1/tools`), the CLI and
 * `caxton status` read it, so what an agent can call and what an operator can see are the same.
 *
 * Single-name tools are addressed as a pseudo-server: `builtin/calculator` for the built-in tools
 * and `host/send_message` for the other host tools (both groups accept either tool kind, so a
 * client need not know which registry holds a name). A real tool server or MCP server of the
 * same name takes precedence over these groups.
 *
 * MCP servers are seen through a structural interface (McpSource) because src/mcp imports
 * src/tools, never the other way round.
 */
import { createHash, randomUUID } from 'node:crypto';
import { SpanStatusCode, type Tracer } from '@opentelemetry/api';
import { endWithError, startSpan } from '../observability/trace-context.js';
import { CaxtonError } from '../shared/errors.js';
import { closest } from '../shared/suggest.js';
import { auditServerOf, BUILTIN_GROUP, HOST_GROUP } from '../audit/index.js';
import type { ToolRegistry } from './tool-registry.js';
import { resultOutcome, type Tool, type ToolResult } from './types.js';
// Types only: src/tools/index.ts exports this file, and the executor and the isolation workers
// import that entry point without needing the WebAssembly machinery loaded.
import type { ToolAuditRecord, ToolAuditSink } from '../audit/index.js';
import type {
  ToolCallOptions,
  ToolCallResult,
  ToolServerManager,
  ToolServerSummary,
  ToolServerView,
} from './servers/manager.js';

/** Who a direct call is recorded as in the audit log: the same as ToolServerManager's API_CALLER. */
const API_CALLER = 'api';

/** As wasm/audit.ts digestArgs: SHA-256 (hex) of the arguments' UTF-8 JSON. */
const digestArgs = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

export type ToolSourceKind = 'wasm' | 'javascript' | 'mcp' | 'builtin' | 'host';
export const TOOL_SOURCE_KINDS: readonly ToolSourceKind[] = ['wasm', 'javascript', 'mcp', 'builtin', 'host'];

/** The pseudo-server names of the single-name tools. */
export { BUILTIN_GROUP, HOST_GROUP };

/** Which path a tool call came through: the `via` label of caxton_tool_calls_total. */
export type ToolCallVia = 'agent' | 'rest' | 'mcp';

/** What the catalogue needs of a mounted MCP server's status (McpServerStatus satisfies it). */
export interface McpSourceStatus {
  name: string;
  transport: string;
  target: string;
  state: string;
  tool_names: string[];
  last_error: string | null;
  last_error_at: string | null;
  connected_at: string | null;
  attempts: number;
  next_retry_at: string | null;
  reconnects: number;
  server_info: { name: string; version: string } | null;
  conflicts: string[];
}

export interface McpSource {
  statuses(): McpSourceStatus[];
  status(name: string): McpSourceStatus | undefined;
}

/** Records one tool call in the metrics (Metrics.tool satisfies it). */
export interface ToolCallMetrics {
  tool(tool: string, status: string, seconds: number, via: ToolCallVia): void;
}

/** One source as GET /api/v1/tools lists it: the tool server summary, with its kind. */
export interface ToolSourceSummary extends Omit<ToolServerSummary, 'kind' | 'origin' | 'state'> {
  kind: ToolSourceKind;
  /** builtin / api: tool server packages; config: `[mcp_servers.NAME]`; host: the server itself. */
  origin: 'builtin' | 'api' | 'config' | 'host';
  /** Tool servers: loaded | failed; MCP servers: connecting | ready | failed | reconnecting | needs_authorization | disabled | closed; groups: loaded. */
  state: string;
  /** MCP servers only: connection state, last error and reconnects. */
  mcp?: McpSourceStatus;
}

export type ToolSourceView = Omit<ToolServerView, 'kind' | 'origin' | 'state'> & ToolSourceSummary;

/**
 * An audit sink that also hands a watched call's record to the caller that made it (the outcome
 * and duration of an MCP call made through the API are only known to the MCP connection).
 */
export class AuditWatch implements ToolAuditSink {
  readonly #inner: ToolAuditSink | undefined;
  readonly #watch = new Map<string, ToolAuditRecord | undefined>();

  constructor(inner?: ToolAuditSink) {
    this.#inner = inner;
  }

  record(r: ToolAuditRecord): void {
    if (r.execution_id !== undefined && this.#watch.has(r.execution_id)) this.#watch.set(r.execution_id, r);
    this.#inner?.record(r);
  }

  watch(executionId: string): void {
    this.#watch.set(executionId, undefined);
  }

  /** The record of a watched call (if written) and stops watching it. */
  take(executionId: string): ToolAuditRecord | undefined {
    const r = this.#watch.get(executionId);
    this.#watch.delete(executionId);
    return r;
  }
}

/**
 * A named group of the host's own tools (`workspace`, `web`, `todo`): the host tools named
 * `NAME.tool`, listed as one source of kind "host". Their tools audit themselves.
 */
export interface HostToolGroup {
  name: string;
  description: string;
}

export interface ToolCatalogueOptions {
  servers: ToolServerManager;
  /** Groups of the host's own tools listed as sources of their own (not under `host`). */
  groups?: readonly HostToolGroup[];
  /** The executor's built-in tools (`executor.deps.tools`). */
  builtin: ToolRegistry;
  /** The host tools (`executor.hostTools`): tool servers', MCP servers' and the host's own. */
  host: ToolRegistry;
  mcp?: McpSource;
  /** Where built-in and host tool calls are audited; pass the same AuditWatch the MCP client audits into. */
  audit?: AuditWatch;
  metrics?: ToolCallMetrics;
  /** Records a `tool.call` span per direct call, as an agent's calls get one. */
  tracer?: Tracer;
}

/** Longest a direct call of a built-in, host or MCP tool may take unless the caller says otherwise. */
const DEFAULT_CALL_TIMEOUT_MS = 60_000;

const enc = new TextEncoder();

export class ToolCatalogue {
  readonly #o: ToolCatalogueOptions;

  constructor(opts: ToolCatalogueOptions) {
    this.#o = opts;
  }

  /** Host tools that belong to no tool server and no MCP server: the host's own (send_message, memory). */
  #hostOwn(): Tool[] {
    const owned = new Set<string>();
    for (const s of this.#o.servers.list()) for (const t of s.tools) owned.add(t);
    for (const s of this.#o.mcp?.statuses() ?? []) for (const t of s.tool_names) owned.add(t);
    return this.#o.host.list().filter((t) => !owned.has(t.name) && this.#groupOf(t.name) === undefined);
  }

  #groupOf(tool: string): HostToolGroup | undefined {
    return this.#o.groups?.find((g) => tool.startsWith(`${g.name}.`));
  }

  #toolGroup(g: HostToolGroup): ToolSourceSummary | undefined {
    const tools = this.#o.host.list().filter((t) => t.name.startsWith(`${g.name}.`));
    if (tools.length === 0) return undefined;
    return {
      name: g.name,
      kind: 'host',
      version: null,
      description: g.description,
      origin: 'host',
      state: 'loaded',
      error: null,
      tools: tools.map((t) => t.name),
      deployed_at: null,
    };
  }

  #group(kind: 'builtin' | 'host'): ToolSourceSummary | undefined {
    const tools = kind === 'builtin' ? this.#o.builtin.list() : this.#hostOwn();
    if (tools.length === 0) return undefined;
    return {
      name: kind === 'builtin' ? BUILTIN_GROUP : HOST_GROUP,
      kind,
      version: null,
      description:
        kind === 'builtin'
          ? 'Built-in tools of the server (calculator, current_time, llm.chat)'
          : 'Host tools of the server (send_message, the memory tools)',
      origin: kind === 'builtin' ? 'builtin' : 'host',
      state: 'loaded',
      error: null,
      tools: tools.map((t) => t.name),
      deployed_at: null,
    };
  }

  #mcpSummary(s: McpSourceStatus): ToolSourceSummary {
    return {
      name: s.name,
      kind: 'mcp',
      version: s.server_info?.version ?? null,
      description: `MCP server (${s.transport}: ${s.target})`,
      origin: 'config',
      state: s.state,
      error: s.last_error,
      tools: [...s.tool_names],
      deployed_at: null,
      mcp: s,
    };
  }

  /** Every source: tool servers, MCP servers, then the built-in and host groups. */
  list(): ToolSourceSummary[] {
    const out: ToolSourceSummary[] = [...this.#o.servers.list()];
    const names = new Set(out.map((s) => s.name));
    for (const s of this.#o.mcp?.statuses() ?? []) if (!names.has(s.name)) out.push(this.#mcpSummary(s));
    for (const kind of ['builtin', 'host'] as const) {
      const g = this.#group(kind);
      if (g && !out.some((s) => s.name === g.name)) out.push(g);
    }
    for (const group of this.#o.groups ?? []) {
      const g = this.#toolGroup(group);
      if (g && !out.some((s) => s.name === g.name)) out.push(g);
    }
    return out;
  }

  /** Sources per kind (every kind present, zero when none). */
  countByKind(): Record<ToolSourceKind, number> {
    const counts = Object.fromEntries(TOOL_SOURCE_KINDS.map((k) => [k, 0])) as Record<ToolSourceKind, number>;
    for (const s of this.list()) counts[s.kind]++;
    return counts;
  }

  #specs(tools: (Tool | undefined)[]): ToolSourceView['tool_specs'] {
    return tools
      .filter((t): t is Tool => t !== undefined)
      .map((t) => ({
        name: t.name,
        description: t.description,
        input_schema: t.input_schema as Record<string, unknown>,
      }));
  }

  view(name: string): ToolSourceView | undefined {
    const v = this.#o.servers.view(name);
    if (v) return v;
    const none = {
      limits: null,
      permissions: null,
      warnings: [],
      digest: null,
      module_bytes: null,
      stats: null,
      path: null,
    };
    const s = this.#o.mcp?.status(name);
    if (s)
      return { ...this.#mcpSummary(s), ...none, tool_specs: this.#specs(s.tool_names.map((t) => this.#o.host.get(t))) };
    for (const kind of ['builtin', 'host'] as const) {
      const g = this.#group(kind);
      if (g?.name === name)
        return {
          ...g,
          ...none,
          tool_specs: this.#specs(g.tools.map((t) => (kind === 'builtin' ? this.#o.builtin : this.#o.host).get(t))),
        };
    }
    const group = this.#o.groups?.find((g) => g.name === name);
    const g = group && this.#toolGroup(group);
    if (g) return { ...g, ...none, tool_specs: this.#specs(g.tools.map((t) => this.#o.host.get(t))) };
    return undefined;
  }

  #notFound(name: string): CaxtonError {
    const guess = closest(
      name,
      this.list().map((s) => s.name),
    );
    // The message starts "no tool server named": clients may match it.
    return new CaxtonError(
      'tool_not_found',
      `no tool server named "${name}"${guess ? `; did you mean "${guess}"?` : ''} (nor an MCP server or a built-in tool; caxton tool list shows every source)`,
      {
        name,
      },
    );
  }

  /**
   * Calls `tool` of `server` directly (REST, CLI), audited as agent "api" and counted in
   * caxton_tool_calls_total with `via` (default "rest"). Unknown sources and tools: 'tool_not_found'.
   */
  async call(
    server: string,
    tool: string,
    args: Record<string, unknown>,
    opts: ToolCallOptions & { via?: ToolCallVia; traceparent?: string } = {},
  ): Promise<ToolCallResult & { kind: ToolSourceKind }> {
    const tracer = this.#o.tracer;
    if (!tracer) return this.#call(server, tool, args, opts);
    const via = opts.via ?? 'rest';
    const span = startSpan(tracer, `tool.call ${server}.${tool}`, opts.traceparent, () => ({
      'caxton.agent': opts.agent ?? API_CALLER,
      'caxton.tool': `${server}.${tool}`,
      'caxton.tool.via': via,
    }));
    let r: ToolCallResult & { kind: ToolSourceKind };
    try {
      r = await this.#call(server, tool, args, opts);
    } catch (e) {
      endWithError(span, e);
      throw e;
    }
    // The name the call resolved to (`builtin/calculator` is the tool `calculator`).
    if (!span.isRecording()) return r;
    span.setAttributes({ 'caxton.tool': r.tool, 'caxton.tool.kind': r.kind });
    if (r.is_error) span.setStatus({ code: SpanStatusCode.ERROR, message: r.content.slice(0, 200) });
    span.end();
    return r;
  }

  async #call(
    server: string,
    tool: string,
    args: Record<string, unknown>,
    opts: ToolCallOptions & { via?: ToolCallVia },
  ): Promise<ToolCallResult & { kind: ToolSourceKind }> {
    const via = opts.via ?? 'rest';
    const t0 = performance.now();
    const count = (name: string, r: ToolCallResult) =>
      this.#o.metrics?.tool(name, r.is_error ? 'error' : 'ok', (performance.now() - t0) / 1000, via);

    const wasm = this.#o.servers.list().find((s) => s.name === server);
    if (wasm) {
      const r = await this.#o.servers.call(`${server}.${tool}`, args, opts);
      count(r.tool, r);
      return { ...r, kind: wasm.kind };
    }
    const mcp = this.#o.mcp?.status(server);
    if (mcp) {
      const full = `${server}.${tool}`;
      if (!mcp.tool_names.includes(full)) {
        const guess = closest(full, mcp.tool_names);
        const known =
          mcp.tool_names.length > 0
            ? ` (tools: ${mcp.tool_names.join(', ')})`
            : ` (it lists no tools yet; state: ${mcp.state}${mcp.last_error ? `; last error: ${mcp.last_error}` : ''})`;
        throw new CaxtonError(
          'tool_not_found',
          `MCP server "${server}" has no tool "${tool}"${guess ? `; did you mean "${guess}"?` : ''}${known}`,
          { tool: full, tools: mcp.tool_names },
        );
      }
      // The MCP connection writes the audit record itself; watching it gives the outcome.
      const r = await this.#invoke(this.#o.host, full, args, opts, undefined);
      count(full, r);
      return { ...r, kind: 'mcp' };
    }
    // A group of the host's own tools (`workspace/read`): the tools write their audit records themselves.
    const group = this.#o.groups?.find((g) => g.name === server);
    if (group && this.#o.host.get(`${server}.${tool}`)) {
      const full = `${server}.${tool}`;
      const r = await this.#invoke(this.#o.host, full, args, opts, undefined);
      count(full, r);
      return { ...r, kind: 'host' };
    }
    // `builtin/NAME`, `host/NAME`, and dotted single names such as `llm.chat` given as `llm/chat`.
    const groups = server === BUILTIN_GROUP || server === HOST_GROUP;
    const name = groups ? tool : `${server}.${tool}`;
    const inBuiltin = this.#o.builtin.get(name) !== undefined;
    const inHost = !inBuiltin && this.#hostOwn().some((t) => t.name === name);
    if (!inBuiltin && !inHost) {
      if (!groups) throw this.#notFound(server);
      const names = [...this.#o.builtin.list(), ...this.#hostOwn()].map((t) => t.name);
      const guess = closest(tool, names);
      throw new CaxtonError(
        'tool_not_found',
        `no built-in or host tool named "${tool}"${guess ? `; did you mean "${guess}"?` : ''} (tools: ${names.join(', ')})`,
        { tool, tools: names },
      );
    }
    const r = await this.#invoke(
      inBuiltin ? this.#o.builtin : this.#o.host,
      name,
      args,
      opts,
      auditServerOf(name, inBuiltin),
    );
    count(name, r);
    return { ...r, kind: inBuiltin ? 'builtin' : 'host' };
  }

  /**
   * Runs one call through `registry`, as an agent would. `auditAs`: the tool does not audit itself,
   * so the record is written here under this server name (auditServerOf, as for an agent's call).
   */
  async #invoke(
    registry: ToolRegistry,
    name: string,
    args: Record<string, unknown>,
    opts: ToolCallOptions,
    auditAs: string | undefined,
  ): Promise<ToolCallResult> {
    const executionId = `api_${randomUUID()}`;
    const watch = this.#o.audit;
    watch?.watch(executionId);
    const started = Date.now();
    const t0 = performance.now();
    const agent = opts.agent ?? API_CALLER;
    let r: ToolResult;
    try {
      r = await registry.invoke([name], name, args, {
        agent,
        execution_id: executionId,
        ...(opts.conversation_id !== undefined && { conversation_id: opts.conversation_id }),
        ...(opts.principal !== undefined && { principal: opts.principal }),
        deadline: Date.now() + (opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS),
        signal: opts.signal ?? new AbortController().signal,
      });
    } catch (e) {
      watch?.take(executionId);
      throw e;
    }
    const durationUs = Math.round((performance.now() - t0) * 1000);
    if (auditAs !== undefined && watch) {
      const input = enc.encode(JSON.stringify(args));
      watch.record({
        time: started,
        agent,
        execution_id: executionId,
        ...(opts.conversation_id !== undefined && { conversation_id: opts.conversation_id }),
        ...(opts.principal !== undefined && { principal: opts.principal }),
        server: auditAs,
        tool: name,
        args_digest: digestArgs(input),
        outcome: resultOutcome(r),
        ...(r.is_error === true && { error: r.content.slice(0, 1000) }),
        duration_us: durationUs,
        fuel_used: 0,
        memory_bytes: 0,
        input_bytes: input.byteLength,
        output_bytes: enc.encode(r.content).byteLength,
      });
    }
    const rec = watch?.take(executionId);
    return {
      tool: name,
      content: r.content,
      is_error: r.is_error === true,
      outcome: rec?.outcome ?? resultOutcome(r),
      duration_us: rec?.duration_us ?? durationUs,
      fuel_used: 0,
      memory_bytes: 0,
      execution_id: executionId,
    };
  }
}
