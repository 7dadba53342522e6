import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { agentFilesIn, detectFormat, duplicateNameIssue, parseAgent } from '../../agents/index.js';
import type { SourceIssue } from '../../shared/issues.js';
import { ApiError, type ApiClient } from '../api-client.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { issuesText, table, truncate, type Output } from '../output.js';
import { registerAgentVersionCommands } from './agent-versions-command.js';
import { registerRun } from './run-command.js';

interface AgentSummary {
  name: string;
  version: string;
  description: string;
  capabilities: string[];
  tools: string[];
  format: string;
  origin: { kind: 'file'; path: string } | { kind: 'api' } | { kind: 'a2a'; url: string };
  revision: number;
  updated_at: string;
}

const CONTENT_TYPES: Record<string, string> = {
  toml: 'application/toml',
  markdown: 'text/markdown',
  json: 'application/json',
};

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function readAgentFile(file: string): Buffer {
  try {
    if (statSync(file).isDirectory())
      throw new CliError(`${file} is a directory; pass agent files (e.g. ${file}/*.toml)`);
    return readFileSync(file);
  } catch (e) {
    if (e instanceof CliError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (code ?? String(e))}`);
  }
}

function progress(total: number, out: Output): { tick(): void; stop(): void } {
  if (out.json || total < 5 || !process.stderr.isTTY) return { tick() {}, stop() {} };
  const bar = new SingleBar({
    format: 'deploying [{bar}] {value}/{total} agents',
    stream: process.stderr,
    hideCursor: true,
  });
  bar.start(total, 0);
  return { tick: () => bar.increment(), stop: () => bar.stop() };
}

export function registerAgentCommands(program: Command, ctx: CliContext): void {
  const agent = program.command('agent').description('deploy, validate, list, show, run and remove agents');
  registerRun(agent, ctx);

  registerAgentValidate(agent, ctx);
  registerAgentDeploy(agent, ctx);
  registerAgentList(agent, ctx);
  registerAgentShow(agent, ctx);
  registerAgentVersionCommands(agent, ctx);
  registerAgentRemove(agent, ctx);
}

/** `caxton agent validate`: agent files checked locally, without a server. */
function registerAgentValidate(agent: Command, ctx: CliContext): void {
  agent
    .command('validate')
    .description(
      "check agent files offline (no server needed); prints every error with file, line and column. Tool names are checked against the built-in tools and the servers caxton.toml names (--config, else $CAXTON_CONFIG, else ./caxton.toml, else one beside the files' folder)",
    )
    .argument('<file...>', 'agent files (.toml, .md or .json), or folders of them (as agents_dir is read)')
    .option('--config <file>', 'the caxton.toml whose servers, providers and models the agents may name')
    .action(async (given: string[], opts: { config?: string }) => {
      const out = ctx.output();
      // Each file with the folder it is loaded from: a folder given, else the file's own.
      const roots = new Map<string, string>();
      const files = given.flatMap((f) => {
        if (!isDirectory(f)) {
          roots.set(f, resolve(dirname(f)));
          return [f];
        }
        const found = agentFilesIn(f);
        if (found.length === 0) throw new CliError(`${f} holds no agent files (.toml, .md or .json)`);
        for (const x of found) roots.set(x, resolve(f));
        return found;
      });
      // Loaded here only: the tool catalogue reads the built-in tool manifests.
      const { findProjectConfig, offlineChecker } = await import('../offline-checks.js');
      const checker = offlineChecker(findProjectConfig(files, opts.config));
      const results = files.map((file) => {
        const r = parseAgent(readAgentFile(file), { file });
        if (!r.ok) return { file, valid: false, format: r.format, errors: r.errors, warnings: r.warnings };
        const found = checker.check(r.definition, file);
        const errors = found.filter((i) => i.severity === 'error');
        const warnings = [...r.warnings, ...found.filter((i) => i.severity !== 'error')];
        return errors.length > 0
          ? { file, valid: false, format: r.format, name: r.definition.name as string, errors, warnings }
          : {
              file,
              valid: true,
              format: r.format,
              name: r.definition.name as string,
              errors: [] as SourceIssue[],
              warnings,
            };
      });
      // Names are one per agents_dir, as the server loads a folder: the first file of a name keeps it.
      const holders = new Map<string, string>();
      for (const r of results) {
        if (!r.valid || r.name === undefined) continue;
        const key = `${roots.get(r.file) ?? ''}\0${r.name.toLowerCase()}`;
        const holder = holders.get(key);
        if (holder === undefined) holders.set(key, r.file);
        else Object.assign(r, { valid: false, errors: [duplicateNameIssue(r.file, r.name, `the file ${holder}`)] });
      }
      const invalid = results.filter((r) => !r.valid).length;
      if (out.json) out.data({ valid: invalid === 0, config: checker.configFile ?? null, files: results });
      else {
        for (const r of results) {
          if (r.valid) out.out(`ok       ${r.file} (${r.name}, ${r.format})`);
          else out.err(`invalid  ${r.file}`);
          if (r.errors.length) out.err(issuesText(r.errors).replace(/^/gm, '  '));
          if (r.warnings.length) out.err(issuesText(r.warnings).replace(/^/gm, '  '));
        }
        out.out(`${results.length - invalid} valid, ${invalid} invalid`);
      }
      if (invalid > 0) process.exitCode = 1;
    });
}

/** `caxton agent deploy`: agent files to the server, directly or beside the live version. */
function registerAgentDeploy(agent: Command, ctx: CliContext): void {
  agent
    .command('deploy')
    .description('deploy agent files to the server (an agent already deployed through the API is updated)')
    .argument('<file...>', 'agent files (.toml, .md or .json)')
    .option('--no-update', 'fail instead of updating an agent that already exists')
    .option(
      '--strategy <strategy>',
      'direct (live at once), blue-green (beside the live version, reachable as NAME@VERSION until `caxton agent promote NAME`), canary (blue-green plus a rising share of new conversations, promoted or rolled back by its figures) or shadow (blue-green plus a copy of every live request; answers compared, never returned); default: the file’s [rollout] strategy, else direct',
    )
    .option('--stages <percents>', 'canary: share of new conversations per stage, rising to 100 (default 5,25,50,100)')
    .option('--hold <duration>', 'canary: how long each stage runs at least (default 60s)')
    .option('--min-requests <n>', 'canary: candidate executions per stage before it is judged (default 20)')
    .option(
      '--max-error-rate-increase <fraction>',
      'canary: error-rate increase over the stable version that rolls back (default 0.05)',
    )
    .option(
      '--max-latency-ratio <ratio>',
      'canary: p99 latency ratio to the stable version that rolls back (default 2)',
    )
    .action((files: string[], opts: DeployOptions) => deployAgents(ctx, files, opts));
}

type DeployStrategy = 'direct' | 'blue-green' | 'canary' | 'shadow';

interface DeployOptions {
  update: boolean;
  strategy?: string;
  stages?: string;
  hold?: string;
  minRequests?: string;
  maxErrorRateIncrease?: string;
  maxLatencyRatio?: string;
}

interface DeployResult {
  file: string;
  ok: boolean;
  name?: string;
  action?: 'created' | 'updated' | 'unchanged' | 'blue-green' | 'canary' | 'shadow';
  revision?: number;
  version?: number;
  error?: ApiError['body']['error'] | { code: string; message: string };
  warnings?: SourceIssue[];
}

interface DeployAnswer {
  agent: { name: string; revision: number };
  warnings: SourceIssue[];
  version?: number;
  unchanged?: boolean;
  message?: string;
  rollout?: {
    candidate_version: number;
    strategy: 'blue-green' | 'canary' | 'shadow';
    state: string;
    reason: string | null;
  };
}

/** The strategy and the query string its flags make; a canary flag without --strategy canary is refused. */
function deployQuery(opts: DeployOptions): { strategy: DeployStrategy; query: URLSearchParams } {
  if (opts.strategy !== undefined && !['direct', 'blue-green', 'canary', 'shadow'].includes(opts.strategy))
    throw new CliError(`--strategy must be "direct", "blue-green", "canary" or "shadow", got "${opts.strategy}"`);
  const strategy = (opts.strategy ?? 'direct') as DeployStrategy;
  const query = new URLSearchParams({ strategy });
  for (const [k, v] of [
    ['stages', opts.stages],
    ['hold', opts.hold],
    ['min_requests', opts.minRequests],
    ['max_error_rate_increase', opts.maxErrorRateIncrease],
    ['max_latency_ratio', opts.maxLatencyRatio],
  ] as const) {
    if (v === undefined) continue;
    if (opts.strategy !== 'canary') throw new CliError(`--${k.replace(/_/g, '-')} applies to --strategy canary only`);
    query.set(k, v);
  }
  return { strategy, query };
}

async function deployAgents(ctx: CliContext, files: string[], opts: DeployOptions): Promise<void> {
  const { strategy, query } = deployQuery(opts);
  const out = ctx.output();
  const client = ctx.client();
  const bar = progress(files.length, out);
  const results: DeployResult[] = [];
  for (const file of files) {
    results.push(await deployFile(client, file, strategy, query, opts));
    bar.tick();
  }
  bar.stop();
  const failed = results.filter((r) => !r.ok).length;
  if (out.json) out.data({ deployed: results.length - failed, failed, results });
  else printDeployed(out, files, results, failed);
  if (failed > 0) process.exitCode = 1;
}

/** A rollout its [[rollout.checks]] rolled back before it started: a failure, with the reason. */
function endedAtOnce(file: string, res: DeployAnswer): DeployResult | undefined {
  if (res.rollout?.state !== 'rolled_back') return undefined;
  return {
    file,
    ok: false,
    name: res.agent.name,
    error: {
      code: 'rollout_check_failed',
      message: `version ${res.version ?? '?'} of ${res.agent.name} was recorded, but its rollout was rolled back: ${res.rollout.reason ?? ''}`,
    },
  };
}

/** One file deployed; an API refusal is its failed result, anything else is thrown. */
async function deployFile(
  client: ApiClient,
  file: string,
  strategy: DeployStrategy,
  query: URLSearchParams,
  opts: DeployOptions,
): Promise<DeployResult> {
  const body = readAgentFile(file);
  const contentType = CONTENT_TYPES[detectFormat(file, body.subarray(0, 64).toString('utf8'))]!;
  try {
    let res: DeployAnswer;
    let action: 'created' | 'updated' | 'unchanged' | 'blue-green' | 'canary' | 'shadow' = 'created';
    if (strategy !== 'direct') {
      // Beside a live version: the agent must exist, so it goes straight to PUT (the name from the file).
      const parsed = parseAgent(body, { file });
      if (!parsed.ok)
        throw new ApiError(422, {
          error: {
            code: 'invalid_agent',
            message: `agent definition is invalid: ${parsed.errors[0]?.message ?? ''}`,
            details: { errors: parsed.errors },
            request_id: '',
          },
        });
      const name = encodeURIComponent(parsed.definition.name);
      res = (
        await client.request<DeployAnswer>('PUT', `/api/v1/agents/${name}?${query.toString()}`, {
          body,
          contentType,
        })
      ).data;
      return (
        endedAtOnce(file, res) ?? {
          file,
          ok: true,
          name: res.agent.name,
          action: res.unchanged === true ? 'unchanged' : strategy,
          revision: res.agent.revision,
          ...(res.version !== undefined && { version: res.version }),
          warnings: res.warnings,
        }
      );
    }
    try {
      res = (await client.request<DeployAnswer>('POST', '/api/v1/agents', { body, contentType })).data;
    } catch (e) {
      if (!(e instanceof ApiError) || e.body.error.code !== 'agent_exists' || !opts.update) throw e;
      const name = (e.body.error.details as { name: string }).name;
      // Without --strategy the server applies the file's [rollout] strategy, if it has one.
      const q = opts.strategy === 'direct' ? '?strategy=direct' : '';
      res = (
        await client.request<DeployAnswer>('PUT', `/api/v1/agents/${encodeURIComponent(name)}${q}`, {
          body,
          contentType,
        })
      ).data;
      action = res.unchanged === true ? 'unchanged' : (res.rollout?.strategy ?? 'updated');
    }
    return (
      endedAtOnce(file, res) ?? {
        file,
        ok: true,
        name: res.agent.name,
        action,
        revision: res.agent.revision,
        ...(res.version !== undefined && { version: res.version }),
        warnings: res.warnings,
      }
    );
  } catch (e) {
    if (e instanceof ApiError) return { file, ok: false, error: e.body.error };
    throw e;
  }
}

function printDeployed(out: Output, files: string[], results: DeployResult[], failed: number): void {
  for (const r of results) {
    if (r.ok && r.action === 'unchanged')
      out.out(`unchanged ${r.name}: ${r.file} is identical to version ${r.version ?? r.revision}; nothing deployed`);
    else if (r.ok && r.action === 'blue-green')
      out.out(
        `deployed ${r.name} version ${r.version} beside the live version (blue-green) from ${r.file}: try it as ${r.name}@${r.version}, then caxton agent promote ${r.name} (or caxton agent rollback ${r.name})`,
      );
    else if (r.ok && r.action === 'shadow')
      out.out(
        `deployed ${r.name} version ${r.version} as a shadow from ${r.file}: every live request is copied to it, its answers compared and never returned; see caxton agent rollout status ${r.name}`,
      );
    else if (r.ok && r.action === 'canary')
      out.out(
        `deployed ${r.name} version ${r.version} as a canary from ${r.file}: it takes its first stage's share of new conversations now; follow it with caxton agent rollout status ${r.name}`,
      );
    else if (r.ok)
      out.out(
        `${r.action === 'updated' ? 'updated ' : 'deployed'} ${r.name} (revision ${r.revision}${r.version !== undefined ? `, version ${r.version}` : ''}) from ${r.file}`,
      );
    else {
      out.err(`failed   ${r.file}: ${r.error?.message}`);
      const details = (r.error as { details?: { errors?: SourceIssue[] } }).details;
      if (details?.errors)
        out.err(issuesText(details.errors.map((i) => ({ ...i, file: r.file }))).replace(/^/gm, '  '));
    }
    if (r.warnings?.length) out.err(issuesText(r.warnings.map((i) => ({ ...i, file: r.file }))).replace(/^/gm, '  '));
  }
  if (files.length > 1) out.out(`${results.length - failed} deployed, ${failed} failed`);
}

