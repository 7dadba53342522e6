/**
 * Which server the CLI talks to and with which key (docs/security.md):
 * - server: --server, else $CAXTON_SERVER_URL, else the profile's, else the [server] of the
 *   project's caxton.toml, else http://127.0.0.1:8080 (src/cli/server-url.ts);
 * - key: $CAXTON_API_KEY, else the profile's (`caxton login`), else — for a server on this
 *   machine's loopback — the admin key that server wrote for its own user (src/auth/local-auth.ts).
 * Profiles live in $CAXTON_HOME/credentials.toml (default ~/.caxton), mode 0600; --profile or
 * $CAXTON_PROFILE picks one, else "default".
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'smol-toml';
import { caxtonHome, localServerKey } from '../auth/index.js';
import { CliError } from './errors.js';
import { chooseServer, type ServerSource } from './server-url.js';

export interface Profile {
  server?: string;
  api_key?: string;
}

export interface Credentials {
  server: string;
  /** Where the server address came from, for `caxton whoami` and error hints. */
  serverSource: ServerSource;
  /** The caxton.toml the address was read from, when serverSource is "project". */
  serverFile?: string | undefined;
  apiKey: string | undefined;
  /** Where the key came from, for `caxton whoami` and error hints. */
  keySource: 'env' | 'profile' | 'local-server' | 'none';
  profile: string;
}

export const credentialsFile = (env: NodeJS.ProcessEnv = process.env) => join(caxtonHome(env), 'credentials.toml');

export function readProfiles(env: NodeJS.ProcessEnv = process.env): Record<string, Profile> {
  const file = credentialsFile(env);
  if (!existsSync(file)) return {};
  let doc: Record<string, unknown>;
  try {
    doc = parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`, {
      lines: ['fix the file or remove it and run `caxton login` again'],
    });
  }
  const profiles = doc.profiles;
  if (profiles === undefined) return {};
  if (typeof profiles !== 'object' || profiles === null)
    throw new CliError(`${file}: "profiles" must be a table of [profiles.NAME] sections`);
  return profiles as Record<string, Profile>;
}

export function writeProfile(name: string, profile: Profile, env: NodeJS.ProcessEnv = process.env): string {
  const file = credentialsFile(env);
  const profiles = readProfiles(env);
  profiles[name] = profile;
  mkdirSync(caxtonHome(env), { recursive: true, mode: 0o700 });
  saveProfiles(file, profiles);
  return file;
}

/** Written to a 0600 temporary file, then renamed: the keys are never readable by others, and a crash never leaves half a file. */
function saveProfiles(file: string, profiles: Record<string, Profile>): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `# Caxton CLI credentials (caxton login). Keep this file private.\n${stringify({ profiles })}\n`);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function removeProfile(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const profiles = readProfiles(env);
  if (!(name in profiles)) return false;
  delete profiles[name];
  saveProfiles(credentialsFile(env), profiles);
  return true;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

export function resolveCredentials(
  opts: { server?: string | undefined; profile?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): Credentials {
  const profileName = opts.profile ?? env.CAXTON_PROFILE ?? 'default';
  const profiles =
    opts.profile !== undefined || env.CAXTON_PROFILE !== undefined || existsSync(credentialsFile(env))
      ? readProfiles(env)
      : {};
  const profile = profiles[profileName];
  if ((opts.profile !== undefined || env.CAXTON_PROFILE !== undefined) && !profile) {
    throw new CliError(`no profile "${profileName}" in ${credentialsFile(env)}`, {
      lines: [`create it with \`caxton login --profile ${profileName} --server URL\``],
    });
  }
  const chosen = chooseServer({ server: opts.server, profileServer: profile?.server }, env, cwd);
  const server = chosen.url;
  const base = {
    server,
    serverSource: chosen.source,
    ...(chosen.file !== undefined && { serverFile: chosen.file }),
    profile: profileName,
  };
  if (env.CAXTON_API_KEY) return { ...base, apiKey: env.CAXTON_API_KEY.trim(), keySource: 'env' };
  // A profile's key goes only to its own server (or to any when it names none).
  if (profile?.api_key && (profile.server === undefined || sameServer(profile.server, server)))
    return { ...base, apiKey: profile.api_key, keySource: 'profile' };
  const local = localKeyFor(server, env);
  if (local) return { ...base, apiKey: local, keySource: 'local-server' };
  return { ...base, apiKey: undefined, keySource: 'none' };
}

function sameServer(a: string, b: string): boolean {
  return a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}

function localKeyFor(server: string, env: NodeJS.ProcessEnv): string | undefined {
  let u: URL;
  try {
    u = new URL(server);
  } catch {
    return undefined;
  }
  if (!LOOPBACK.has(u.hostname)) return undefined;
  const port = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
  return localServerKey(port, env);
}
