import type { Command } from 'commander';
import { loadServerConfig, secretValues } from '../../config/index.js';
import { addServerConfigOptions, serverLoadOptions } from './serve.js';

/**
 * `caxton mcp`: Caxton as an MCP server on stdin/stdout, for MCP clients that start their servers
 * as child processes (Claude Desktop, IDEs, the MCP Inspector). It starts the server components in
 * this process (agents, executor, bus, mounted MCP servers, on the configured data_dir) without
 * the HTTP listener or metrics; logs go to stderr. Do not point it at the data_dir of a running
 * `caxton serve`: to reach a running server, use its Streamable HTTP endpoint (POST /mcp) instead.
 */
export function registerMcpCommand(program: Command): void {
  addServerConfigOptions(
    program
      .command('mcp')
      .description("serve Caxton's tools and agents (as ask_<agent>) over MCP on stdio; the HTTP endpoint of `caxton serve` is POST /mcp")
      .addHelpText('after', '\nExample (an MCP client config):\n  { "command": "caxton", "args": ["mcp", "--config", "/path/to/caxton.toml"] }'),
  ).action(async (opts: Record<string, unknown>) => {
    const config = loadServerConfig(serverLoadOptions(opts));
    // Loaded on demand, as in `serve`. stdout carries the protocol: the log goes to stderr.
    const [{ pino }, { createLogger }, { startServer }, { serveMcpStdio }] = await Promise.all([
      import('pino'),
      import('../../observability/index.js'),
      import('../../server/index.js'),
      import('../../mcp/index.js'),
    ]);
    // The configured secrets are scrubbed from every log line (and, through startServer, from outside text).
    const logger = createLogger(config.logging.level, pino.destination({ dest: 2, sync: false }), { secrets: secretValues(config) });
    const server = await startServer({ config, logger, listen: false });
    const session = await serveMcpStdio({
      executor: server.executor,
      agents: server.registry,
      config: config.mcp,
      logger,
      clients: server.mcp,
      conversations: server.bus,
      ...(server.memory && { memory: server.memory.store }),
    });
    logger.info({ agents: server.registry.size, mounted: server.mcp.size }, 'caxton MCP server on stdio');
    let stopping: Promise<void> | undefined;
    const stop = (code: number) =>
      (stopping ??= (async () => {
        const force = setTimeout(() => process.exit(1), config.server.shutdown_timeout);
        force.unref();
        await session.close().catch(() => {});
        await server.close().catch((e: unknown) => logger.error({ err: e }, 'error during shutdown'));
        setTimeout(() => process.exit(code), 1000).unref();
        logger.flush(() => process.exit(code));
      })());
    process.on('SIGINT', () => void stop(0));
    process.on('SIGTERM', () => void stop(0));
    await session.closed; // the client closed stdin
    await stop(0);
  });
}
