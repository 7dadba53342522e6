/**
 * Principals through HTTP: JWTs from a local JWKS server, limits per key (429 + Retry-After while
 * another key is served), the refusal to start without authentication beyond loopback, the
 * metrics port, and the CLI's key handling (local admin key, key create/show, login profiles).
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/index.js';
import { startServer } from '../../src/server/index.js';
import {
  assertBuilt,
  cleanup,
  expectExit,
  parseJson,
  runCli,
  startServe,
  tempDir,
  type ServeProcess,
} from '../cli/helpers/cli.js';
import { http } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

const ISSUER = 'https://issuer.test/realms/acme';

describe('JWT bearer tokens through HTTP', () => {
  let jwks: Server;
  let key: CryptoKey;
  let srv: TestServer;
  const sign = (claims: Record<string, unknown>, exp = '5m') =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience('caxton')
      .setSubject(String(claims.sub ?? 'alice'))
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(key);

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    key = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`;
    srv = await startTestServer({
      toml: `[auth]\nenabled = true\n\n[auth.jwt]\nissuer = "${ISSUER}"\naudience = "caxton"\njwks_url = "${url}"\nrole_claim = "groups"\nagents_claim = "agents"\n\n[auth.jwt.roles]\n"caxton-devs" = "developer"\n"caxton-viewers" = "viewer"\n`,
    });
  });
  afterAll(async () => {
    await srv?.close();
    jwks?.close();
  });

  it('a token whose claim maps to a role is that principal; the role decides', async () => {
    const dev = await sign({ sub: 'alice', groups: ['caxton-devs'], agents: ['*'] });
    const who = await http<{ id: string; role: string }>(srv.url, 'GET', '/api/v1/whoami', {
      headers: { authorization: `Bearer ${dev}` },
    });
    expect(who.status, who.text).toBe(200);
    expect(who.json).toMatchObject({ id: 'oidc:alice', role: 'developer' });
    const deploy = await http(srv.url, 'POST', '/api/v1/agents', {
      body: 'name = "jwt-made"\nsystem_prompt = "x"\n',
      contentType: 'application/toml',
      headers: { authorization: `Bearer ${dev}` },
    });
    expect(deploy.status, deploy.text).toBe(201);
    const viewer = await sign({ sub: 'bob', groups: ['caxton-viewers'], agents: ['*'] });
    const refused = await http(srv.url, 'POST', '/api/v1/agents', {
      body: 'name = "jwt-viewer"\nsystem_prompt = "x"\n',
      contentType: 'application/toml',
      headers: { authorization: `Bearer ${viewer}` },
    });
    expect(refused.status).toBe(403);
    expect(
      (await http(srv.url, 'GET', '/api/v1/agents', { headers: { authorization: `Bearer ${viewer}` } })).status,
    ).toBe(200);
  });

  it('an expired token, a token for another audience and a token with no mapped role are refused', async () => {
    const expired = await sign({ sub: 'carol', groups: ['caxton-devs'] }, '-5m');
    const r1 = await http(srv.url, 'GET', '/api/v1/agents', { headers: { authorization: `Bearer ${expired}` } });
    expect(r1.status).toBe(401);
    expect(r1.text).not.toContain(expired);
    const other = await new SignJWT({ groups: ['caxton-devs'] })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience('someone-else')
      .setSubject('dave')
      .setExpirationTime('5m')
      .sign(key);
    expect(
      (await http(srv.url, 'GET', '/api/v1/agents', { headers: { authorization: `Bearer ${other}` } })).status,
    ).toBe(401);
    const nobody = await sign({ sub: 'erin', groups: ['strangers'] });
    expect(
      (await http(srv.url, 'GET', '/api/v1/agents', { headers: { authorization: `Bearer ${nobody}` } })).status,
    ).toBe(403);
  });

  it('the agents claim scopes the token', async () => {
    const scoped = await sign({ sub: 'frank', groups: ['caxton-devs'], agents: ['support-*'] });
    expect(
      (await http(srv.url, 'GET', '/api/v1/agents/jwt-made', { headers: { authorization: `Bearer ${scoped}` } }))
        .status,
    ).toBe(403);
  });
});

describe('limits per key through HTTP', () => {
  let srv: TestServer;
  let admin: string;
  const REPLIES =
    '[[rules]]\nname = "slow"\nmatch = "^slow"\nlatency_ms = 1500\ncontent = "done slowly"\n\n[[rules]]\nname = "long"\nmatch = "^long"\ncontent = "' +
    'word '.repeat(1000) +
    '"\n';

  beforeAll(async () => {
    const dir = makeTempDir('caxton-limits-http-');
    writeFileSync(join(dir, 'replies.toml'), REPLIES);
    srv = await startTestServer({
      dir,
      toml: `[auth]\nenabled = true\n\n[llm]\ndefault_provider = "s"\n[llm.providers.s]\ntype = "scripted"\nscript = "replies.toml"\n`,
      agentFiles: {
        'worker.toml': 'name = "worker"\nsystem_prompt = "You work."\n',
        'other.toml': 'name = "other"\nsystem_prompt = "You are other."\n',
      },
    });
    admin = readFileSync(join(srv.dataDir, 'admin.key'), 'utf8').trim();
  });
  afterAll(() => srv?.close());

  const keyFor = async (name: string, limits?: Record<string, number>) => {
    const r = await http<{ secret: string }>(srv.url, 'POST', '/api/v1/keys', {
      body: JSON.stringify({ name, role: 'invoker', ...(limits && { limits }) }),
      contentType: 'application/json',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(r.status, r.text).toBe(201);
    return r.json.secret;
  };
  const invoke = (key: string, request: string) =>
    http<{ content?: string; usage?: { total_tokens: number } }>(srv.url, 'POST', '/api/v1/agents/worker/invoke', {
      body: JSON.stringify({ request }),
      contentType: 'application/json',
      headers: { authorization: `Bearer ${key}` },
    });

  it('a key limited to 2 concurrent executions gets 429 on the third while another key is served', async () => {
    const limited = await keyFor('two-at-once', { concurrent_executions: 2 });
    const other = await keyFor('unlimited');
    const running = [invoke(limited, 'slow 1'), invoke(limited, 'slow 2')];
    // Both are running (the key's usage says so) before the third is sent.
    await waitUntil(
      async () => {
        const k = await http<{ usage?: { executions: { running: number } } }>(
          srv.url,
          'GET',
          '/api/v1/keys/two-at-once',
          { headers: { authorization: `Bearer ${admin}` } },
        );
        return k.json.usage?.executions.running === 2;
      },
      { timeoutMs: 10_000, what: 'two executions of the limited key running' },
    );
    const third = await invoke(limited, 'slow 3');
    expect(third.status, third.text).toBe(429);
    expect(third.headers.get('retry-after')).toBe('1');
    expect(third.text).toContain('concurren');
    const served = await invoke(other, 'slow other');
    expect(served.status, served.text).toBe(200);
    for (const r of await Promise.all(running)) expect(r.status).toBe(200);
    expect((await invoke(limited, 'slow again')).status).toBe(200);
  });

  it('a key with 1,000 tokens per minute gets 429 with Retry-After once they are spent; another key is served', async () => {
    const limited = await keyFor('thousand', { tokens_per_minute: 1000 });
    const other = await keyFor('thousand-other', { tokens_per_minute: 1000 });
    // Token windows are whole minutes of the clock: both calls go in one, not across its end.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 45_000) await new Promise((r) => setTimeout(r, 60_100 - intoMinute));
    const first = await invoke(limited, 'long answer please');
    expect(first.status, first.text).toBe(200);
    expect(first.json.usage!.total_tokens).toBeGreaterThan(1000);
    const refused = await invoke(limited, 'long again');
    expect(refused.status, refused.text).toBe(429);
    const retry = Number(refused.headers.get('retry-after'));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60);
    expect((await invoke(other, 'long for the other key')).status).toBe(200);
    const shown = await http<{ usage: { tokens: { used: number; limit: number } } }>(
      srv.url,
      'GET',
      '/api/v1/keys/thousand',
      { headers: { authorization: `Bearer ${admin}` } },
    );
    expect(shown.json.usage.tokens.limit).toBe(1000);
    expect(shown.json.usage.tokens.used).toBeGreaterThan(1000);
  });

  it('the openai package authenticates with a Caxton key as its apiKey; a wrong key is its AuthenticationError', async () => {
    const { default: OpenAI, AuthenticationError } = await import('openai');
    const key = await keyFor('openai-client');
    const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: key, maxRetries: 0 });
    const res = await client.chat.completions.create({
      model: 'worker',
      messages: [{ role: 'user', content: 'slow hello' }],
    });
    expect(res.choices[0]!.message.content).toBe('done slowly');
    const wrong = new OpenAI({
      baseURL: `${srv.url}/v1`,
      apiKey: 'cxk_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB',
      maxRetries: 0,
    });
    await expect(
      wrong.chat.completions.create({ model: 'worker', messages: [{ role: 'user', content: 'x' }] }),
    ).rejects.toBeInstanceOf(AuthenticationError);
  });

  it('the MCP SDK client sends its key as a header; an invoker sees only the agents, not the tools', async () => {
    const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
    const key = await keyFor('mcp-invoker');
    const client = new Client({ name: 'auth-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${key}` } },
      }),
    );
    try {
      const names = (await client.listTools()).tools.map((t) => t.name);
      expect(names).toContain('ask_worker');
      expect(names).not.toContain('calculator');
      const refused = await client.callTool({ name: 'calculator', arguments: { expression: '1+1' } });
      expect(refused.isError).toBe(true);
      const asked = await client.callTool({ name: 'ask_worker', arguments: { request: 'slow question' } });
      expect(asked.isError ?? false).toBe(false);
    } finally {
      await client.close();
    }
    const anonymous = new Client({ name: 'anon', version: '1.0.0' });
    await expect(anonymous.connect(new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`)))).rejects.toThrow(
      /401|auth/i,
    );
  });

  it("MCP prompts and resources keep to the key's agent scope", async () => {
    const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
    const r = await http<{ secret: string }>(srv.url, 'POST', '/api/v1/keys', {
      body: JSON.stringify({ name: 'mcp-other-only', role: 'invoker', agents: ['other'] }),
      contentType: 'application/json',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(r.status, r.text).toBe(201);
    const client = new Client({ name: 'scope-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${srv.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${r.json.secret}` } },
      }),
    );
    try {
      expect((await client.listPrompts()).prompts.map((p) => p.name)).toEqual(['other']);
      expect((await client.listResources()).resources.map((x) => x.uri)).toEqual(['caxton://agents/other']);
      await expect(client.getPrompt({ name: 'worker', arguments: { request: 'x' } })).rejects.toMatchObject({
        code: -32602,
      });
      await expect(client.readResource({ uri: 'caxton://agents/worker' })).rejects.toMatchObject({ code: -32002 });
      expect((await client.readResource({ uri: 'caxton://agents/other' })).contents).toHaveLength(1);
    } finally {
      await client.close();
    }
  });

  it('a request rate limit answers 429 with Retry-After', async () => {
    const limited = await keyFor('slow-poke', { requests_per_minute: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push(
        (await http(srv.url, 'GET', '/api/v1/agents', { headers: { authorization: `Bearer ${limited}` } })).status,
      );
    expect(statuses).toEqual([200, 200, 429]);
  });
});

describe('no authentication beyond loopback', () => {
  it('refuses to start on 0.0.0.0 with [auth] enabled = false, naming the setting', async () => {
    const dir = makeTempDir('caxton-remote-');
    writeFileSync(join(dir, 'caxton.toml'), '[server]\nhost = "0.0.0.0"\n\n[auth]\nenabled = false\n');
    const config = loadServerConfig({
      file: join(dir, 'caxton.toml'),
      env: {},
      cwd: dir,
      flags: { port: 0, metricsPort: 0, logLevel: 'silent' },
    });
    await expect(startServer({ config })).rejects.toThrow(/refusing to start.*\[auth\] enabled = false/);
  });

  it('[security] rejects unknown keys, and the old allow_remote says what replaced it', () => {
    const dir = makeTempDir('caxton-sec-');
    writeFileSync(join(dir, 'caxton.toml'), '[security]\nallow_remote = true\n');
    expect(() => loadServerConfig({ file: join(dir, 'caxton.toml'), env: {}, cwd: dir })).toThrow(
      /invalid configuration/,
    );
    try {
      loadServerConfig({ file: join(dir, 'caxton.toml'), env: {}, cwd: dir });
    } catch (e) {
      expect(JSON.stringify((e as { issues: unknown }).issues)).toContain('allow_remote');
      expect(JSON.stringify((e as { issues: unknown }).issues)).toContain('[auth]');
    }
    writeFileSync(join(dir, 'caxton.toml'), '[security]\nallowed_hostz = ["a"]\n');
    expect(() => loadServerConfig({ file: join(dir, 'caxton.toml'), env: {}, cwd: dir })).toThrow(
      /invalid configuration/,
    );
  });
});

describe('the CLI with a real `caxton serve`', () => {
  let dir: string;
  let home: string;
  let serve: ServeProcess;
  beforeAll(async () => {
    assertBuilt();
    dir = tempDir('caxton-keys-cli-');
    home = tempDir('caxton-home-');
    writeFileSync(join(dir, 'caxton.toml'), 'data_dir = "data"\nagents_dir = "agents"\n');
    serve = await startServe({ cwd: dir, args: ['--config', join(dir, 'caxton.toml')], env: { CAXTON_HOME: home } });
  });
  afterAll(cleanup);
  const cli = (args: string[], env: Record<string, string> = {}) =>
    runCli(['--server', serve.url, ...args], { cwd: dir, env: { CAXTON_HOME: home, ...env } });

  it('finds the local admin key by itself, through a run record only this user can read', async () => {
    const r = await cli(['whoami', '--json']);
    expectExit(r, 0);
    expect(parseJson(r)).toMatchObject({ id: 'key:admin', role: 'admin', key_source: 'local-server' });
    const port = new URL(serve.url).port;
    expect(statSync(join(home, 'run', `${port}.json`)).mode & 0o777).toBe(0o600);
    // Another user's home (no run record): no key, a clear 401 with what to do.
    const other = await cli(['agent', 'list'], { CAXTON_HOME: tempDir('caxton-other-home-') });
    expectExit(other, 1);
    expect(other.stderr).toContain('authentication required');
    expect(other.stderr).toContain('caxton login');
  });

  it('key create prints the secret once; list and show never do; the key works from $CAXTON_API_KEY', async () => {
    const created = await cli([
      'key',
      'create',
      '--name',
      'ci',
      '--role',
      'viewer',
      '--expires',
      '30d',
      '--agents',
      'support-*',
      '--json',
    ]);
    expectExit(created, 0);
    const { secret, key } = parseJson<{ secret: string; key: { id: string; expires_at: string } }>(created);
    expect(key.expires_at).not.toBeNull();
    const list = await cli(['key', 'list']);
    expectExit(list, 0);
    expect(list.stdout).toContain('ci');
    expect(list.stdout).toContain('support-*');
    expect(list.stdout).not.toContain(secret.slice(-32));
    const show = await cli(['key', 'show', 'ci']);
    expect(show.stdout).not.toContain(secret.slice(-32));
    const asCi = await cli(['whoami', '--json'], { CAXTON_API_KEY: secret });
    expect(parseJson(asCi)).toMatchObject({ id: 'key:ci', role: 'viewer', key_source: 'env' });
    const denied = await cli(['key', 'list'], { CAXTON_API_KEY: secret });
    expectExit(denied, 1);
    expect(denied.stderr).toContain('keys:manage');
  });

  it('login stores a profile (0600) that --profile uses; logout removes it', async () => {
    const created = parseJson<{ secret: string }>(
      await cli(['key', 'create', '--name', 'prof', '--role', 'developer', '--json']),
    );
    const loginHome = tempDir('caxton-login-home-');
    const { spawn } = await import('node:child_process');
    const { CLI, cleanEnv } = await import('../cli/helpers/cli.js');
    const code = await new Promise<number | null>((res) => {
      const c = spawn(process.execPath, [CLI, 'login', '--server', serve.url, '--profile', 'work'], {
        env: cleanEnv({ CAXTON_HOME: loginHome }),
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      c.stdin.end(created.secret);
      c.on('close', res);
    });
    expect(code).toBe(0);
    expect(statSync(join(loginHome, 'credentials.toml')).mode & 0o777).toBe(0o600);
    const who = await runCli(['--profile', 'work', 'whoami', '--json'], { cwd: dir, env: { CAXTON_HOME: loginHome } });
    expect(parseJson(who)).toMatchObject({ id: 'key:prof', role: 'developer', key_source: 'profile' });
    expectExit(await runCli(['logout', '--profile', 'work'], { cwd: dir, env: { CAXTON_HOME: loginHome } }), 0);
    expectExit(await runCli(['--profile', 'work', 'whoami'], { cwd: dir, env: { CAXTON_HOME: loginHome } }), 1);
  });

  it('the metrics port on loopback refuses a rebound Host', async () => {
    const get = (host: string) =>
      new Promise<number>((res, rej) => {
        const req = request(
          { host: '127.0.0.1', port: serve.metricsPort, path: '/metrics', headers: { host } },
          (r) => {
            r.resume();
            res(r.statusCode!);
          },
        );
        req.on('error', rej);
        req.end();
      });
    expect(await get('evil.example')).toBe(403);
    expect(await get(`127.0.0.1:${serve.metricsPort}`)).toBe(200);
  });
});
