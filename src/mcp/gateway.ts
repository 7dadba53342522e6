/**
 * Caxton's /mcp as a gateway to mounted MCP servers marked `[mcp_servers.NAME] gateway = true`
 * (ADR 0035). A client of Caxton sees such a server's tools under their own names, its prompts,
 * resources, templates and completions beside Caxton's, and gets its results as the server gave
 * them (images, audio, embedded resources, structured content) with its progress notifications,
 * behind Caxton's authentication, scopes, limits, audit and secret scrubbing.
 *
 * Caxton's own names come first: a gateway tool or prompt whose name Caxton already offers is
 * hidden (tools/list shows Caxton's), and `caxton://` URIs are Caxton's. Inside Caxton the tools
 * keep their host-tool names `NAME.tool` (what agents, `[mcp] host_tools`, key scopes and the
 * audit name). A server's prompts, resources and completions are offered to callers who may call
 * all its tools: `[mcp] host_tools` and the caller's tool scope cover `NAME.*`.
 */
import { UriTemplate } from '@modelcontextprotocol/sdk/shared/uriTemplate.js';
import type { Prompt, Resource, ResourceTemplate, Tool as McpToolSpec } from '@modelcontextprotocol/sdk/types.js';
import { inScope, type Principal } from '../auth/index.js';
import type { McpClientManager, McpConnection, McpTool } from './mcp-client.js';
import { allowed, matches, type McpCaller } from './offer.js';

export interface GatewayTool {
  conn: McpConnection;
  tool: McpTool;
}

const mayCall = (p: Principal | undefined, name: string) =>
  allowed(p, 'tools:call') && (p === undefined || inScope(p.scope.tools, name));

/** Templates compiled once per template string (the SDK's matcher is bounded against long URIs). */
const compiled = new Map<string, UriTemplate>();
function templateMatches(template: string, uri: string): boolean {
  let t = compiled.get(template);
  if (!t) {
    try {
      t = new UriTemplate(template);
    } catch {
      return false; // a template the server wrote badly matches nothing
    }
    if (compiled.size > 1000) compiled.clear();
    compiled.set(template, t);
  }
  try {
    return t.match(uri) !== null;
  } catch {
    return false;
  }
}

export class McpGateway {
  constructor(
    readonly clients: McpClientManager | undefined,
    readonly hostTools: readonly string[],
  ) {}

  /** The gateway servers, in configuration order. */
  connections(): McpConnection[] {
    return this.clients?.connections().filter((c) => c.gateway) ?? [];
  }

  /** Whether `hostName` (`NAME.tool`) belongs to a gateway server: /mcp offers it under its own name instead. */
  owns(hostName: string): boolean {
    const dot = hostName.indexOf('.');
    return dot > 0 && this.clients?.connection(hostName.slice(0, dot))?.gateway === true;
  }

  /** Whether the caller sees the server's prompts, resources and completions. */
  #serverVisible(conn: McpConnection, caller: McpCaller): boolean {
    const all = `${conn.name}.*`;
    return matches(this.hostTools, all) && mayCall(caller.principal, all);
  }

  /** The gateway tools the caller may call, with the servers' own specs, except names in `taken`. */
  tools(caller: McpCaller, taken: ReadonlySet<string>): McpToolSpec[] {
    const out: McpToolSpec[] = [];
    const seen = new Set(taken);
    for (const conn of this.connections())
      for (const t of conn.mountedTools()) {
        if (seen.has(t.remoteName) || !matches(this.hostTools, t.name) || !mayCall(caller.principal, t.name)) continue;
        seen.add(t.remoteName);
        out.push({ ...t.spec, name: t.remoteName });
      }
    return out;
  }

  /** The gateway tool a client calls by `name` (the first server that has it), if offered. */
  tool(name: string): GatewayTool | undefined {
    for (const conn of this.connections()) {
      const tool = conn.mountedTools().find((t) => t.remoteName === name);
      if (tool && matches(this.hostTools, tool.name)) return { conn, tool };
    }
    return undefined;
  }

  prompts(caller: McpCaller, taken: ReadonlySet<string>): Prompt[] {
    const out: Prompt[] = [];
    const seen = new Set(taken);
    for (const conn of this.connections()) {
      if (!this.#serverVisible(conn, caller)) continue;
      for (const p of conn.catalogue.prompts) {
        if (seen.has(p.name)) continue;
        seen.add(p.name);
        out.push(p);
      }
    }
    return out;
  }

  /** The server whose prompt `name` the caller may get. */
  promptOwner(name: string, caller: McpCaller): McpConnection | undefined {
    return this.connections().find(
      (c) => this.#serverVisible(c, caller) && c.catalogue.prompts.some((p) => p.name === name),
    );
  }

  resources(caller: McpCaller): Resource[] {
    return this.connections()
      .filter((c) => this.#serverVisible(c, caller))
      .flatMap((c) => c.catalogue.resources);
  }

  templates(caller: McpCaller): ResourceTemplate[] {
    return this.connections()
      .filter((c) => this.#serverVisible(c, caller))
      .flatMap((c) => c.catalogue.templates);
  }

  /** The server that lists `uri`, or else whose template matches it. */
  resourceOwner(uri: string, caller: McpCaller): McpConnection | undefined {
    const visible = this.connections().filter((c) => this.#serverVisible(c, caller));
    return (
      visible.find((c) => c.catalogue.resources.some((r) => r.uri === uri)) ??
      visible.find((c) => c.catalogue.templates.some((t) => templateMatches(t.uriTemplate, uri)))
    );
  }

  /** The server that completes arguments of a prompt or template it offers (and declared completions). */
  completionOwner(
    ref: { type: 'ref/prompt'; name: string } | { type: 'ref/resource'; uri: string },
    caller: McpCaller,
  ): McpConnection | undefined {
    return this.connections().find(
      (c) =>
        c.catalogue.completions &&
        this.#serverVisible(c, caller) &&
        (ref.type === 'ref/prompt'
          ? c.catalogue.prompts.some((p) => p.name === ref.name)
          : c.catalogue.templates.some((t) => t.uriTemplate === ref.uri)),
    );
  }

  /** Whether any gateway server the caller sees completes arguments (Caxton declares `completions` then). */
  completes(caller: McpCaller): boolean {
    return this.connections().some((c) => c.catalogue.completions && this.#serverVisible(c, caller));
  }
}
