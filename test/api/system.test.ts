import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, http, postAgent, putAgent, tomlAgent } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';

interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<
    string,
    Record<string, { requestBody?: { content: Record<string, unknown> }; responses?: Record<string, unknown> }>
  >;
}

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({
    toml: `[llm]
default_provider = "local"

[llm.providers.local]
type = "openai"
base_url = "http://127.0.0.1:11434/v1"
api_key_env = "LOCAL_API_KEY"
headers = { Authorization = "Bearer sk-secret-value" }
`,
  });
});
afterAll(async () => {
  await t.close();
  removeTempDirs();
});

describe('system endpoints', () => {
  it('/health and /ready return ok; /health names the provider that has no key and no model as degraded', async () => {
    const ready = await getJson(t.url, '/ready');
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ status: 'ok' });
    const health = await getJson(t.url, '/health');
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ status: 'ok', degraded: ['llm.providers.local'] });
  });

  it('/api/v1/status reports agents and the config paths', async () => {
    const res = await getJson<{
      ready: boolean;
      version: string;
      agents: { total: number };
      config: { agents_dir: string; data_dir: string };
    }>(t.url, '/api/v1/status');
    expect(res.status).toBe(200);
    expect(res.json.ready).toBe(true);
    expect(res.json.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(res.json.config).toMatchObject({ agents_dir: t.agentsDir, data_dir: t.dataDir });
  });

  it('/api/v1/config shows the effective configuration with secrets redacted', async () => {
    const res = await getJson<{
      llm: { providers: Record<string, { api_key_env?: string; headers?: Record<string, string> }> };
      server: { port: number };
    }>(t.url, '/api/v1/config');
    expect(res.status).toBe(200);
    expect(res.text).not.toContain('sk-secret-value');
    expect(res.json.llm.providers.local).toMatchObject({
      api_key_env: 'LOCAL_API_KEY',
      headers: { Authorization: '***' },
    });
  });

  it('serves a valid OpenAPI 3.x document listing the agent routes and deploy content types', async () => {
    const res = await getJson<OpenApiDoc>(t.url, '/api/v1/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.json;
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(doc.info.title).toBeTruthy();
    expect(doc.info.version).toBeTruthy();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/agents',
        '/api/v1/agents/{name}',
        '/api/v1/agents/validate',
        '/api/v1/capabilities',
        '/health',
        '/ready',
      ]),
    );
    expect(Object.keys(doc.paths['/api/v1/agents']!).sort()).toEqual(['get', 'post']);
    expect(Object.keys(doc.paths['/api/v1/agents/{name}']!).sort()).toEqual(['delete', 'get', 'put']);
    for (const [path, method] of [
      ['/api/v1/agents', 'post'],
      ['/api/v1/agents/validate', 'post'],
      ['/api/v1/agents/{name}', 'put'],
    ] as const) {
      const body = doc.paths[path]![method]!.requestBody;
      expect(body, `${method} ${path} requestBody`).toBeDefined();
      expect(Object.keys(body!.content).sort()).toEqual(['application/json', 'application/toml', 'text/markdown']);
    }
    // The JSON body is described by the agent schema
    const jsonSchema = doc.paths['/api/v1/agents']!.post!.requestBody!.content['application/json'] as {
      schema: { properties?: Record<string, unknown>; required?: string[] };
    };
    expect(Object.keys(jsonSchema.schema.properties ?? {})).toEqual(
      expect.arrayContaining(['name', 'system_prompt', 'capabilities', 'tools', 'wasm']),
    );
    // A system prompt is required unless a WebAssembly module answers instead (checked after the schema).
    expect(jsonSchema.schema.required).toEqual(['name']);
    expect(Object.keys(doc.paths['/api/v1/agents']!.post!.responses ?? {})).toEqual(
      expect.arrayContaining(['201', '409', '413', '415', '422']),
    );
    // Every operation's path is one the server actually answers (not 404 route_not_found)
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) {
        if ((path.endsWith('/events') || path.endsWith('/stream')) && !path.includes('{')) {
          // An endless event stream (e.g. /api/v1/directory/events): check the status, then hang up.
          const ac = new AbortController();
          const res = await fetch(t.url + path, { method: method.toUpperCase(), signal: ac.signal });
          expect(res.status, `${method} ${path}`).toBe(200);
          ac.abort();
          continue;
        }
        const probe = await http(t.url, method.toUpperCase(), path.replace('{name}', 'nobody'));
        expect(probe.status, `${method} ${path}`).not.toBe(500);
        expect((probe.json as { error?: { code: string } } | undefined)?.error?.code, `${method} ${path}`).not.toBe(
          'route_not_found',
        );
      }
    }
  });

  it('GET /metrics on the metrics server counts API requests', async () => {
    expect(t.server.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect((await postAgent(t.url, tomlAgent('metered'))).status).toBe(201);
    expect((await getJson(t.url, '/api/v1/agents/nobody')).status).toBe(404);
    const res = await fetch(t.server.metricsUrl!);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('# TYPE caxton_http_requests_total counter');
    expect(text).toMatch(/caxton_http_requests_total\{method="POST",route="\/api\/v1\/agents",status="201"\} 1/);
    expect(text).toMatch(
      /caxton_http_requests_total\{method="GET",route="\/api\/v1\/agents\/:name",status="404"\} \d+/,
    );
    expect(text).toMatch(/caxton_agents_deployed\{origin="api"\} 1/);
    expect(text).toMatch(/caxton_errors_total\{code="agent_not_found"\} \d+/);
    // the metrics port serves only /metrics
    expect((await fetch(t.server.metricsUrl!.replace('/metrics', '/other'))).status).toBe(404);
  });

  it('caxton_agents_deployed follows deploys, updates and removals', async () => {
    const gauge = async () =>
      Number(
        /caxton_agents_deployed\{origin="api"\} (\d+)/.exec(await (await fetch(t.server.metricsUrl!)).text())?.[1],
      );
    const before = await gauge();
    expect((await postAgent(t.url, tomlAgent('gauged'))).status).toBe(201);
    expect(await gauge()).toBe(before + 1);
    expect((await putAgent(t.url, 'gauged', tomlAgent('gauged', 'version = "2.0.0"\n'))).status).toBe(200);
    expect(await gauge()).toBe(before + 1);
    expect((await http(t.url, 'DELETE', '/api/v1/agents/gauged')).status).toBe(204);
    expect(await gauge()).toBe(before);
  });
});
