import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { loadServerConfig, secretValues } from '../../config/index.js';
import type { McpServerStatus } from '../../mcp/mcp-client.js';
import type { CliContext } from '../context.js';
import { CliError, usageError } from '../errors.js';
import { table, truncate } from '../output.js';
import { addServerConfigOptions, serverLoadOptions } from './serve-command.js';

/**
 * `caxton mcp`: Caxton as an MCP server on stdin/stdout, for MCP clients that start their servers
 * as child processes (Claude Desktop, IDEs, the MCP Inspector). It starts the server components in
 * this process (agents, executor, bus, mounted MCP servers, on the configured data_dir) without
 * the HTTP listener or metrics; logs go to stderr. Do not point it at the data_dir of a running
 * `caxton serve`: to reach a running server, use its Streamable HTTP endpoint (POST /mcp) instead.
 */
export function registerMcpCommand(program: Command, ctx?: CliContext): void {
  const mcp = addServerConfigOptions(
    program
      .command('mcp')
      .description(
        "serve Caxton's tools and agents (as ask_<agent>) over MCP on stdio; the HTTP endpoint of `caxton serve` is POST /mcp",
      )
      .addHelpText(
        'after',
        '\nExample (an MCP client config):\n  { "command": "caxton", "args": ["mcp", "--config", "/path/to/caxton.toml"] }',
      ),
  ).action(async (opts: Record<string, unknown>) => {
    const config = loadServerConfig(serverLoadOptions(opts));
    // Loaded on demand, as in `serve`. stdout carries the protocol: the log goes to stderr.
    // `default` is pino's module.exports both unbundled and in the bundle (a named export of a
    // CommonJS package bundled into a lazy chunk is not).
    const [{ default: pino }, { createLogger }, { startServer }, { serveMcpStdio }] = await Promise.all([
      import('pino'),
      import('../../observability/index.js'),
      import('../../server/index.js'),
      import('../../mcp/index.js'),
    ]);
    // The configured secrets are scrubbed from every log line (and, through startServer, from outside text).
    const logger = createLogger(config.logging.level, pino.destination({ dest: 2, sync: false }), {
      secrets: secretValues(config),
    });
    const server = await startServer({ config, logger, listen: false });
    const session = await serveMcpStdio({
      executor: server.executor,
      agents: server.registry,
      config: config.mcp,
      logger,
      clients: server.mcp,
      conversations: server.bus.reads,
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
  if (ctx) registerMcpClientCommands(mcp, ctx);
}

const authText = (s: McpServerStatus): string => (s.auth ? `${s.auth.grant}: ${s.auth.state}` : '-');

/** `caxton mcp servers` and `caxton mcp login`: the mounted MCP servers of a running server. */
function registerMcpClientCommands(mcp: Command, ctx: CliContext): void {
  mcp
    .command('servers')
    .description(
      'the mounted MCP servers ([mcp_servers.NAME]) of the running server: connection state, last error, reconnects, OAuth state',
    )
    .argument('[name]', 'only this server, in detail')
    .action(async (name: string | undefined) => {
      const out = ctx.output();
      const { servers } = await ctx.client().get<{ servers: McpServerStatus[] }>('/api/v1/mcp/servers');
      if (name !== undefined) {
        const s = servers.find((x) => x.name === name);
        if (!s)
          throw new CliError(`no MCP server "${name}" is mounted`, {
            lines: [`mounted: ${servers.map((x) => x.name).join(', ') || 'none'}`],
          });
        if (out.json) return out.data(s);
        const lines = [
          `name:        ${s.name}`,
          `transport:   ${s.transport} ${s.target}`,
          `state:       ${s.state}`,
          `last error:  ${s.last_error ?? '-'}${s.last_error_at ? ` (${s.last_error_at})` : ''}`,
          `connected:   ${s.connected_at ?? '-'}`,
          `reconnects:  ${s.reconnects}   failed attempts: ${s.attempts}${s.next_retry_at ? `   next attempt: ${s.next_retry_at}` : ''}`,
          `tools:       ${s.tool_names.join(', ') || '-'}`,
          `elicitation: ${s.elicitations_refused} request(s) refused`,
        ];
        if (s.auth) {
          lines.push(
            `oauth:       ${s.auth.grant}, ${s.auth.state}, client ${s.auth.client}${s.auth.token_expires_at ? `, token expires ${s.auth.token_expires_at}` : ''}${s.auth.refreshable ? ', refreshable' : ''}`,
          );
          if (s.auth.state !== 'authorized' && s.auth.login_command)
            lines.push(`             authorize with: ${s.auth.login_command}`);
        }
        return out.out(lines.join('\n'));
      }
      if (out.json) return out.data({ servers });
      if (servers.length === 0) return out.out('no MCP servers mounted ([mcp_servers.NAME] in caxton.toml)');
      out.out(
        table(
          ['NAME', 'TRANSPORT', 'STATE', 'TOOLS', 'RECONNECTS', 'AUTH', 'LAST ERROR'],
          servers.map((s) => [
            s.name,
            s.transport,
            s.state,
            String(s.tools),
            String(s.reconnects),
            authText(s),
            truncate(s.last_error ?? '-', 80),
          ]),
        ),
      );
    });

  mcp
    .command('login')
    .description(
      'authorize Caxton with an OAuth-protected MCP server ([mcp_servers.NAME.oauth]): prints the authorization URL to open, waits for the redirect on a loopback port, and hands the code to the running server, which stores the tokens',
    )
    .argument('<name>', 'the mounted MCP server')
    .option(
      '--redirect-port <port>',
      'loopback port for the redirect (default: redirect_port of the server, else any free port)',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || n > 65535) throw usageError(`--redirect-port expects 0-65535, got "${v}"`);
        return n;
      },
    )
    .option('--timeout <seconds>', 'how long to wait for the redirect (default 300)', (v) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw usageError(`--timeout expects seconds, got "${v}"`);
      return n;
    })
    .addHelpText(
      'after',
      '\nNothing is opened by itself: open the printed URL in a browser on this machine (the redirect goes to http://127.0.0.1:PORT/callback).\nExit codes: 0 authorized, 1 refused, timed out or the server unreachable, 2 usage error.',
    )
    .action(async (name: string, opts: { redirectPort?: number; timeout?: number }) => {
      const out = ctx.output();
      const client = ctx.client();
      const { servers } = await client.get<{ servers: McpServerStatus[] }>('/api/v1/mcp/servers');
      const s = servers.find((x) => x.name === name);
      if (!s)
        throw new CliError(`no MCP server "${name}" is mounted`, {
          lines: [`mounted: ${servers.map((x) => x.name).join(', ') || 'none'}`],
        });
      if (!s.auth)
        throw new CliError(`MCP server "${name}" has no [mcp_servers.${name}.oauth]: there is nothing to log in to`);
      const port = opts.redirectPort ?? s.auth.redirect_port ?? 0;
      const waiter = await redirectListener(port);
      try {
        const redirectUri = `http://127.0.0.1:${waiter.port}/callback`;
        const { data: started } = await client.post<{
          authorized?: true;
          authorization_url?: string;
          status: McpServerStatus;
        }>(`/api/v1/mcp/servers/${encodeURIComponent(name)}/login`, {
          redirect_uri: redirectUri,
        });
        if (started.authorized) {
          if (out.json) return out.data({ server: name, authorized: true, status: started.status });
          return out.out(`authorized ${name} (${s.auth.grant}: no person needed); state: ${started.status.state}`);
        }
        out.err(
          `Open this URL in a browser to authorize Caxton with MCP server "${name}":\n\n  ${started.authorization_url}\n\nWaiting for the redirect to ${redirectUri} ...`,
        );
        const { code, state } = await waiter.result((opts.timeout ?? 300) * 1000);
        const { data } = await client.post<{ status: McpServerStatus }>(
          `/api/v1/mcp/servers/${encodeURIComponent(name)}/login/callback`,
          { code, state },
          { timeoutMs: 60_000 },
        );
        if (out.json) return out.data({ server: name, authorized: true, status: data.status });
        out.out(`authorized ${name}; tokens stored by the server; state: ${data.status.state}`);
      } finally {
        waiter.close();
      }
    });
}

/** A one-shot HTTP listener on 127.0.0.1 for the OAuth redirect (`/callback?code=...&state=...`). */
async function redirectListener(port: number): Promise<{
  port: number;
  result: (timeoutMs: number) => Promise<{ code: string; state: string }>;
  close: () => void;
}> {
  let settle: ((v: { code: string; state: string } | Error) => void) | undefined;
  const got = new Promise<{ code: string; state: string } | Error>((res) => (settle = res));
  const page = (res: ServerResponse, status: number, text: string) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`${text}\n`);
  };
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (u.pathname !== '/callback') return page(res, 404, 'not found');
    const error = u.searchParams.get('error');
    const code = u.searchParams.get('code');
    const state = u.searchParams.get('state');
    if (error) {
      page(res, 400, `Authorization refused: ${error}. You may close this window.`);
      return settle?.(
        new CliError(
          `the authorization server refused: ${error}${u.searchParams.get('error_description') ? ` (${u.searchParams.get('error_description')})` : ''}`,
        ),
      );
    }
    if (!code || !state) return page(res, 400, 'missing code or state');
    page(res, 200, 'Caxton received the authorization. You may close this window.');
    settle?.({ code, state });
  });
  await new Promise<void>((res, rej) => {
    server.once('error', (e) =>
      rej(
        new CliError(`cannot listen on 127.0.0.1:${port} for the redirect: ${e.message}`, {
          lines: ['choose another --redirect-port (a registered client needs its registered redirect_port)'],
        }),
      ),
    );
    server.listen(port, '127.0.0.1', () => res());
  });
  return {
    port: (server.address() as AddressInfo).port,
    result: async (timeoutMs) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<Error>(
        (res) =>
          (timer = setTimeout(
            () =>
              res(new CliError(`no redirect within ${Math.round(timeoutMs / 1000)} s: run \`caxton mcp login\` again`)),
            timeoutMs,
          )),
      );
      const r = await Promise.race([got, timeout]);
      clearTimeout(timer);
      if (r instanceof Error) throw r;
      return r;
    },
    close: () => {
      server.close();
      server.closeAllConnections();
    },
  };
}
