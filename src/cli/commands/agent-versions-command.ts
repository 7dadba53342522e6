/**
 * `caxton agent history NAME`, `caxton agent diff NAME [A] [B]`, `caxton agent rollback NAME
 * [--to VERSION]`: an agent's versions through /api/v1/agents/{name}/versions, /diff
 * and /rollback.
 */
import type { Command } from 'commander';
import type { AgentVersion, CanaryStatus, Rollout, RolloutStatus, VersionDiff } from '../../agents/index.js';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { table } from '../output.js';
import { addWatchOptions, watchLoop, type WatchOptions } from '../watch.js';

// The API's answers are the domain types (src/api/routes/agent-versions-routes.ts checks its schemas against them).
type Version = AgentVersion;
type Diff = VersionDiff;

const path = (name: string, rest = '') => `/api/v1/agents/${encodeURIComponent(name)}${rest}`;

function versionNumber(text: string, what: string): number {
  const n = Number(text.replace(/^v/i, ''));
  if (!Number.isSafeInteger(n) || n < 1)
    throw new CliError(
      `${what} must be a version number such as 3 (caxton agent history NAME lists them), got "${text}"`,
    );
  return n;
}

/** One line for a changed field; long values are cut (the source diff below has them whole). */
function changeLine(c: Diff['changes'][number]): string {
  const show = (v: unknown) => {
    const t = JSON.stringify(v) ?? 'undefined';
    return t.length > 80 ? `${t.slice(0, 77)}...` : t;
  };
  if (!('from' in c)) return `  + ${c.field}: ${show(c.to)}`;
  if (!('to' in c)) return `  - ${c.field}: ${show(c.from)}`;
  return `  ~ ${c.field}: ${show(c.from)} → ${show(c.to)}`;
}

export function registerAgentVersionCommands(agent: Command, ctx: CliContext): void {
  agent
    .command('history')
    .description("an agent's versions, newest first: every deploy, file change and rollback")
    .argument('<name>', 'agent name')
    .option('-n, --limit <n>', 'at most this many versions', '50')
    .action(async (name: string, opts: { limit: string }) => {
      const out = ctx.output();
      const limit = Number(opts.limit);
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000)
        throw new CliError(`--limit must be a whole number from 1 to 1000, got "${opts.limit}"`);
      const res = await ctx
        .client()
        .get<{ agent: string; current: number | null; versions: Version[]; total: number }>(
          path(name, `/versions?limit=${limit}`),
        );
      if (out.json) return out.data(res);
      out.out(
        table(
          ['VERSION', 'DEPLOYED', 'HOW', 'BY', 'SEMVER', 'HASH'],
          res.versions.map((v) => [
            `${v.version}${v.version === res.current ? ' (current)' : ''}`,
            v.deployed_at.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
            v.how === 'rollback' && v.restored_from !== null
              ? `rollback to ${v.restored_from}`
              : v.how === 'file' && v.path
                ? `file ${v.path}`
                : v.how,
            v.deployed_by ?? '-',
            v.semver ?? '-',
            v.hash.slice(0, 12),
          ]),
        ),
      );
      if (res.total > res.versions.length)
        out.out(`(${res.versions.length} of ${res.total} versions; --limit for more)`);
      if (res.current === null) out.out(`${res.agent} is not deployed now`);
    });

  agent
    .command('diff')
    .description('what changed between two versions of an agent (default: the current one and the one before it)')
    .argument('<name>', 'agent name')
    .argument('[from]', 'the older version (default: the one before <to>)')
    .argument('[to]', 'the newer version (default: the current one)')
    .action(async (name: string, from: string | undefined, to: string | undefined) => {
      const out = ctx.output();
      const q = new URLSearchParams();
      if (from !== undefined) q.set('from', String(versionNumber(from, 'from')));
      if (to !== undefined) q.set('to', String(versionNumber(to, 'to')));
      const d = await ctx.client().get<Diff>(path(name, `/diff${q.size ? `?${q}` : ''}`));
      if (out.json) return out.data(d);
      if (d.identical && d.source_diff === '')
        return out.out(`${d.agent}: versions ${d.from} and ${d.to} are identical`);
      out.out(`${d.agent}: version ${d.from} → ${d.to}${d.identical ? ' (same definition, different text)' : ''}`);
      if (d.changes.length > 0) out.out(['fields:', ...d.changes.map(changeLine)].join('\n'));
      if (d.source_diff !== '') out.out(`\n${d.source_diff.trimEnd()}`);
    });

  agent
    .command('rollback')
    .description('deploy an earlier version of an API-deployed agent again, as a new version')
    .argument('<name>', 'agent name')
    .option('--to <version>', 'the version to restore (default: the newest whose content differs from the current one)')
    .action(async (name: string, opts: { to?: string }) => {
      const out = ctx.output();
      const body = opts.to !== undefined ? { to: versionNumber(opts.to, '--to') } : {};
      const res = (
        await ctx.client().request<{
          agent: { name: string };
          version: Version;
          restored: Version;
          warnings: { code: string; field: string; message: string }[];
          rollout?: Rollout;
        }>('POST', path(name, '/rollback'), {
          body: JSON.stringify(body),
          contentType: 'application/json',
        })
      ).data;
      if (out.json) return out.data(res);
      if (res.rollout)
        out.out(
          `rolled back the ${res.rollout.strategy} rollout of ${res.agent.name}: version ${res.rollout.candidate_version} gets no more traffic (NAME@VERSION still reaches it); version ${res.rollout.stable_version} stays live (now version ${res.version.version})`,
        );
      else
        out.out(
          `rolled back ${res.agent.name} to version ${res.restored.version} (deployed ${res.restored.deployed_at}); now version ${res.version.version}`,
        );
      for (const w of res.warnings) out.err(`  warning ${w.code} (${w.field}): ${w.message}`);
    });

  agent
    .command('promote')
    .description("make a running blue-green rollout's new version the live one")
    .argument('<name>', 'agent name')
    .action(async (name: string) => {
      const out = ctx.output();
      const res = (
        await ctx
          .client()
          .request<{ agent: { name: string }; rollout: Rollout; version: Version }>('POST', path(name, '/promote'), {
            body: '{}',
            contentType: 'application/json',
          })
      ).data;
      if (out.json) return out.data(res);
      out.out(
        `promoted ${res.agent.name}: version ${res.rollout.candidate_version} is live (recorded as version ${res.version.version}); version ${res.rollout.stable_version} is one rollback away`,
      );
    });

  const rollout = agent.command('rollout').description("an agent's rollouts");
  addWatchOptions(
    rollout
      .command('status')
      .description("the agent's running rollout, or its last one (--watch: refresh until it ends or Ctrl-C)")
      .argument('<name>', 'agent name'),
  ).action(async (name: string, opts: WatchOptions) => {
    const out = ctx.output();
    await watchLoop(opts, process.stdout.isTTY === true && !out.json, async (clear) => {
      const res = await ctx.client().get<RolloutResponse>(path(name, '/rollout'));
      if (out.json) {
        if (opts.watch) process.stdout.write(`${JSON.stringify(res)}\n`);
        else out.data(res);
        return res.running;
      }
      if (clear) process.stdout.write('\x1b[2J\x1b[H');
      out.out(rolloutText(res));
      // A watch ends with the rollout: its last state is what stays on the screen.
      return res.running;
    });
  });
}

