/**
 * `caxton mcp`: Caxton as an MCP server over stdio. The command starts the server components in
 * this process (storage, agents, executor, bus, mounted MCP servers: `startServer` with
 * `listen: false`, so no HTTP listener) and speaks MCP on stdin/stdout; logs go to stderr.
 */
import type { Readable, Writable } from 'node:stream';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { RegistryEvent } from '../agents/index.js';
import type { McpClientManager, McpServerStatus } from './mcp-client.js';
import { createMcpServer, type McpServeDeps } from './mcp-server.js';

export interface McpStdioOptions extends McpServeDeps {
  /** Announces tool list changes (and logs) when mounted servers change. */
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
  const server = createMcpServer(opts, undefined, { listChanged: true });
  const transport = new StdioServerTransport(opts.stdin, opts.stdout);
  let done!: () => void;
  const closed = new Promise<void>((r) => (done = r));
  // Agents deployed or removed, mounted servers (re)connected: the client should list again, and
  // hears why as a log notification (at or above the level it set with logging/setLevel).
  let connected = false;
  const log = (level: 'info' | 'warning', data: Record<string, unknown>) =>
    void server.sendLoggingMessage({ level, logger: 'caxton', data }).catch(() => {});
  const agentChanged = (e: RegistryEvent) => {
    if (!connected) return;
    void server.sendToolListChanged().catch(() => {});
    void server.sendPromptListChanged().catch(() => {});
    void server.sendResourceListChanged().catch(() => {});
    log('info', { event: `agent ${e.type}`, agent: e.agent.definition.name });
  };
  const serverChanged = (s: McpServerStatus) => {
    if (!connected) return;
    void server.sendToolListChanged().catch(() => {});
    const failing = s.state === 'failed' || s.state === 'reconnecting' || s.state === 'needs_authorization';
    log(failing ? 'warning' : 'info', {
      event: 'mcp server state',
      server: s.name,
      state: s.state,
      ...(failing && s.last_error && { last_error: s.last_error }),
    });
  };
  opts.agents.on('change', agentChanged);
  opts.clients?.on('change', serverChanged);
  const stdin = opts.stdin ?? process.stdin;
  const onEnd = () => void server.close();
  stdin.once('end', onEnd);
  server.onclose = () => {
    connected = false;
    opts.agents.off('change', agentChanged);
    opts.clients?.off('change', serverChanged);
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
