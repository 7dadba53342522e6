import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { CaxtonError } from '../shared/errors.js';
import { fieldPath, type SourceIssue } from '../shared/issues.js';
import { closest } from '../shared/suggest.js';
import { tomlLocator } from '../shared/toml-locator.js';
import { parseTomlBounded } from '../shared/toml.js';
import { decodeUtf8 } from '../shared/utf8.js';
import { describeIssue, knownKeysAt } from '../shared/zod-issues.js';
import { serverConfigSchema, type ServerConfig } from './config-schema.js';

/** Command-line overrides, the highest-precedence source. */
export interface ConfigFlags {
  host?: string;
  port?: number;
  metricsPort?: number;
  dataDir?: string;
  agentsDir?: string;
  logLevel?: string;
  isolation?: string;
}

export interface LoadOptions {
  /** caxton.toml path; when absent, $CAXTON_CONFIG, else no file (defaults). */
  file?: string;
  flags?: ConfigFlags;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Friendly environment variables; any other key is reachable as CAXTON_SECTION__KEY. */
const ENV_ALIASES: Record<string, string[]> = {
  CAXTON_DATA_DIR: ['data_dir'],
  CAXTON_AGENTS_DIR: ['agents_dir'],
  CAXTON_HOST: ['server', 'host'],
  CAXTON_PORT: ['server', 'port'],
  CAXTON_METRICS_PORT: ['metrics', 'port'],
  CAXTON_LOG_LEVEL: ['logging', 'level'],
  CAXTON_ISOLATION: ['execution', 'isolation'],
  CAXTON_DEFAULT_PROVIDER: ['llm', 'default_provider'],
};

const FLAG_PATHS: Record<keyof ConfigFlags, string[]> = {
  host: ['server', 'host'],
  port: ['server', 'port'],
  metricsPort: ['metrics', 'port'],
  dataDir: ['data_dir'],
  agentsDir: ['agents_dir'],
  logLevel: ['logging', 'level'],
  isolation: ['execution', 'isolation'],
};

export class ConfigError extends CaxtonError {
  readonly issues: SourceIssue[];
  constructor(issues: SourceIssue[]) {
    super(
      'invalid_config',
      `invalid configuration: ${issues.map((i) => `${i.file ?? ''}${i.line ? `:${i.line}:${i.column ?? 1}` : ''} ${i.field ? `[${i.field}] ` : ''}${i.message}`).join('; ')}`,
      {
        issues,
      },
    );
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (const k of path.slice(0, -1)) {
    const next = cur[k];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

function valueAt(doc: unknown, path: readonly (string | number)[]): unknown {
  let cur = doc;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

function envValue(raw: string): unknown {
  if (/^-?\d+(\.\d+)?$/.test(raw)) return Number(raw);
  if (raw === 'true' || raw === 'false') return raw === 'true';
  return raw;
}

function readConfigFile(file: string): Record<string, unknown> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError([
      {
        severity: 'error',
        code: 'config_unreadable',
        file,
        message:
          code === 'ENOENT' ? 'configuration file not found' : `cannot read configuration file (${code ?? String(e)})`,
        suggestion:
          code === 'ENOENT'
            ? 'create one with `caxton init DIR`, or pass the right path with --config'
            : 'check the file permissions',
      },
    ]);
  }
  const dec = decodeUtf8(bytes);
  if (!dec.ok) {
    throw new ConfigError([
      {
        severity: 'error',
        code: 'not_utf8',
        file,
        line: dec.line,
        column: dec.column,
        message: 'the file is not valid UTF-8',
        suggestion: 'save it as UTF-8',
      },
    ]);
  }
  const parsed = parseTomlBounded(dec.text);
  if (!parsed.ok) throw new ConfigError([{ ...parsed.issue, file }]);
  return parsed.doc;
}

const KNOWN_SECTIONS = [
  'data_dir',
  'agents_dir',
  'agents',
  'server',
  'metrics',
  'logging',
  'events',
  'llm',
  'execution',
  'memory',
  'tools',
  'security',
  'messaging',
  'mcp',
  'mcp_servers',
  'audit',
  'auth',
];

/** Loads the effective configuration: flags > CAXTON_* environment > file > defaults. */
export function loadServerConfig(opts: LoadOptions = {}): ServerConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const fileArg = opts.file ?? env.CAXTON_CONFIG;
  const file = fileArg ? resolve(cwd, fileArg) : null;
  const raw: Record<string, unknown> = file ? readConfigFile(file) : {};
  const baseDir = file ? dirname(file) : cwd;
  const rel = (p: unknown, base: string) => (typeof p === 'string' && !isAbsolute(p) ? resolve(base, p) : p);

  // Paths written in the file are relative to the file; paths from env and flags to the cwd.
  for (const k of ['data_dir', 'agents_dir'] as const) if (raw[k] !== undefined) raw[k] = rel(raw[k], baseDir);
  const providers = (raw.llm as { providers?: Record<string, { script?: unknown }> } | undefined)?.providers;
  if (providers && typeof providers === 'object')
    for (const p of Object.values(providers))
      if (p && typeof p === 'object' && p.script !== undefined) p.script = rel(p.script, baseDir);
  const jwt = (raw.auth as { jwt?: { public_key_file?: unknown } } | undefined)?.jwt;
  if (jwt && typeof jwt === 'object' && jwt.public_key_file !== undefined)
    jwt.public_key_file = rel(jwt.public_key_file, baseDir);
  // [server.tls] and [metrics.tls] certificate, key and CA files (src/server/tls.ts).
  for (const section of ['server', 'metrics'] as const) {
    const tls = (raw[section] as { tls?: Record<string, unknown> } | undefined)?.tls;
    if (tls && typeof tls === 'object')
      for (const k of ['cert', 'key', 'ca'] as const) if (tls[k] !== undefined) tls[k] = rel(tls[k], baseDir);
  }

  // [workspace] path (src/tools/workspace): the directory the workspace tools are confined to.
  const workspace = raw.workspace as { path?: unknown } | undefined;
  if (workspace && typeof workspace === 'object' && workspace.path !== undefined)
    workspace.path = rel(workspace.path, baseDir);

  // [cluster.nats] creds file and TLS files (src/cluster/nats.ts).
  const nats = (raw.cluster as { nats?: { creds_file?: unknown; tls?: Record<string, unknown> } } | undefined)?.nats;
  if (nats && typeof nats === 'object') {
    if (nats.creds_file !== undefined) nats.creds_file = rel(nats.creds_file, baseDir);
    if (nats.tls && typeof nats.tls === 'object')
      for (const k of ['ca_file', 'cert_file', 'key_file'] as const)
        if (nats.tls[k] !== undefined) nats.tls[k] = rel(nats.tls[k], baseDir);
  }

  const envUsed: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('CAXTON_') || value === undefined || name === 'CAXTON_CONFIG' || name === 'CAXTON_SERVER_URL')
      continue;
    const path = ENV_ALIASES[name] ?? (name.includes('__') ? name.slice(7).toLowerCase().split('__') : undefined);
    if (!path) continue;
    const v = path.length === 1 && path[0]!.endsWith('_dir') ? resolve(cwd, value) : envValue(value);
    setPath(raw, path, v);
    envUsed.push(name);
  }
  const flagsUsed: string[] = [];
  for (const [k, v] of Object.entries(opts.flags ?? {})) {
    if (v === undefined) continue;
    const path = FLAG_PATHS[k as keyof ConfigFlags];
    setPath(raw, path, k.endsWith('Dir') ? resolve(cwd, String(v)) : v);
    flagsUsed.push(k);
  }
  if (raw.data_dir === undefined) raw.data_dir = resolve(baseDir, 'data');
  if (raw.agents_dir === undefined) raw.agents_dir = resolve(baseDir, 'agents');

