import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parse as parseToml } from 'smol-toml';
import type { SourceIssue } from '../../shared/issues.js';
import type { CliContext } from '../context.js';
import { CliError, usageError } from '../errors.js';
import { issuesText, table, truncate } from '../output.js';

const MANIFEST_FILE = 'caxton-tool.toml';

interface McpStatusJson {
  transport: string;
  target: string;
  state: string;
  last_error: string | null;
  last_error_at: string | null;
  connected_at: string | null;
  attempts: number;
  next_retry_at: string | null;
  reconnects: number;
  server_info: { name: string; version: string } | null;
  conflicts: string[];
}

interface ServerSummaryJson {
  name: string;
  /** Absent from older servers, which had only WebAssembly tool servers. */
  kind?: 'wasm' | 'javascript' | 'mcp' | 'builtin' | 'host';
  version: string | null;
  description: string | null;
  origin: 'builtin' | 'api' | 'config' | 'host';
  state: string;
  error: string | null;
  tools: string[];
  deployed_at: string | null;
  mcp?: McpStatusJson;
}

interface ServerViewJson extends ServerSummaryJson {
  tool_specs: {
    name: string;
    description: string;
    input_schema: Record<string, unknown>;
    output_schema?: Record<string, unknown>;
  }[];
  limits: Record<string, number> | null;
  permissions: {
    allowed_hosts: { requested: string[]; granted: string[] };
    paths: { requested: Record<string, string>; granted: Record<string, string> };
    databases: { requested: string[]; granted: Record<string, string> };
    config: { declared: string[]; granted: string[] };
  } | null;
  warnings: SourceIssue[];
  digest: string | null;
  module_bytes: number | null;
  stats: { calls: number; failures: number; instantiations: number; memory_bytes: number } | null;
  path: string | null;
}

interface CallJson {
  tool: string;
  content: string;
  is_error: boolean;
  outcome: string;
  duration_us: number;
  fuel_used: number;
  memory_bytes: number;
  execution_id: string;
  json?: unknown;
}

interface AuditJson {
  id: number;
  time: number;
  agent: string;
  conversation_id?: string;
  tool: string;
  args_digest: string;
  outcome: string;
  error?: string;
  duration_us: number;
  fuel_used: number;
  memory_bytes: number;
}

/** The manifest file and module bytes of a package given as its directory or its manifest. */
export function readPackage(path: string): {
  manifestFile: string;
  manifest: string;
  moduleFile: string;
  wasm: Buffer;
} {
  let file = resolve(path);
  let isDir: boolean;
  try {
    isDir = statSync(file).isDirectory();
  } catch {
    throw new CliError(`${path} does not exist`, {
      lines: [`give a tool package directory (holding ${MANIFEST_FILE}) or its ${MANIFEST_FILE}`],
    });
  }
  if (isDir) file = join(file, MANIFEST_FILE);
  let manifest: string;
  try {
    manifest = readFileSync(file, 'utf8');
  } catch {
    throw new CliError(`${file}: no tool manifest found`, {
      lines: [`a tool package directory holds ${MANIFEST_FILE} and its module (see templates/tool-assemblyscript/)`],
    });
  }
  // Only `module` (and `name`) are needed here; the server validates the whole manifest.
  let module: string | undefined;
  try {
    const doc = parseToml(manifest) as { module?: unknown; name?: unknown; runtime?: unknown };
    // The module: a .wasm, or a .js source (runtime "quickjs"), sent base64-encoded either way.
    module =
      typeof doc.module === 'string'
        ? doc.module
        : typeof doc.name === 'string'
          ? `${doc.name}.${doc.runtime === 'quickjs' ? 'js' : 'wasm'}`
          : undefined;
  } catch {
    module = undefined; // the server reports the syntax error with its line and column
  }
  if (module === undefined) return { manifestFile: file, manifest, moduleFile: '', wasm: Buffer.alloc(0) };
  const moduleFile = resolve(dirname(file), module);
  let wasm: Buffer;
  try {
    wasm = readFileSync(moduleFile);
  } catch {
    throw new CliError(`${file}: module file "${module}" not found (${moduleFile})`, {
      lines: ['build the package first (for the packages in this repository: npm run build:tools)'],
    });
  }
  return { manifestFile: file, manifest, moduleFile, wasm };
}

const ORIGINS: Record<string, (v: ServerViewJson) => string> = {
  builtin: (v) => `built-in${v.path ? ` (${v.path})` : ''}`,
  api: (v) => `deployed ${v.deployed_at ?? ''}`,
  config: () => 'caxton.toml [mcp_servers]',
  host: () => 'the server',
};

