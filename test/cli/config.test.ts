import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  cleanup,
  expectExit,
  expectNoStackTrace,
  occupyPort,
  parseJson,
  runCli,
  tempDir,
} from './helpers/cli.js';

interface ConfigJson {
  data_dir: string;
  server: { port: number; host: string };
  metrics: { port: number };
  llm: {
    default_provider?: string;
    providers: Record<string, { type: string; api_key_env?: string; headers?: Record<string, string> }>;
  };
  source: { file: string | null; env: string[]; flags: string[] };
}

const CONFIG = `data_dir = "state"

[server]
port = 8123

[llm]
default_provider = "openai"

[llm.providers.openai]
type = "openai"
api_key_env = "OPENAI_API_KEY"
headers = { Authorization = "Bearer sk-secret" }
`;

let dir: string;
let file: string;
beforeAll(() => {
  assertBuilt();
  dir = tempDir('caxton-config-');
  file = join(dir, 'caxton.toml');
  writeFileSync(file, CONFIG);
  writeFileSync(join(dir, 'broken.toml'), '[server]\nport = 8080\n[llm\n');
  writeFileSync(join(dir, 'typo.toml'), '[server]\nprot = 8080\n');
});
afterAll(cleanup);

describe('caxton config show', () => {
  it('prints the effective configuration as TOML with its sources', async () => {
    const r = await runCli(['config', 'show', '--config', file], { cwd: dir });
    expectExit(r, 0);
    expect(r.stdout).toContain(`# file: ${file}; env: (none); flags: (none)`);
    expect(r.stdout).toMatch(/^\[server\]\nhost = "127\.0\.0\.1"\nport = 8123$/m);
    expect(r.stdout).toContain(`data_dir = "${join(dir, 'state')}"`);
    expect(r.stdout).toMatch(/^default_provider = "openai"$/m);
  });

  it('flags > env > file: CAXTON_PORT=9999 shows 9999, --port 7777 shows 7777', async () => {
    const [fileOnly, env, flag] = await Promise.all([
      runCli(['--json', 'config', 'show', '--config', file], { cwd: dir }),
      runCli(['--json', 'config', 'show', '--config', file], { cwd: dir, env: { CAXTON_PORT: '9999' } }),
      runCli(['--json', 'config', 'show', '--config', file, '--port', '7777'], {
        cwd: dir,
        env: { CAXTON_PORT: '9999' },
      }),
    ]);
    const f = parseJson<ConfigJson>(fileOnly);
    expect(f.server.port).toBe(8123);
    const e = parseJson<ConfigJson>(env);
    expect(e.server.port).toBe(9999);
    expect(e.source.env).toEqual(['CAXTON_PORT']);
    const fl = parseJson<ConfigJson>(flag);
    expect(fl.server.port).toBe(7777);
    expect(fl.source.flags).toEqual(['port']);

    const text = await runCli(['config', 'show', '--config', file, '--port', '7777'], {
      cwd: dir,
      env: { CAXTON_PORT: '9999' },
    });
    expectExit(text, 0);
    expect(text.stdout).toMatch(/^port = 7777$/m);
    expect(text.stdout).toContain('env: CAXTON_PORT; flags: port');
  });

  it('$CAXTON_CONFIG selects the file when --config is absent', async () => {
    const r = await runCli(['--json', 'config', 'show'], { cwd: dir, env: { CAXTON_CONFIG: file } });
    expectExit(r, 0);
    expect(parseJson<ConfigJson>(r)).toMatchObject({ server: { port: 8123 }, source: { file } });
  });

  it('without --config or $CAXTON_CONFIG it reads ./caxton.toml (a project made by caxton init)', async () => {
    const r = await runCli(['--json', 'config', 'show'], { cwd: dir });
    expectExit(r, 0);
    expect(parseJson<ConfigJson>(r)).toMatchObject({
      server: { port: 8123 },
      data_dir: join(dir, 'state'),
      source: { file },
    });
    // $CAXTON_CONFIG still wins over ./caxton.toml.
    const other = join(tempDir('caxton-config-other-'), 'other.toml');
    writeFileSync(other, '[server]\nport = 8555\n');
    const r2 = await runCli(['--json', 'config', 'show'], { cwd: dir, env: { CAXTON_CONFIG: other } });
    expectExit(r2, 0);
    expect(parseJson<ConfigJson>(r2)).toMatchObject({ server: { port: 8555 }, source: { file: other } });
  });

  it('without any file it shows the defaults', async () => {
    const empty = tempDir('caxton-config-empty-');
    const r = await runCli(['--json', 'config', 'show'], { cwd: empty });
    expectExit(r, 0);
    const c = parseJson<ConfigJson>(r);
    expect(c.server.port).toBe(8080);
    expect(c.source.file).toBeNull();
    expect(c.data_dir).toBe(join(empty, 'data'));
  });

  it('api_key_env shows the variable NAME, while a secret header value is redacted to ***', async () => {
    const [text, json] = await Promise.all([
      runCli(['config', 'show', '--config', file], { cwd: dir, env: { OPENAI_API_KEY: 'sk-from-env-do-not-print' } }),
      runCli(['--json', 'config', 'show', '--config', file], { cwd: dir }),
    ]);
    expectExit(text, 0);
    expect(text.stdout).toMatch(/^api_key_env = "OPENAI_API_KEY"$/m);
    expect(text.stdout).toMatch(/^Authorization = "\*\*\*"$/m);
    for (const out of [text.stdout, json.stdout]) {
      expect(out).not.toContain('sk-secret');
      expect(out).not.toContain('sk-from-env');
    }
    const c = parseJson<ConfigJson>(json);
    expect(c.llm.providers.openai).toMatchObject({
      type: 'openai',
      api_key_env: 'OPENAI_API_KEY',
      headers: { Authorization: '***' },
    });
  });

  it('a config file with bad TOML exits 1 with file:line:column', async () => {
    const r = await runCli(['config', 'show', '--config', 'broken.toml'], { cwd: dir });
    expectExit(r, 1);
    expect(r.stderr).toMatch(/error: invalid configuration/);
    expect(r.stderr).toContain(`${join(dir, 'broken.toml')}:3:`);
    expect(r.stderr).toMatch(/broken\.toml:3:\d+: error: TOML syntax error/);
    expectNoStackTrace(r);
  });

  it('an unknown key exits 1 with its position and field; --json gives the issues', async () => {
    const [text, json] = await Promise.all([
      runCli(['config', 'show', '--config', 'typo.toml'], { cwd: dir }),
      runCli(['--json', 'config', 'show', '--config', 'typo.toml'], { cwd: dir }),
    ]);
    expectExit(text, 1);
    expect(text.stderr).toMatch(
      /typo\.toml:2:1: error: unknown configuration key "prot" in \[server\] \[server\.prot\]\n\s+hint: did you mean "port"\?/,
    );
    expectExit(json, 1);
    const body = parseJson<{
      error: { code: string; details: { issues: { code: string; field: string; line: number }[] } };
    }>(json);
    expect(body.error.code).toBe('invalid_config');
    expect(body.error.details.issues[0]).toMatchObject({ code: 'unknown_key', field: 'server.prot', line: 2 });
  });

  it('a missing config file exits 1 with a hint, no stack trace', async () => {
    const r = await runCli(['config', 'show', '--config', 'nowhere.toml'], { cwd: dir });
    expectExit(r, 1);
    expect(r.stderr).toMatch(/nowhere\.toml: error: configuration file not found/);
    expect(r.stderr).toMatch(/caxton init/);
    expectNoStackTrace(r);
  });
});

