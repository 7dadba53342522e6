/**
 * Deploying an agent that names a provider the server cannot resolve is accepted with a warning in
 * the deploy/validate response and a warn log line — for the API and for agents_dir files alike.
 * A tool that resolves to nothing is an error (422, the file not loaded), except in a Claude Code
 * file, which loads with a warning as Claude Code ignores tools it does not know. A tool of a
 * configured MCP server that has not connected resolves (its tools arrive when it connects).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/index.js';
import { startServer, type CaxtonServer } from '../../src/server/index.js';
import { localAuthUnlessConfigured } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

const TOML = `[llm]\ndefault_provider = "main"\n[llm.providers.main]\ntype = "scripted"\nscript = "replies.toml"\n\n[mcp_servers.later]\ncommand = "${join('/nonexistent', 'mcp-server')}"\n`;

const agent = (name: string, extra: string) =>
  `name = "${name}"\ndescription = "deploy warnings ${name}"\ncapabilities = ["testing"]\nsystem_prompt = "You are ${name}."\n${extra}`;

let server: CaxtonServer;
let dir: string;
const lines: Record<string, unknown>[] = [];

interface Warning {
  code: string;
  field?: string;
  message: string;
  suggestion?: string;
}

beforeAll(async () => {
  dir = makeTempDir('caxton-deploy-warnings-');
  writeFileSync(join(dir, 'replies.toml'), 'fallback = "ok"\n');
  writeFileSync(join(dir, 'caxton.toml'), TOML);
  const config = localAuthUnlessConfigured(
    loadServerConfig({ file: join(dir, 'caxton.toml'), env: {}, cwd: dir, flags: { port: 0, metricsPort: 0 } }),
    TOML,
  );
  const { mkdirSync } = await import('node:fs');
  mkdirSync(config.agents_dir, { recursive: true });
  writeFileSync(join(config.agents_dir, 'at-start.toml'), agent('at-start', 'tools = ["calculater"]\n'));
  const logger = createLogger('info', {
    write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>),
  });
  server = await startServer({ config, logger });
});

afterAll(async () => {
  await server?.close();
  removeTempDirs();
});

async function post(
  path: string,
  body: string,
): Promise<{ status: number; json: { warnings: Warning[]; valid?: boolean } }> {
  const res = await fetch(`${server.url}/api/v1${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/toml' },
    body,
  });
  return { status: res.status, json: (await res.json()) as { warnings: Warning[] } };
}

describe('deploy-time warnings', () => {
  it('an unknown [llm] provider and fallback: deployed, with provider_unresolved warnings naming field and fix', async () => {
    const r = await post('/agents', agent('lost', '[llm]\nprovider = "mian"\nfallbacks = ["main", "backup"]\n'));
    expect(r.status).toBe(201);
    const w = r.json.warnings.filter((x) => x.code === 'provider_unresolved');
    expect(w.map((x) => x.field)).toEqual(['llm.provider', 'llm.fallbacks.1']);
    expect(w[0]!.message).toContain('"mian"');
    expect(w[0]!.message).toContain('did you mean "main"');
    expect(w[0]!.suggestion).toContain('[llm.providers.mian]');
    await waitUntil(() => lines.some((l) => l.code === 'provider_unresolved' && l.agent === 'lost'), {
      what: 'a warn line for the API deploy',
    });
  });

  it('validate reports the same warnings', async () => {
    const r = await post('/agents/validate', agent('lost-too', '[llm]\nprovider = "nowhere"\n'));
    expect(r.status).toBe(200);
    expect(r.json.valid).toBe(true);
    expect(r.json.warnings.map((x) => x.code)).toContain('provider_unresolved');
  });

  it('an unknown tool: 422 tool_unresolved with a guess; built-ins, host tools, bare server names and a configured MCP server that has not connected resolve', async () => {
    const body = agent(
      'tooly',
      'tools = ["calculator", "send_message", "calculater", "nosuch.thing", "nosuch.*", "later.anything", "later.*", "later", "llm"]\n',
    );
    const r = await post('/agents', body);
    expect(r.status).toBe(422);
    const errors = (r.json as unknown as { error: { details: { errors: Warning[] } } }).error.details.errors.filter(
      (x) => x.code === 'tool_unresolved',
    );
    expect(errors.map((x) => x.field)).toEqual(['tools.2', 'tools.3', 'tools.4']);
    expect(errors[0]!.message).toContain('did you mean "calculator"');
    expect(errors[1]!.suggestion).toContain('[mcp_servers.nosuch]');
    const v = await post('/agents/validate', body);
    expect(v.status).toBe(200);
    expect(v.json.valid).toBe(false);
    const fixed = await post(
      '/agents',
      agent('tooly', 'tools = ["calculator", "send_message", "later.anything", "later.*", "later", "llm"]\n'),
    );
    expect(fixed.status).toBe(201);
    expect(fixed.json.warnings.filter((x) => x.code === 'tool_unresolved')).toEqual([]);
  });

  it('a Claude Code file naming a tool nothing offers deploys with a warning instead', async () => {
    const res = await fetch(`${server.url}/api/v1/agents`, {
      method: 'POST',
      headers: { 'content-type': 'text/markdown' },
      body: '---\nname: claudish\ndescription: d\ntools: calculater, mcp__github__create_issue\n---\nHi.\n',
    });
    expect(res.status).toBe(201);
    const w = ((await res.json()) as { warnings: Warning[] }).warnings.filter((x) => x.code === 'tool_unresolved');
    expect(w.map((x) => x.field)).toEqual(['tools.0', 'tools.1']);
    expect(w[0]!.message).toContain('did you mean "calculator"');
    expect(w[0]!.message).toContain('as Claude Code ignores tools it does not know');
    expect(w[1]!.suggestion).toContain('[mcp_servers.github]');
  });

  it('an agents_dir file naming an unknown tool is not loaded: its status says why, and the log', async () => {
    await waitUntil(
      () => lines.some((l) => l.code === 'tool_unresolved' && l.agent === 'at-start' && l.level === 'error'),
      { what: 'an error line for the file loaded at start' },
    );
    const start = server.service.files.fileStatuses().find((s) => s.path.endsWith('at-start.toml'));
    expect(start?.state).toBe('invalid');
    expect(start?.errors?.[0]?.message).toContain('did you mean "calculator"');
    expect(server.registry.get('at-start')).toBeUndefined();
  });

  it('an agents_dir file: a provider warning is in its file status and the log, on change', async () => {
    writeFileSync(join(server.config.agents_dir, 'later.toml'), agent('from-file', '[llm]\nprovider = "elsewhere"\n'));
    await waitUntil(
      () => lines.some((l) => l.code === 'provider_unresolved' && l.agent === 'from-file' && l.level === 'warn'),
      { what: 'a warn line for the changed file' },
    );
    const status = server.service.files.fileStatuses().find((s) => s.path.endsWith('later.toml'));
    expect(status?.state).toBe('loaded');
    expect(status?.errors?.map((e) => e.code)).toContain('provider_unresolved');
  });
});
