/**
 * `caxton mcp`: Caxton as an MCP server over stdio. The command starts the server components in
 * this process (storage, agents, executor, bus, mounted MCP servers: `startServer` with
 * `listen: false`, so no HTTP listener) and speaks MCP on stdin/stdout; logs go to stderr.
 */
import type { Readable, Writable } from 'node:stream';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { McpClientManager } from './client.js';
import { createMcpServer, type McpServeDeps } from './server.js';

export interface McpStdioOptions extends McpServeDeps {
  /** Announces tool list changes when mounted servers change. */
  clients?: McpClientManager;
  stdin?: Readable;
  stdout?: Writable;
}

export interface McpStdioSession {
  /** Settles when the client closes stdin (or `close()` is called). */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

export async function serveMcpStdio(opts: McpStdioOptions): Promise<McpStdioSession> {
  const server = createMcpServer(opts);
  const transport = new StdioServerTransport(opts.stdin, opts.stdout);
  let done!: () => void;
  const closed = new Promise<void>((r) => (done = r));
  // Agents deployed or removed, mounted servers (re)connected: the client should list tools again.
  let connected = false;
  const changed = () => {
    if (connected) void server.sendToolListChanged().catch(() => {});
  };
  opts.agents.on('change', changed);
  opts.clients?.on('change', changed);
  const stdin = opts.stdin ?? process.stdin;
  const onEnd = () => void server.close();
  stdin.once('end', onEnd);
  server.onclose = () => {
    connected = false;
    opts.agents.off('change', changed);
    opts.clients?.off('change', changed);
    stdin.off('end', onEnd);
    done();
  };
  await server.connect(transport);
  connected = true;
  return {
    closed,
    close: async () => {
      await server.close();
      await closed;
    },
  };
}