/** `caxton agent list`. */
function registerAgentList(agent: Command, ctx: CliContext): void {
  agent
    .command('list')
    .description('list deployed agents')
    .option('-c, --capability <capability>', 'only agents providing this capability')
    .action(async (opts: { capability?: string }) => {
      const out = ctx.output();
      const q = new URLSearchParams({ limit: '10000' });
      if (opts.capability) q.set('capability', opts.capability);
      const res = await ctx.client().get<{ agents: AgentSummary[]; total: number }>(`/api/v1/agents?${q}`);
      if (out.json) return out.data(res);
      if (res.agents.length === 0)
        return out.out(opts.capability ? `no agent provides "${opts.capability}"` : 'no agents deployed');
      out.out(
        table(
          ['NAME', 'VERSION', 'CAPABILITIES', 'SOURCE', 'DESCRIPTION'],
          res.agents.map((a) => [
            a.name,
            a.version,
            truncate(a.capabilities.join(','), 40),
            a.origin.kind === 'a2a' ? 'remote (a2a)' : a.origin.kind,
            truncate(a.description, 60),
          ]),
        ),
      );
    });
}

/** `caxton agent show <name>`. */
function registerAgentShow(agent: Command, ctx: CliContext): void {
  agent
    .command('show')
    .description('show one agent in full')
    .argument('<name>', 'agent name')
    .action(async (name: string) => {
      const out = ctx.output();
      const a = await ctx.client().get<
        AgentSummary & {
          definition: Record<string, unknown> & {
            system_prompt: string;
            llm: Record<string, unknown>;
            memory: Record<string, unknown>;
            limits: Record<string, unknown>;
          };
          unresolved_tools?: { tool: string; message: string; suggestion?: string }[];
          ungranted_tools?: { tool: string; message: string; suggestion?: string }[];
          unlisted_tools?: { setting: 'granted' | 'none'; tools: string[] };
        }
      >(`/api/v1/agents/${encodeURIComponent(name)}`);
      if (out.json) return out.data(a);
      const d = a.definition;
      const unresolved = new Map((a.unresolved_tools ?? []).map((u) => [u.tool, u]));
      const ungranted = new Map((a.ungranted_tools ?? []).map((u) => [u.tool, u]));
      const tools = a.tools.map((t) =>
        unresolved.has(t) ? `${t} (unresolved)` : ungranted.has(t) ? `${t} (not granted)` : t,
      );
      const unlisted = a.unlisted_tools;
      const toolsLine = unlisted
        ? unlisted.setting === 'granted'
          ? `(no tools key: as in Claude Code, every tool this server grants; [agents.claude] unlisted_tools = "granted") ${unlisted.tools.join(', ')}`
          : '(no tools key: none, as [agents.claude] unlisted_tools = "none")'
        : tools.join(', ') || '(none)';
      out.out(
        [
          `name:         ${a.name}`,
          `version:      ${a.version}`,
          `description:  ${a.description}`,
          `capabilities: ${a.capabilities.join(', ')}`,
          `tools:        ${toolsLine}`,
          ...[...unresolved.values()].map(
            (u) => `  unresolved ${u.tool}: ${u.message}${u.suggestion ? ` (${u.suggestion})` : ''}`,
          ),
          ...[...ungranted.values()].map(
            (u) => `  not granted ${u.tool}: ${u.message}${u.suggestion ? ` (${u.suggestion})` : ''}`,
          ),
          ...droppedLine(d.metadata),
          `source:       ${a.origin.kind === 'file' ? `file ${a.origin.path}` : a.origin.kind === 'a2a' ? `remote A2A agent ${a.origin.url}` : 'api'} (${a.format}, revision ${a.revision}, updated ${a.updated_at})`,
          `llm:          ${JSON.stringify(d.llm)}`,
          `memory:       ${JSON.stringify(d.memory)}`,
          `limits:       ${JSON.stringify(d.limits)}`,
          '',
          'system prompt:',
          d.system_prompt.replace(/^/gm, '  '),
        ].join('\n'),
      );
    });
}

/** `caxton agent remove <name>`. */
function registerAgentRemove(agent: Command, ctx: CliContext): void {
  agent
    .command('remove')
    .alias('rm')
    .description('remove an agent deployed through the API')
    .argument('<name>', 'agent name')
    .action(async (name: string) => {
      const out = ctx.output();
      await ctx.client().request('DELETE', `/api/v1/agents/${encodeURIComponent(name)}`);
      if (out.json) out.data({ removed: name });
      else out.out(`removed ${name}`);
    });
}

/** The Claude Code tools an agent file lists that Caxton does not offer (metadata.claude_tools_dropped), as a line of `agent show`. */
function droppedLine(metadata: unknown): string[] {
  const dropped = (metadata as { claude_tools_dropped?: unknown } | undefined)?.claude_tools_dropped;
  if (!Array.isArray(dropped) || dropped.length === 0) return [];
  return [`  not offered (Claude Code tools with no Caxton counterpart): ${dropped.join(', ')}`];
}
