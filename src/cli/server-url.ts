/**
 * Which server the CLI talks to, and why: --server, else $CAXTON_SERVER_URL, else the profile's,
 * else the address of the server running on the project's data directory (its lock file, ADR
 * 0127: right after `caxton serve --port N` too), else the [server] host and port of the
 * project's caxton.toml (the file `caxton serve` would load: $CAXTON_CONFIG, else ./caxton.toml),
 * else http://127.0.0.1:8080.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse } from 'smol-toml';
import { DATA_LOCK_FILE, readDataLock } from '../storage/data-lock.js';
import { DEFAULT_SERVER_URL } from './api-client.js';
import { CliError } from './errors.js';

export type ServerSource = 'flag' | 'env' | 'profile' | 'data-dir' | 'project' | 'default';

export interface ServerChoice {
  url: string;
  source: ServerSource;
  /** The caxton.toml the address was read from ("project"), or the lock file ("data-dir"). */
  file?: string;
}

/** How `whoami` and error hints name where the address came from. */
export function describeServerSource(c: {
  serverSource: ServerSource;
  serverFile?: string | undefined;
  profile: string;
}): string {
  switch (c.serverSource) {
    case 'flag':
      return '--server';
    case 'env':
      return '$CAXTON_SERVER_URL';
    case 'profile':
      return `profile "${c.profile}"`;
    case 'data-dir':
      return `the server running on this project's data directory (${c.serverFile ?? DATA_LOCK_FILE})`;
    case 'project':
      return `[server] in ${c.serverFile ?? 'caxton.toml'}`;
    default:
      return `the default (${DEFAULT_SERVER_URL})`;
  }
}

/**
 * A server address as a base URL. `127.0.0.1:38471` or `localhost` (no scheme) is taken as http;
 * anything that still is not an http(s) URL is refused, naming where it came from.
 */
export function normalizeServerUrl(raw: string, from: string): string {
  const text = raw.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let u: URL | undefined;
  try {
    u = new URL(withScheme);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') {
    throw new CliError(`${from} "${raw}" is not a server address`, {
      lines: [
        'expected http://HOST:PORT or https://HOST:PORT, e.g. http://127.0.0.1:8080 (HOST:PORT alone is taken as http)',
      ],
      json: {
        error: {
          code: 'invalid_server_url',
          message: `${from} "${raw}" is not a server address`,
          details: { source: from },
        },
      },
    });
  }
  return withScheme.replace(/\/+$/, '');
}

/** The configuration file `caxton serve` would load from this directory, if any. */
function projectConfig(env: NodeJS.ProcessEnv, cwd: string): string | undefined {
  if (env.CAXTON_CONFIG) return resolve(cwd, env.CAXTON_CONFIG);
  const file = resolve(cwd, 'caxton.toml');
  return existsSync(file) ? file : undefined;
}

/**
 * The data directory `caxton serve` would use here: $CAXTON_DATA_DIR, else data_dir of the
 * project's caxton.toml (relative to the file), else data/ beside it (or in the current directory).
 */
function projectDataDir(
  file: string | undefined,
  doc: Record<string, unknown> | undefined,
  env: NodeJS.ProcessEnv,
  cwd: string,
): string {
  const base = file ? dirname(file) : cwd;
  if (env.CAXTON_DATA_DIR) return resolve(base, env.CAXTON_DATA_DIR);
  const configured = doc?.data_dir;
  if (typeof configured === 'string' && configured !== '')
    return isAbsolute(configured) ? configured : resolve(base, configured);
  return join(base, 'data');
}

function readProject(file: string): Record<string, unknown> {
  try {
    return parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new CliError(
      `cannot read the server address from ${file}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`,
      {
        lines: ['fix the file (`caxton config show` explains what is wrong), or name the server with --server URL'],
      },
    );
  }
}

/** The address a server started from the project's `doc` listens on: a wildcard bind is reached on loopback. */
function projectServerUrl(doc: Record<string, unknown>): string | undefined {
  const server = doc.server as { host?: unknown; port?: unknown; tls?: unknown } | undefined;
  if (!server || typeof server !== 'object') return undefined;
  if (server.host === undefined && server.port === undefined && server.tls === undefined) return undefined;
  const port = typeof server.port === 'number' && Number.isInteger(server.port) && server.port > 0 ? server.port : 8080;
  let host = typeof server.host === 'string' && server.host.length > 0 ? server.host : '127.0.0.1';
  if (host === '0.0.0.0') host = '127.0.0.1';
  else if (host === '::' || host === '[::]') host = '[::1]';
  else if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
  const scheme = server.tls !== undefined && server.tls !== null && typeof server.tls === 'object' ? 'https' : 'http';
  return `${scheme}://${host}:${port}`;
}

export function chooseServer(
  opts: { server?: string | undefined; profileServer?: string | undefined },
  env: NodeJS.ProcessEnv,
  cwd = process.cwd(),
): ServerChoice {
  if (opts.server !== undefined) return { url: normalizeServerUrl(opts.server, '--server'), source: 'flag' };
  if (env.CAXTON_SERVER_URL)
    return { url: normalizeServerUrl(env.CAXTON_SERVER_URL, '$CAXTON_SERVER_URL'), source: 'env' };
  if (opts.profileServer !== undefined)
    return { url: normalizeServerUrl(opts.profileServer, "the profile's server"), source: 'profile' };
  const file = projectConfig(env, cwd);
  const doc = file && existsSync(file) ? readProject(file) : undefined;
  const dataDir = projectDataDir(file, doc, env, cwd);
  const running = readDataLock(dataDir);
  if (running?.url) return { url: running.url, source: 'data-dir', file: join(dataDir, DATA_LOCK_FILE) };
  const fromFile = doc ? projectServerUrl(doc) : undefined;
  if (file && fromFile) return { url: fromFile, source: 'project', file };
  return { url: DEFAULT_SERVER_URL, source: 'default' };
}
