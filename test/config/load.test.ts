import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  clusterStateConfig,
  ConfigError,
  loadServerConfig,
  redactSecrets,
  REDACTED,
  type LoadOptions,
} from '../../src/config/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

afterEach(() => removeTempDirs());

function writeConfig(text: string, sub = ''): string {
  const dir = join(makeTempDir('caxton-config-'), sub);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'caxton.toml');
  writeFileSync(file, text);
  return file;
}

function configError(opts: LoadOptions): ConfigError {
  try {
    loadServerConfig(opts);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadServerConfig', () => {
  it('uses defaults when there is no file', () => {
    const cwd = makeTempDir();
    const c = loadServerConfig({ env: {}, cwd });
    expect(c.server).toEqual({
      host: '127.0.0.1',
      port: 8080,
      max_body_size: 1024 * 1024,
      shutdown_timeout: 10_000,
      idle_gc: true,
    });
    expect(c.metrics).toEqual({ enabled: true, host: '127.0.0.1', port: 9090 });
    expect(c.logging.level).toBe('info');
    expect(c.execution.isolation).toBe('context');
    expect(c.llm.providers).toEqual({});
    expect(c.data_dir).toBe(join(cwd, 'data'));
    expect(c.agents_dir).toBe(join(cwd, 'agents'));
    expect(c.source).toEqual({ file: null, env: [], flags: [] });
  });

  it('reads values from the file, with human sizes and durations', () => {
    const file = writeConfig(`
[server]
host = "127.0.0.1"
port = 7000
max_body_size = "64KB"
shutdown_timeout = "3s"

[metrics]
enabled = false
port = 7001

[logging]
level = "warn"

[execution]
isolation = "worker"
pool_size = 4
runs_per_member = 50

[llm]
default_provider = "local"

[llm.providers.local]
type = "openai"
base_url = "http://127.0.0.1:11434/v1"
model = "llama3"
timeout = "90s"
`);
    const c = loadServerConfig({ file, env: {} });
    expect(c.server).toEqual({
      host: '127.0.0.1',
      port: 7000,
      max_body_size: 65_536,
      shutdown_timeout: 3000,
      idle_gc: true,
    });
    expect(c.metrics).toEqual({ enabled: false, host: '127.0.0.1', port: 7001 });
    expect(c.logging.level).toBe('warn');
    expect(c.execution).toMatchObject({ isolation: 'worker', pool_size: 4, runs_per_member: 50 });
    expect(c.llm.default_provider).toBe('local');
    expect(c.llm.providers.local).toMatchObject({
      type: 'openai',
      base_url: 'http://127.0.0.1:11434/v1',
      model: 'llama3',
      timeout: 90_000,
      max_retries: 2,
    });
    expect(c.source.file).toBe(file);
  });

  it('resolves relative paths in the file against the file directory, not the cwd', () => {
    const file = writeConfig(
      'data_dir = "state"\nagents_dir = "../shared-agents"\n[llm.providers.fake]\ntype = "scripted"\nscript = "replies.toml"\n',
      'conf',
    );
    const confDir = join(file, '..');
    const cwd = makeTempDir();
    const c = loadServerConfig({ file, env: {}, cwd });
    expect(c.data_dir).toBe(join(confDir, 'state'));
    expect(c.agents_dir).toBe(join(confDir, '..', 'shared-agents'));
    expect(c.llm.providers.fake?.script).toBe(join(confDir, 'replies.toml'));
  });

  it('defaults data_dir and agents_dir beside the config file', () => {
    const file = writeConfig('');
    const c = loadServerConfig({ file, env: {}, cwd: makeTempDir() });
    expect(c.data_dir).toBe(join(file, '..', 'data'));
    expect(c.agents_dir).toBe(join(file, '..', 'agents'));
  });

  it('finds the file through CAXTON_CONFIG', () => {
    const file = writeConfig('[server]\nport = 7100\n');
    expect(loadServerConfig({ env: { CAXTON_CONFIG: file } }).server.port).toBe(7100);
  });

  it('CAXTON_PORT and CAXTON_SERVER__PORT override the file', () => {
    const file = writeConfig('[server]\nport = 7000\n[logging]\nlevel = "warn"\n');
    const a = loadServerConfig({ file, env: { CAXTON_PORT: '7200' } });
    expect(a.server.port).toBe(7200);
    expect(a.source.env).toEqual(['CAXTON_PORT']);
    const b = loadServerConfig({ file, env: { CAXTON_SERVER__PORT: '7300', CAXTON_LOGGING__LEVEL: 'debug' } });
    expect(b.server.port).toBe(7300);
    expect(b.logging.level).toBe('debug');
    // Unrelated variables are left alone
    expect(loadServerConfig({ file, env: { PORT: '1', CAXTONPORT: '2' } }).server.port).toBe(7000);
  });

  it('env paths are relative to the cwd', () => {
    const cwd = makeTempDir();
    const file = writeConfig('data_dir = "in-file"\n');
    expect(loadServerConfig({ file, env: { CAXTON_DATA_DIR: 'from-env' }, cwd }).data_dir).toBe(join(cwd, 'from-env'));
  });

  it('flags override the environment (and the file)', () => {
    const cwd = makeTempDir();
    const file = writeConfig('[server]\nport = 7000\n[metrics]\nport = 7001\n');
    const c = loadServerConfig({
      file,
      env: { CAXTON_PORT: '7200', CAXTON_METRICS_PORT: '7201', CAXTON_DATA_DIR: 'env-data' },
      flags: { port: 7400, dataDir: 'flag-data' },
      cwd,
    });
    expect(c.server.port).toBe(7400);
    expect(c.metrics.port).toBe(7201);
    expect(c.data_dir).toBe(join(cwd, 'flag-data'));
    expect(c.source.flags.sort()).toEqual(['dataDir', 'port']);
  });

  it('bad TOML is a ConfigError with line and column', () => {
    const file = writeConfig('[server]\nport = 7000\nhost = "unterminated\n');
    const e = configError({ file, env: {} });
    expect(e.code).toBe('invalid_config');
    expect(e.issues).toHaveLength(1);
    expect(e.issues[0]).toMatchObject({ code: 'toml_syntax', file, line: 3 });
    // 'host = "unterminated' is 20 characters: still open at column 21, the end of the line
    expect(e.issues[0]).toMatchObject({ column: 21 });
    expect(e.issues[0]!.message).toContain('unterminated string');
    expect(e.message).toContain(':3:');
  });

  it('a table defined twice (README §5 pasted into a generated caxton.toml) names both lines and what to do', () => {
    const file = writeConfig(
      '[llm]\ndefault_provider = "demo"\n\n[llm.providers.demo]\ntype = "scripted"\n\n[llm]\ndefault_provider = "openai"\n',
    );
    const e = configError({ file, env: {} });
    expect(e.issues[0]).toMatchObject({ code: 'toml_syntax', file, line: 7 });
    expect(e.issues[0]!.message).toBe(
      'TOML syntax error: the table [llm] is defined twice: first on line 1, again on line 7. A TOML table may appear once: move the keys under line 7 into the [llm] on line 1 (and delete the second header)',
    );
  });

  it('a key set twice in one table names the first line', () => {
    const file = writeConfig('[server]\nport = 7000\nhost = "127.0.0.1"\nport = 7001\n');
    const e = configError({ file, env: {} });
    expect(e.issues[0]).toMatchObject({ code: 'toml_syntax', line: 4 });
    expect(e.issues[0]!.message).toContain('port is set twice in [server]: first on line 2, again on line 4');
  });

  it('[cluster.state] step_transactions: 2 by default, at most pool_size, and 0 refused naming its line', () => {
    const base =
      '[cluster]\nnode = "node-a"\n[cluster.nats]\nurls = ["nats://127.0.0.1:4222"]\n[cluster.state]\nurl = "postgres://caxton@db/caxton"\n';
    const state = (extra: string) =>
      clusterStateConfig(loadServerConfig({ file: writeConfig(base + extra), env: {} }).cluster!);
    expect(state('')).toMatchObject({ pool_size: 10, step_transactions: 2 });
    expect(state('pool_size = 3\nstep_transactions = 8\n')).toMatchObject({ pool_size: 3, step_transactions: 3 });
    const e = configError({ file: writeConfig(base + 'step_transactions = 0\n'), env: {} });
    expect(e.issues[0]).toMatchObject({ field: 'cluster.state.step_transactions', line: 7 });
  });

  it('[cluster.state] step_linger: off by default, a duration up to 100 ms, and more refused naming its line', () => {
    const base =
      '[cluster]\nnode = "node-a"\n[cluster.nats]\nurls = ["nats://127.0.0.1:4222"]\n[cluster.state]\nurl = "postgres://caxton@db/caxton"\n';
    const state = (extra: string) =>
      clusterStateConfig(loadServerConfig({ file: writeConfig(base + extra), env: {} }).cluster!);
    expect(state('')).toMatchObject({ step_linger: 0 });
    expect(state('step_linger = "20ms"\n')).toMatchObject({ step_linger: 20 });
    const e = configError({ file: writeConfig(base + 'step_linger = "1s"\n'), env: {} });
    expect(e.issues[0]).toMatchObject({ field: 'cluster.state.step_linger', line: 7 });
    expect(e.issues[0]!.message).toContain('100 ms');
  });

  it('[cluster] run_lease: 15 s by default, 3 s to 10 minutes, and less refused naming its line', () => {
    const base = '[cluster]\nnode = "node-a"\n';
    const lease = (extra: string) => loadServerConfig({ file: writeConfig(base + extra), env: {} }).cluster!.run_lease;
    expect(lease('')).toBe(15_000);
    expect(lease('run_lease = "6s"\n')).toBe(6_000);
    const e = configError({ file: writeConfig(base + 'run_lease = "1s"\n'), env: {} });
    expect(e.issues[0]).toMatchObject({ field: 'cluster.run_lease', line: 3 });
    expect(e.issues[0]!.message).toContain('3 s');
  });

  it('a missing file is a clear error', () => {
    const e = configError({ file: join(makeTempDir(), 'nope.toml'), env: {} });
    expect(e.issues[0]).toMatchObject({ code: 'config_unreadable', message: 'configuration file not found' });
    expect(e.issues[0]!.suggestion).toBeTruthy();
  });

  it('an unknown section is an error with a "did you mean" suggestion and its position', () => {
    const file = writeConfig('[sever]\nport = 7000\n');
    const e = configError({ file, env: {} });
    expect(e.issues).toEqual([
      expect.objectContaining({
        code: 'unknown_key',
        field: 'sever',
        line: 1,
        column: 1,
        suggestion: 'did you mean "server"?',
      }),
    ]);
  });

  it('wrong values are errors naming the field and its line', () => {
    const file = writeConfig('[server]\nport = 70000\n\n[logging]\nlevel = "loud"\n');
    const e = configError({ file, env: {} });
    expect(e.issues.map((i) => [i.field, i.line])).toEqual([
      ['server.port', 2],
      ['logging.level', 5],
    ]);
  });

  it('a default_provider that is not configured is a clear error', () => {
    const file = writeConfig('[llm]\ndefault_provider = "openai"\n\n[llm.providers.local]\ntype = "openai"\n');
    const e = configError({ file, env: {} });
    expect(e.issues[0]).toMatchObject({ field: 'llm.default_provider' });
    expect(e.issues[0]!.message).toContain('"openai" is not configured');
    expect(e.issues[0]!.suggestion).toContain('local');
  });

  it('a scripted provider without a script is an error', () => {
    const file = writeConfig('[llm.providers.fake]\ntype = "scripted"\n');
    const e = configError({ file, env: {} });
    expect(e.issues[0]).toMatchObject({ code: 'missing_field', field: 'llm.providers.fake.script' });
    expect(e.issues[0]!.suggestion).toContain('script');
  });
});

