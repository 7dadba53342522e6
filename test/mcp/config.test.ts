/** `[mcp_servers.NAME]` and `[mcp]` in caxton.toml. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadServerConfig } from '../../src/config/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

afterAll(() => removeTempDirs());

function load(toml: string) {
  const dir = makeTempDir('caxton-mcp-config-');
  const file = join(dir, 'caxton.toml');
  writeFileSync(file, toml);
  return loadServerConfig({ file, env: {} });
}

function issues(toml: string): string[] {
  try {
    load(toml);
  } catch (e) {
    if (e instanceof ConfigError)
      return e.issues.map((i) => `${i.field}: ${i.message}${i.line !== undefined ? ` @${i.line}` : ''}`);
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('mcp configuration', () => {
  it('parses stdio and HTTP servers with defaults', () => {
    const c = load(`
[mcp_servers.fs]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
env = { DEBUG = "1" }

[mcp_servers.remote]
url = "http://127.0.0.1:3001/mcp"
headers = { Authorization = "Bearer x" }
timeout = "5s"
connect_timeout = "2m"
enabled = false
`);
    expect(c.mcp_servers.fs).toEqual({
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-filesystem', '/tmp'],
      env: { DEBUG: '1' },
      headers: {},
      timeout: 60_000,
      enabled: true,
      gateway: false,
    });
    expect(c.mcp_servers.remote).toMatchObject({
      url: 'http://127.0.0.1:3001/mcp',
      timeout: 5000,
      connect_timeout: 120_000,
      enabled: false,
      args: [],
    });
    expect(c.mcp).toEqual({
      enabled: true,
      builtin_tools: ['calculator', 'current_time'],
      host_tools: ['*'],
      agents: ['*'],
      run_tools: false,
      timeout: 120_000,
    });
  });

  it('no section: no servers', () => {
    expect(load('').mcp_servers).toEqual({});
  });

  it('needs exactly one of command and url', () => {
    expect(issues('[mcp_servers.x]\ncommand = "a"\nurl = "http://127.0.0.1/mcp"\n')).toEqual([
      expect.stringMatching(/^mcp_servers\.x: an MCP server needs exactly one of "command" \(stdio\) or "url"/),
    ]);
    expect(issues('[mcp_servers.x]\ntimeout = "1s"\n')).toEqual([expect.stringMatching(/exactly one of "command"/)]);
  });

  it('refuses names with dots, unknown keys and bad URLs, with the line', () => {
    expect(issues('[mcp_servers."a.b"]\ncommand = "x"\n')[0]).toMatch(/no dots/);
    expect(issues('[mcp_servers.x]\ncommand = "x"\ncomand = "y"\n')[0]).toMatch(
      /^mcp_servers\.x\.comand: unknown configuration key "comand" in \[mcp_servers\.x\] @3/,
    );
    expect(issues('[mcp_servers.x]\nurl = "not a url"\n')[0]).toMatch(/^mcp_servers\.x\.url: expected a URL/);
  });

  it('[mcp_servers.NAME.oauth]: defaults, a registered client, client_credentials', () => {
    const c = load(`
[mcp_servers.dyn]
url = "https://mcp.example.com/mcp"
[mcp_servers.dyn.oauth]

[mcp_servers.reg]
url = "https://wiki.example.com/mcp"
[mcp_servers.reg.oauth]
client_id = "caxton"
client_secret_env = "WIKI_SECRET"
redirect_port = 33418
scopes = ["read", "write"]

[mcp_servers.m2m]
url = "https://billing.example.com/mcp"
[mcp_servers.m2m.oauth]
grant = "client_credentials"
client_id = "caxton"
client_secret_env = "BILLING_SECRET"
`);
    expect(c.mcp_servers.dyn!.oauth).toEqual({ grant: 'authorization_code', scopes: [], client_name: 'Caxton' });
    expect(c.mcp_servers.reg!.oauth).toEqual({
      grant: 'authorization_code',
      client_id: 'caxton',
      client_secret_env: 'WIKI_SECRET',
      redirect_port: 33418,
      scopes: ['read', 'write'],
      client_name: 'Caxton',
    });
    expect(c.mcp_servers.m2m!.oauth).toMatchObject({ grant: 'client_credentials', client_id: 'caxton' });
  });

  it('[mcp_servers.NAME.oauth]: refused on stdio, a secret without client, a registered code client without redirect_port, an unknown grant', () => {
    expect(issues('[mcp_servers.x]\ncommand = "a"\n[mcp_servers.x.oauth]\n')[0]).toMatch(
      /^mcp_servers\.x\.oauth: .*needs "url"/,
    );
    expect(
      issues('[mcp_servers.x]\nurl = "https://a.example/mcp"\n[mcp_servers.x.oauth]\nclient_secret_env = "S"\n')[0],
    ).toMatch(/client_secret_env needs client_id/);
    expect(
      issues('[mcp_servers.x]\nurl = "https://a.example/mcp"\n[mcp_servers.x.oauth]\nclient_id = "c"\n')[0],
    ).toMatch(/^mcp_servers\.x\.oauth\.redirect_port: a registered client/);
    expect(
      issues('[mcp_servers.x]\nurl = "https://a.example/mcp"\n[mcp_servers.x.oauth]\ngrant = "password"\n')[0],
    ).toMatch(/^mcp_servers\.x\.oauth\.grant/);
  });
});