/** What a tool's short name is in a listing: SERVER.tool without the server, single names as they are. */
function shortName(server: ServerSummaryJson, tool: string): string {
  return tool.startsWith(`${server.name}.`) ? tool.slice(server.name.length + 1) : tool;
}

function describeServer(v: ServerViewJson): string {
  const lines = [
    `name:        ${v.name}`,
    `kind:        ${v.kind ?? 'wasm'}`,
    `version:     ${v.version ?? '-'}`,
    `origin:      ${(ORIGINS[v.origin] ?? (() => v.origin))(v)}`,
    `state:       ${v.state}${v.error && !v.mcp ? ` (${v.error})` : ''}`,
    `description: ${v.description ?? '-'}`,
  ];
  const m = v.mcp;
  if (m) {
    lines.push(
      `connection:  ${m.transport} ${m.target}${m.server_info ? ` (${m.server_info.name} ${m.server_info.version})` : ''}`,
    );
    lines.push(
      `connected:   ${m.connected_at ?? 'never'}; reconnects ${m.reconnects}; failed attempts ${m.attempts}${m.next_retry_at ? `; next attempt ${m.next_retry_at}` : ''}`,
    );
    lines.push(
      `last error:  ${m.last_error ? `${m.last_error}${m.last_error_at ? ` (${m.last_error_at})` : ''}` : '-'}`,
    );
    if (m.conflicts.length > 0)
      lines.push(`conflicts:   ${m.conflicts.join(', ')} (names taken by other tools; not registered)`);
  }
  if (v.digest) lines.push(`module:      ${v.module_bytes ?? 0} bytes, sha256 ${v.digest}`);
  if (v.tool_specs.length > 0) {
    lines.push('tools:');
    for (const t of v.tool_specs) lines.push(`  ${t.name}  ${truncate(t.description, 100)}`);
  }
  if (v.limits) {
    const l = v.limits;
    lines.push(
      `limits:      memory ${l.memory} B, fuel ${l.fuel}, timeout ${l.timeout_ms} ms, input ${l.max_input} B, output ${l.max_output} B, state ${l.max_state} B`,
    );
  }
  const p = v.permissions;
  if (p) {
    const pairs = (o: Record<string, string>) =>
      Object.entries(o)
        .map(([k, x]) => `${k} → ${x}`)
        .join(', ') || '(none)';
    const reqPaths = Object.entries(p.paths.requested)
      .map(([k, x]) => `${k} (${x})`)
      .join(', ');
    if (p.allowed_hosts.requested.length > 0 || p.allowed_hosts.granted.length > 0)
      lines.push(
        `hosts:       requested ${p.allowed_hosts.requested.join(', ') || '(none)'}; granted ${p.allowed_hosts.granted.join(', ') || '(none)'}`,
      );
    if (reqPaths || Object.keys(p.paths.granted).length > 0)
      lines.push(`paths:       requested ${reqPaths || '(none)'}; granted ${pairs(p.paths.granted)}`);
    if (p.databases.requested.length > 0 || Object.keys(p.databases.granted).length > 0)
      lines.push(
        `databases:   requested ${p.databases.requested.join(', ') || '(none)'}; granted ${pairs(p.databases.granted)}`,
      );
    if (p.config.declared.length > 0)
      lines.push(
        `config:      declared ${p.config.declared.join(', ')}; granted ${p.config.granted.join(', ') || '(none)'}`,
      );
  }
  if (v.stats)
    lines.push(
      `stats:       ${v.stats.calls} calls, ${v.stats.failures} failed, ${v.stats.instantiations} instantiations, ${v.stats.memory_bytes} B memory`,
    );
  if (v.warnings.length > 0) lines.push('warnings:', issuesText(v.warnings).replace(/^/gm, '  '));
  return lines.join('\n');
}

