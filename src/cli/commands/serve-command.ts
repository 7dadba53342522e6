import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { loadServerConfig, type ConfigFlags, type LoadOptions } from '../../config/index.js';
import { startupMark, startupTraced } from '../../server/startup-marks.js';
import type { CodeCacheHook } from '../code-cache.js';
import type { CliContext } from '../context.js';

function toInt(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new InvalidArgumentError(`${name} must be a port number (0-65535), got "${v}"`);
    return n;
  };
}

export function configFlags(opts: Record<string, unknown>): ConfigFlags {
  const flags: ConfigFlags = {};
  if (opts.host !== undefined) flags.host = String(opts.host);
  if (opts.port !== undefined) flags.port = opts.port as number;
  if (opts.metricsPort !== undefined) flags.metricsPort = opts.metricsPort as number;
  if (opts.dataDir !== undefined) flags.dataDir = String(opts.dataDir);
  if (opts.agentsDir !== undefined) flags.agentsDir = String(opts.agentsDir);
  if (opts.logLevel !== undefined) flags.logLevel = String(opts.logLevel);
  return flags;
}

/** The file a project made by `caxton init` keeps its configuration in. */
export const PROJECT_CONFIG = 'caxton.toml';

/**
 * What the server commands load: --config, else $CAXTON_CONFIG, else ./caxton.toml when the
 * current directory has one (so `caxton init demo && cd demo && caxton serve` runs the project),
 * else the built-in defaults; plus the command-line flags.
 */
export function serverLoadOptions(
  opts: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): LoadOptions {
  const flags = configFlags(opts);
  if (opts.config !== undefined) return { file: String(opts.config), flags };
  if (!env.CAXTON_CONFIG && existsSync(resolve(cwd, PROJECT_CONFIG))) return { file: PROJECT_CONFIG, flags };
  return { flags };
}

export function addServerConfigOptions(cmd: Command): Command {
  return cmd
    .option(
      '--config <file>',
      'caxton.toml to use (default: $CAXTON_CONFIG, else ./caxton.toml if present, else built-in defaults)',
    )
    .option('--host <host>', 'address to bind the API to (default 127.0.0.1)')
    .option('-p, --port <port>', 'API port (default 8080)', toInt('--port'))
    .option('--metrics-port <port>', 'Prometheus metrics port (default 9090)', toInt('--metrics-port'))
    .option('--data-dir <dir>', 'where SQLite data is kept')
    .option('--agents-dir <dir>', 'directory of agent files to load and watch')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent');
}

export function registerServe(program: Command, ctx?: CliContext): void {
  addServerConfigOptions(
    program.command('serve').description('start the Caxton server: REST API, agents_dir watcher and metrics'),
  ).action(async (opts: Record<string, unknown>) => {
    startupMark('serve command');
    const config = loadServerConfig(serverLoadOptions(opts));
    startupMark('configuration loaded');
    // Loaded on demand: the server's dependencies (fastify, OpenTelemetry, SQLite) would slow every other command.
    const { startServer } = await import('../../server/index.js');
    startupMark('server modules loaded');
    const server = await startServer({ config });
    if (startupTraced())
      server.app.server.once('request', (_req, res: { once(e: 'finish', f: () => void): void }) =>
        res.once('finish', () => startupMark('first answer')),
      );
    if (ctx?.codeCache) saveCodeCacheAfterFirstAnswer(ctx.codeCache, resolve(config.data_dir), server.app.server);
    process.stderr.write(
      `caxton listening on ${server.url} (metrics ${server.metricsUrl ?? 'off'}); ${server.registry.size} agents loaded; web console ${server.url}/ui. Ctrl-C to stop.\n`,
    );
    // Served, but runs will fail: said where the person who started it looks.
    for (const p of server.problems()) process.stderr.write(`degraded: ${p.problem}\n  fix: ${p.fix}\n`);
    let signals = 0;
    // The logger writes asynchronously: flush it before exiting, or the last lines ("caxton stopped") are lost.
    const exit = (code: number) => {
      setTimeout(() => process.exit(code), 1000).unref();
      server.logger.flush(() => process.exit(code));
    };
    const stop = (signal: string) => {
      signals++;
      if (signals > 1) {
        server.logger.warn({ signal }, 'second signal: exiting immediately');
        return exit(1);
      }
      server.logger.info({ signal }, 'shutting down: finishing in-flight requests');
      const force = setTimeout(() => {
        server.logger.error({ timeout_ms: config.server.shutdown_timeout }, 'shutdown timed out; exiting');
        exit(1);
      }, config.server.shutdown_timeout);
      force.unref();
      server
        .close()
        .then(() => exit(0))
        .catch((e: unknown) => {
          server.logger.error({ err: e }, 'error during shutdown');
          exit(1);
        });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    await new Promise(() => {}); // run until a signal
  });
}

/**
 * Saves V8's code cache (ADR 0073) just after the first answer, when the functions that a start
 * and a first request run have been compiled. Only into the data directory the entry looked in
 * before the configuration was loaded: if the two differ, the next start would not find it.
 */
function saveCodeCacheAfterFirstAnswer(
  hook: CodeCacheHook,
  dataDir: string,
  http: { once(e: 'request', f: (req: unknown, res: { once(e: 'close', f: () => void): void }) => void): void },
): void {
  if (resolve(hook.dataDir) !== dataDir) return;
  http.once('request', (_req, res) => res.once('close', () => setImmediate(() => hook.save())));
}