describe('redactSecrets', () => {
  it('hides provider key values and auth headers, keeps api_key_env names', () => {
    const file = writeConfig(`
[llm.providers.openai]
type = "openai"
api_key_env = "OPENAI_API_KEY"
base_url = "https://user:hunter2@llm.example.com/v1"
headers = { Authorization = "Bearer sk-live-123", "X-Api-Key" = "sk-ant-456", "X-Org" = "acme" }
`);
    const c = loadServerConfig({ file, env: {} });
    const r = redactSecrets(c);
    const p = r.llm.providers.openai!;
    expect(p.api_key_env).toBe('OPENAI_API_KEY');
    expect(p.headers).toEqual({ Authorization: REDACTED, 'X-Api-Key': REDACTED, 'X-Org': 'acme' });
    expect(p.base_url).not.toContain('hunter2');
    expect(p.base_url).toContain('llm.example.com');
    const text = JSON.stringify(r);
    for (const secret of ['sk-live-123', 'sk-ant-456', 'hunter2']) expect(text).not.toContain(secret);
    // the original is not modified
    expect(c.llm.providers.openai!.headers!.Authorization).toBe('Bearer sk-live-123');
  });

  it('redacts api_key / token / password values anywhere in a structure', () => {
    const r = redactSecrets({
      providers: [{ api_key: 'sk-1', apiKey: 'sk-2', api_key_env: 'KEY_VAR', token: 't', password: 'p', name: 'n' }],
    });
    expect(r).toEqual({
      providers: [
        { api_key: REDACTED, apiKey: REDACTED, api_key_env: 'KEY_VAR', token: REDACTED, password: REDACTED, name: 'n' },
      ],
    });
  });
});