  // Without zod's compiled fast path: a configuration is parsed once, and compiling a parser per
  // nested section (about 10 ms of a start) would cost more than it saves.
  const parsed = serverConfigSchema.safeParse(raw, { jitless: true });
  if (!parsed.success) {
    const locate = file ? tomlLocator(readFileSync(file, 'utf8')) : () => undefined;
    const issues: SourceIssue[] = [];
    for (const i of parsed.error.issues) {
      if (i.code === 'unrecognized_keys') {
        for (const key of i.keys) {
          const path = [...(i.path as (string | number)[]), key];
          const guess = closest(key, i.path.length === 0 ? KNOWN_SECTIONS : knownKeysAt(serverConfigSchema, i.path));
          const pos = locate(path);
          issues.push({
            severity: 'error',
            code: 'unknown_key',
            ...(file && { file }),
            field: fieldPath(path),
            ...(pos && { line: pos.line, column: pos.column }),
            message: `unknown configuration key "${key}"${i.path.length > 0 ? ` in [${fieldPath(i.path)}]` : ''}`,
            suggestion: guess
              ? `did you mean "${guess}"?`
              : `remove it, or see examples/caxton.toml for the keys [${i.path.length > 0 ? fieldPath(i.path) : 'the top level'}] accepts`,
          });
        }
        continue;
      }
      const path = i.path as (string | number)[];
      const pos = locate(path);
      const text = describeIssue(i, valueAt(raw, path));
      issues.push({
        severity: 'error',
        code: 'invalid_value',
        ...(file && { file }),
        field: text.field ?? fieldPath(path),
        ...(pos && { line: pos.line, column: pos.column }),
        message: text.message,
        ...(text.expected !== undefined && { expected: text.expected }),
        ...(text.suggestion !== undefined && { suggestion: text.suggestion }),
      });
    }
    throw new ConfigError(issues);
  }
  const cfg = parsed.data;
  const names = Object.keys(cfg.llm.providers);
  if (cfg.llm.default_provider !== undefined && !names.includes(cfg.llm.default_provider)) {
    throw new ConfigError([
      {
        severity: 'error',
        code: 'invalid_value',
        ...(file && { file }),
        field: 'llm.default_provider',
        message: `default provider "${cfg.llm.default_provider}" is not configured`,
        suggestion: names.length ? `configured providers: ${names.join(', ')}` : 'add a [llm.providers.NAME] table',
      },
    ]);
  }
  for (const [name, p] of Object.entries(cfg.llm.providers)) {
    if (p.type === 'scripted' && !p.script) {
      throw new ConfigError([
        {
          severity: 'error',
          code: 'missing_field',
          ...(file && { file }),
          field: `llm.providers.${name}.script`,
          message: 'a scripted provider needs a script file',
          suggestion: 'add script = "replies.toml" (see docs/scripted-provider.md)',
        },
      ]);
    }
  }
  return { ...cfg, source: { file, env: envUsed, flags: flagsUsed } };
}
