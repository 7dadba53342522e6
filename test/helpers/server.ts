import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadServerConfig, type ConfigFlags, type ServerConfig } from '../../src/config/index.js';
import { startServer, type CaxtonServer, type StartOptions } from '../../src/server/index.js';
import { makeTempDir } from './tmp.js';

export interface TestServer {
  server: CaxtonServer;
  /** API base URL, e.g. http://127.0.0.1:40123 */
  url: string;
  /** The directory holding caxton.toml (and, unless the config says otherwise, data/ and agents/). */
  dir: string;
  configPath: string;
  agentsDir: string;
  dataDir: string;
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** The text of caxton.toml; port, metrics port and log level are forced by flags (port 0, silent). */
  toml?: string;
  /** Reuse a directory (e.g. to restart on the same data_dir); a new temp dir otherwise. */
  dir?: string;
  /** Agent files to write into agents/ before start, path (relative, may include subfolders) → content. */
  agentFiles?: Record<string, string | Uint8Array>;
  plugins?: StartOptions['plugins'];
  flags?: ConfigFlags;
  /** The web console's files (default: dist/console); a folder without index.html serves the 503 page. */
  consoleDir?: string;
}

/** Starts a real server on 127.0.0.1 with an ephemeral API port and metrics port, from a caxton.toml in a temp dir. */
export async function startTestServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const dir = opts.dir ?? makeTempDir('caxton-server-');
  const configPath = join(dir, 'caxton.toml');
  writeFileSync(configPath, opts.toml ?? '');
  const config = loadServerConfig({
    file: configPath,
    env: {},
    cwd: dir,
    flags: { port: 0, metricsPort: 0, logLevel: process.env.CAXTON_TEST_LOG ?? 'silent', ...opts.flags },
  });
  for (const [rel, content] of Object.entries(opts.agentFiles ?? {})) {
    const p = join(config.agents_dir, rel);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, content);
  }
  localAuthUnlessConfigured(config, opts.toml ?? '');
  const server = await startServer({
    config,
    ...(opts.plugins && { plugins: opts.plugins }),
    ...(opts.consoleDir !== undefined && { consoleDir: opts.consoleDir }),
  });
  // Tool servers load in the background; tests here read their settled state (the loading state
  // itself is tested in test/tools/servers/background-start.test.ts).
  await server.tools.ready;
  return {
    server,
    url: server.url,
    dir,
    configPath,
    agentsDir: config.agents_dir,
    dataDir: config.data_dir,
    close: () => server.close(),
  };
}

/**
 * Tests of other components talk to the server without credentials: authentication is switched
 * off (the server is on loopback) unless the test's caxton.toml has an [auth] table. The auth
 * tests (test/auth/) and the CLI tests that start `caxton serve` run with it on.
 */
export function localAuthUnlessConfigured(config: ServerConfig, toml: string): ServerConfig {
  if (!/^\s*\[auth[\].]/m.test(toml)) config.auth.enabled = false;
  return config;
}