function parseArgs(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw usageError(`--args is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw usageError('--args must be a JSON object, e.g. --args \'{"text": "a,b\\n1,2"}\'');
  return v as Record<string, unknown>;
}

const intOption = (name: string, min: number, max: number) => (v: string) => {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max)
    throw usageError(`${name} expects a whole number between ${min} and ${max}, got "${v}"`);
  return n;
};

export function registerToolCommands(program: Command, ctx: CliContext): void {
  const tool = program
    .command('tool')
    .description(
      'every tool source (WebAssembly and JavaScript tool servers, mounted MCP servers, built-in and host tools): list, show and call them; deploy and remove tool servers; read the audit log',
    );

  registerToolDeploy(tool, ctx);
  registerToolList(tool, ctx);
  registerToolShow(tool, ctx);
  registerToolCall(tool, ctx);
  registerToolRemove(tool, ctx);
  registerToolAudit(tool, ctx);
}

/** `caxton tool deploy`. */
function registerToolDeploy(tool: Command, ctx: CliContext): void {
  tool
    .command('deploy')
    .description(
      `deploy (or replace) a tool server package: its directory or its ${MANIFEST_FILE}, whose "module" names the built .wasm`,
    )
    .argument('<path>', `package directory or ${MANIFEST_FILE}`)
    .addHelpText(
      'after',
      '\nExit codes: 0 deployed, 1 refused (invalid manifest or module, name taken) or the server unreachable, 2 usage error.\nExample:\n  caxton tool deploy examples/tools/text',
    )
    .action(async (path: string) => {
      const out = ctx.output();
      const pkg = readPackage(path);
      const { status, data } = await ctx
        .client()
        .post<ServerViewJson>(
          '/api/v1/tools',
          { manifest: pkg.manifest, wasm: pkg.wasm.toString('base64') },
          { timeoutMs: 60_000 },
        );
      if (out.json) return out.data(data);
      out.out(
        `${status === 201 ? 'deployed' : 'replaced'} ${data.name} ${data.version ?? ''} (${data.tools.length} tool${data.tools.length === 1 ? '' : 's'}: ${data.tools.join(', ')})`,
      );
      if (data.warnings.length > 0) out.err(issuesText(data.warnings));
    });
}

/** `caxton tool list`. */
function registerToolList(tool: Command, ctx: CliContext): void {
  tool
    .command('list')
    .description(
      'list every tool source (tool servers, MCP servers, the builtin and host groups) with its kind, state and tools',
    )
    .option('--kind <kind>', 'only sources of this kind: wasm, javascript, mcp, builtin, host')
    .action(async (opts: { kind?: string }) => {
      const out = ctx.output();
      const KINDS = ['wasm', 'javascript', 'mcp', 'builtin', 'host'];
      if (opts.kind !== undefined && !KINDS.includes(opts.kind))
        throw usageError(`--kind expects one of ${KINDS.join(', ')}, got "${opts.kind}"`);
      let { servers } = await ctx.client().get<{ servers: ServerSummaryJson[] }>('/api/v1/tools');
      if (opts.kind !== undefined) servers = servers.filter((s) => (s.kind ?? 'wasm') === opts.kind);
      if (out.json) return out.data({ servers });
      if (servers.length === 0) return out.out('no tool sources');
      out.out(
        table(
          ['NAME', 'KIND', 'VERSION', 'ORIGIN', 'STATE', 'TOOLS', 'DESCRIPTION'],
          servers.map((s) => [
            s.name,
            s.kind ?? 'wasm',
            s.version ?? '-',
            s.origin,
            s.state,
            s.tools.map((t) => shortName(s, t)).join(', ') || '-',
            truncate(s.error ?? s.description ?? '', 60),
          ]),
        ),
      );
    });
}

/** `caxton tool show`. */
function registerToolShow(tool: Command, ctx: CliContext): void {
  tool
    .command('show')
    .description(
      "one tool source: its tools; a tool server's limits, permissions and stats; an MCP server's connection state, last error and reconnects",
    )
    .argument('<name>', 'tool server or MCP server name, or builtin / host')
    .action(async (name: string) => {
      const out = ctx.output();
      const v = await ctx.client().get<ServerViewJson>(`/api/v1/tools/${encodeURIComponent(name)}`);
      if (out.json) return out.data(v);
      out.out(describeServer(v));
    });
}

/** `caxton tool call`. */
function registerToolCall(tool: Command, ctx: CliContext): void {
  tool
    .command('call')
    .description(
      'call a tool directly, as agent "api" (audited like any call): a tool server\'s, an MCP server\'s, or a built-in or host tool',
    )
    .argument(
      '<tool>',
      'SERVER.tool (csv_parser.parse, think.sequentialthinking) or a single name (calculator, llm.chat, send_message)',
    )
    .option('--args <json>', 'the arguments, a JSON object (default {})')
    .option('--timeout <ms>', 'longest the call may take, milliseconds', intOption('--timeout', 1, 600_000))
    .addHelpText(
      'after',
      '\nExit codes: 0 the tool succeeded, 1 it failed (the reason is printed) or an API error, 2 usage error.\nExamples:\n  caxton tool call csv_parser.parse --args \'{"text": "city,temp\\nOslo,4\\n"}\'\n  caxton tool call calculator --args \'{"expression": "2+3"}\'',
    )
    .action(async (name: string, opts: { args?: string; timeout?: number }) => {
      const out = ctx.output();
      const dot = name.indexOf('.');
      if (dot === 0 || dot === name.length - 1 || name === '')
        throw usageError(
          `"${name}" is not a tool name: expected SERVER.tool (csv_parser.parse) or a single name (calculator)`,
        );
      const args = parseArgs(opts.args);
      // A single name is a built-in or host tool: the server reaches either through the "builtin" group.
      const [server, tname] = dot < 0 ? ['builtin', name] : [name.slice(0, dot), name.slice(dot + 1)];
      const path = `/api/v1/tools/${encodeURIComponent(server)}/${encodeURIComponent(tname)}/call`;
      const { data } = await ctx
        .client()
        .post<CallJson>(
          path,
          { args, ...(opts.timeout !== undefined && { timeout_ms: opts.timeout }) },
          { timeoutMs: (opts.timeout ?? 120_000) + 10_000 },
        );
      if (data.is_error) process.exitCode = 1;
      if (out.json) return out.data(data);
      if (data.is_error) {
        out.err(`error: ${data.content}`);
        return;
      }
      out.out(data.json !== undefined ? JSON.stringify(data.json, null, 2) : data.content);
    });
}

/** `caxton tool remove`. */
function registerToolRemove(tool: Command, ctx: CliContext): void {
  tool
    .command('remove')
    .description('remove a deployed tool server (built-in servers are disabled in caxton.toml instead)')
    .argument('<name>', 'tool server name')
    .action(async (name: string) => {
      const out = ctx.output();
      await ctx.client().request('DELETE', `/api/v1/tools/${encodeURIComponent(name)}`);
      if (out.json) out.data({ removed: name });
      else out.out(`removed ${name}`);
    });
}

/** `caxton tool audit`. */
function registerToolAudit(tool: Command, ctx: CliContext): void {
  tool
    .command('audit')
    .description('the audit log of tool calls (WebAssembly and MCP), newest first')
    .option('--agent <name>', 'calls made for this agent ("api": direct calls)')
    .option('--tool <name>', 'one tool (SERVER.tool) or a whole server (SERVER.*)')
    // Not --server: that is the global option naming the Caxton server to talk to.
    .option(
      '--tool-server <name>',
      'calls to the tools of this server (a tool server, an MCP server, or workspace, web, todo)',
    )
    .option('--conversation <id>', 'calls made in this conversation')
    .option('--principal <id>', 'calls made for this authenticated caller (key:ci...)')
    .option('--outcome <outcome>', 'ok, failed (anything but ok), denied, timeout, fuel_exhausted, ...')
    .option('--since <time>', 'ISO time, epoch ms, or a duration ago such as 15m')
    .option('--limit <n>', 'at most this many records (1-1000, default 50)', intOption('--limit', 1, 1000), 50)
    .addHelpText(
      'after',
      '\nExamples:\n  caxton tool audit --agent analyst --tool csv_parser.* --since 1h\n  caxton tool audit --tool-server workspace --outcome denied',
    )
    .action(
      async (opts: {
        agent?: string;
        tool?: string;
        toolServer?: string;
        conversation?: string;
        principal?: string;
        outcome?: string;
        since?: string;
        limit: number;
      }) => {
        const out = ctx.output();
        const q = new URLSearchParams();
        for (const k of ['agent', 'tool', 'conversation', 'principal', 'outcome', 'since'] as const)
          if (opts[k] !== undefined) q.set(k, opts[k]);
        if (opts.toolServer !== undefined) q.set('server', opts.toolServer);
        q.set('limit', String(opts.limit));
        const data = await ctx
          .client()
          .get<{ records: AuditJson[]; next_before_id: number | null }>(`/api/v1/tools/audit?${q.toString()}`);
        if (out.json) return out.data(data);
        if (data.records.length === 0) return out.out('no tool calls recorded');
        out.out(
          table(
            ['TIME', 'AGENT', 'TOOL', 'OUTCOME', 'MS', 'FUEL', 'ARGS', 'ERROR'],
            data.records.map((r) => [
              new Date(r.time).toISOString().replace('T', ' ').slice(0, 23),
              r.agent,
              r.tool,
              r.outcome,
              (r.duration_us / 1000).toFixed(2),
              String(r.fuel_used),
              r.args_digest.slice(0, 12),
              truncate(r.error ?? '', 60),
            ]),
          ),
        );
      },
    );
}