describe('caxton serve: startup failures', () => {
  it('a port already in use exits 1 with "address already in use", no stack trace', async () => {
    const held = await occupyPort();
    const metrics = await occupyPort();
    await metrics.close(); // a port that is (very likely) free for the metrics server
    try {
      const r = await runCli(
        [
          'serve',
          '--config',
          file,
          '--port',
          String(held.port),
          '--metrics-port',
          String(metrics.port),
          '--log-level',
          'silent',
        ],
        { cwd: dir },
      );
      expectExit(r, 1);
      expect(r.stderr).toContain(`address already in use: 127.0.0.1:${held.port}`);
      expect(r.stderr).toMatch(/--port/);
      expectNoStackTrace(r);
    } finally {
      await held.close();
    }
  });

  it('a metrics port already in use exits 1 too (and does not leave the API running)', async () => {
    const held = await occupyPort();
    const api = await occupyPort();
    await api.close();
    try {
      const r = await runCli(
        [
          'serve',
          '--config',
          file,
          '--port',
          String(api.port),
          '--metrics-port',
          String(held.port),
          '--log-level',
          'silent',
        ],
        { cwd: dir },
      );
      expectExit(r, 1);
      expect(r.stderr).toContain(`address already in use: 127.0.0.1:${held.port}`);
      expectNoStackTrace(r);
    } finally {
      await held.close();
    }
  });

  it('an invalid config file makes serve exit 1 with file:line:column', async () => {
    const r = await runCli(['serve', '--config', 'typo.toml', '--port', '0', '--metrics-port', '0'], { cwd: dir });
    expectExit(r, 1);
    expect(r.stderr).toMatch(/typo\.toml:2:1: error: unknown configuration key "prot"/);
    expectNoStackTrace(r);
  });
});