/** GET /api/v1/agents/NAME/rollout. */
interface RolloutResponse extends RolloutStatus {
  agent: string;
  live_version: number | null;
}

function rolloutText(res: RolloutResponse): string {
  const r = res.rollout;
  if (!r) return `${res.agent}: no rollout yet; live version ${res.live_version ?? '(none)'}`;
  const lines = [
    `${res.agent}: ${r.strategy} rollout ${r.state === 'running' ? 'running' : r.state.replace('_', ' ')}`,
    `  live:      version ${res.live_version ?? '(none)'}`,
    `  stable:    version ${r.stable_version}`,
    `  candidate: version ${r.candidate_version}${r.state === 'running' ? ` (reachable as ${res.agent}@${r.candidate_version})` : ''}`,
    `  started:   ${r.started_at}${r.started_by ? ` by ${r.started_by}` : ''}`,
  ];
  lines.push(...detailLines(r, res));
  if (r.ended_at)
    lines.push(`  ended:     ${r.ended_at}${r.ended_by ? ` by ${r.ended_by}` : ''}${r.reason ? ` (${r.reason})` : ''}`);
  if (r.state === 'running')
    lines.push(`  next:      caxton agent promote ${res.agent}, or caxton agent rollback ${res.agent}`);
  return lines.join('\n');
}

/** A canary's stage and figures, a shadow's comparison. */
function detailLines(r: Rollout, status: Pick<RolloutStatus, 'canary' | 'shadow'>): string[] {
  const lines: string[] = [];
  const c = status.canary;
  if (c && r.plan) {
    const figures = (f: CanaryStatus['stable']) =>
      `${f.requests} executions, ${f.errors} failed (${Math.round(f.error_rate * 1000) / 10} %), p99 ${f.p99_ms === null ? '-' : `${Math.round(f.p99_ms)} ms`}`;
    lines.push(
      `  stage:     ${c.stage + 1} of ${r.plan.stages.length}: ${c.weight} % of new conversations to the candidate (stages ${r.plan.stages.join(', ')} %)`,
      `  candidate: ${figures(c.candidate)}`,
      `  stable:    ${figures(c.stable)}`,
      `  rules:     roll back above +${Math.round(r.plan.max_error_rate_increase * 1000) / 10} % errors or ${r.plan.max_latency_ratio}x p99; ${r.plan.min_requests} executions and ${r.plan.hold_ms / 1000} s per stage`,
      `  waiting:   ${c.waiting_for ?? 'judging now'} (hold ends ${c.hold_ends_at})`,
    );
  }
  const sh = status.shadow;
  if (sh) {
    const ms = (v: number | null) => (v === null ? '-' : `${Math.round(v)} ms`);
    lines.push(
      `  compared:  ${sh.compared} live requests copied to the candidate${sh.skipped > 0 ? ` (${sh.skipped} skipped: too many copies running)` : ''}`,
      `  agreement: ${sh.agreements} of ${sh.compared}${sh.agreement_rate === null ? '' : ` (${Math.round(sh.agreement_rate * 1000) / 10} %)`}; candidate errors: ${sh.candidate_errors}`,
      `  latency:   stable p50 ${ms(sh.stable.p50_ms)} / p99 ${ms(sh.stable.p99_ms)}; candidate p50 ${ms(sh.candidate.p50_ms)} / p99 ${ms(sh.candidate.p99_ms)}`,
      `  tokens:    stable ${sh.stable.tokens}, candidate ${sh.candidate.tokens}`,
    );
  }
  return lines;
}
