import type { Command } from 'commander';
import { loadServerConfig, redactSecrets } from '../../config/index.js';
import { stringify as tomlStringify } from 'smol-toml';
import { ApiError, type ApiClient } from '../api-client.js';
import { table } from '../output.js';
import { addWatchOptions, durationFlag, watchLoop } from '../watch.js';
import type { CliContext } from '../context.js';
import { addServerConfigOptions, serverLoadOptions } from './serve-command.js';

/** Configuration that will make work fail although the server serves. */
export interface Degraded {
  name: string;
  problem: string;
  fix: string;
}

/** GET /api/v1/status/overview. */
export interface Overview {
  version: string;
  uptime_seconds: number;
  ready: boolean;
  dependencies?: { name: string; ok: boolean; reason?: string }[];
  degraded?: Degraded[];
  time: string;
  metrics_enabled: boolean;
  agents: {
    total: number;
    from_files: number;
    from_api: number;
    capabilities: number;
    invalid_files: number;
    invalid_paths?: string[];
  };
  rates: {
    window_seconds: number;
    executions_per_second: number;
    messages_per_second: number;
    errors_per_second: number;
    execution_error_rate: number | null;
    message_error_rate: number | null;
    http_requests_per_second: number;
  };
  totals: { executions: number; execution_errors: number; messages: number; message_failures: number; errors: number };
  queue: {
    depth: number;
    queued: number;
    running: number;
    retrying: number;
    max_queue: number;
    open_conversations: number;
  } | null;
  dead_letters: number | null;
  memory?: { entities: number; relations: number; observations: number; database_bytes?: number };
  tool_servers: {
    total: number;
    loaded: number;
    failed: number;
    tools: number;
    servers: { name: string; origin: string; state: string; tools: number }[];
  } | null;
  tool_sources?: {
    total: number;
    by_kind: Record<string, number>;
    tools: number;
    unavailable: { name: string; kind: string; state: string; error: string | null }[];
  };
  events: { enabled: boolean; stored: number };
  process: { rss_bytes: number; heap_used_bytes: number };
  config: { file: string | null; agents_dir: string; data_dir: string };
}

const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const pct = (r: number | null) => (r === null ? 'n/a' : `${(r * 100).toFixed(1)}%`);
const rate = (r: number) => `${r.toFixed(2)}/s`;

/** "1 invalid file: agents/a.toml (see caxton agent validate)", naming at most five. */
function invalidFiles(a: Overview['agents']): string {
  const paths = a.invalid_paths ?? [];
  const shown = paths.slice(0, 5).join(', ') + (paths.length > 5 ? ` and ${paths.length - 5} more` : '');
  return `${a.invalid_files} invalid file${a.invalid_files === 1 ? '' : 's'}${shown ? `: ${shown} (\`caxton agent validate FILE\` says why)` : ''}`;
}

/** The overview as label/value rows. */
export function overviewRows(base: string, s: Overview): string[][] {
  const rows = [
    ['server', `${base} (caxton ${s.version}, up ${s.uptime_seconds}s, ${s.ready ? 'ready' : 'not ready'})`],
    ...(s.dependencies && s.dependencies.length > 0
      ? [
          [
            'dependencies',
            s.dependencies
              .map((d) => (d.ok ? `${d.name} ok` : `${d.name} UNAVAILABLE (${d.reason ?? 'no reason given'})`))
              .join(', '),
          ],
        ]
      : []),
    [
      'agents',
      `${s.agents.total} (${s.agents.from_files} from files, ${s.agents.from_api} via API), ${s.agents.capabilities} capabilities${s.agents.invalid_files > 0 ? `, ${invalidFiles(s.agents)}` : ''}`,
    ],
    ...(s.degraded ?? []).map((d) => ['degraded', `${d.problem}; fix: ${d.fix}`]),
    [
      'executions',
      `${rate(s.rates.executions_per_second)}  (${s.totals.executions} total, ${s.totals.execution_errors} failed; error rate ${pct(s.rates.execution_error_rate)})`,
    ],
    [
      'messages',
      `${rate(s.rates.messages_per_second)}  (${s.totals.messages} processed, ${s.totals.message_failures} failed; error rate ${pct(s.rates.message_error_rate)})`,
    ],
    ['errors', `${rate(s.rates.errors_per_second)}  (${s.totals.errors} total)`],
    [
      'queue',
      s.queue
        ? `${s.queue.depth} (${s.queue.queued} queued, ${s.queue.running} running, ${s.queue.retrying} retrying; at most ${s.queue.max_queue}), ${s.queue.open_conversations} open conversations`
        : 'n/a',
    ],
    ['dead letters', s.dead_letters === null ? 'n/a' : String(s.dead_letters)],
  ];
  if (s.memory)
    rows.push([
      'memory',
      `${s.memory.entities} entities, ${s.memory.relations} relations, ${s.memory.observations} observations${s.memory.database_bytes !== undefined ? ` (database ${mib(s.memory.database_bytes)})` : ''}`,
    ]);
  if (s.tool_servers)
    rows.push([
      'tool servers',
      `${s.tool_servers.total} (${s.tool_servers.loaded} loaded, ${s.tool_servers.failed} failed), ${s.tool_servers.tools} tools${s.tool_servers.servers.length > 0 ? `: ${s.tool_servers.servers.map((t) => (t.state === 'loaded' ? t.name : `${t.name} (${t.state})`)).join(', ')}` : ''}`,
    ]);
  if (s.tool_sources) {
    const kinds = Object.entries(s.tool_sources.by_kind)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    const down = s.tool_sources.unavailable.map((u) => `${u.name} (${u.kind}, ${u.state})`).join(', ');
    rows.push([
      'tool sources',
      `${s.tool_sources.total}${kinds ? ` (${kinds})` : ''}, ${s.tool_sources.tools} tools${down ? `; unavailable: ${down}` : ''}`,
    ]);
  }
  rows.push(
    [
      'events',
      !s.events.enabled
        ? 'disabled'
        : s.events.stored === null
          ? 'count unavailable (the store did not answer)'
          : `${s.events.stored} stored`,
    ],
    ['process', `${mib(s.process.rss_bytes)} resident`],
    ['config', s.config.file ?? '(defaults)'],
    ['agents_dir', s.config.agents_dir],
    ['data_dir', s.config.data_dir],
  );
  return rows;
}

/** GET /api/v1/cluster. */
export interface ClusterStatus {
  clustered: boolean;
  node: string;
  nodes: {
    node: string;
    url: string | null;
    version: string;
    started_at: string;
    state: string;
    age_ms: number;
    self: boolean;
    load: Record<string, number>;
  }[];
}

/** The nodes as a table, with a line saying whether this is a cluster. */
export function clusterText(c: ClusterStatus): string {
  const rows = c.nodes.map((n) => [
    `${n.node}${n.self ? ' *' : ''}`,
    n.state,
    `${(n.age_ms / 1000).toFixed(1)}s`,
    String(n.load.queued ?? '-'),
    String(n.load.running ?? '-'),
    String(n.load.open_conversations ?? '-'),
    // The p99 lag of the API agents this node received from the others (ms); '-' before any.
    n.load.directory_lag_p99_ms !== undefined ? `${n.load.directory_lag_p99_ms}ms` : '-',
    n.version,
    n.url ?? '-',
  ]);
  const head = c.clustered
    ? `cluster: ${c.nodes.length} node(s); * answered`
    : `not clustered (no [cluster] in caxton.toml): ${c.node} only`;
  return `${head}\n${table(['NODE', 'STATE', 'HEARTBEAT', 'QUEUED', 'RUNNING', 'CONVERSATIONS', 'DIRECTORY LAG', 'VERSION', 'URL'], rows)}`;
}

/** The reasons and fixes behind the names GET /health lists (from the status overview, which needs a key). */
async function degradedDetails(client: ApiClient, names: string[]): Promise<Degraded[]> {
  try {
    const s = await client.get<Overview>('/api/v1/status/overview');
    if (s.degraded && s.degraded.length > 0) return s.degraded;
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
  }
  return names.map((name) => ({
    name,
    problem: `[${name}] in the server's configuration will make runs fail`,
    fix: '`caxton status` with an API key says why and how to fix it',
  }));
}

/**
 * What `caxton health` exits with. Degraded counts as a failure although the server serves:
 * a script that waits for health before sending work wants to hear that the work would fail.
 */
export const HEALTH_EXIT_CODES = [
  'Exit codes:',
  '  0  live, ready and not degraded',
  '  1  not ready (a dependency is unavailable), degraded (it serves, but runs will fail until',
  '     the printed fix is made), or the server cannot be reached',
  '  2  usage error',
].join('\n');

export function registerSystemCommands(program: Command, ctx: CliContext): void {
  program
    .command('health')
    .description('check that the server is live, ready and not degraded (exit codes below)')
    .addHelpText('after', `\n${HEALTH_EXIT_CODES}`)
    .action(async () => {
      const out = ctx.output();
      const client = ctx.client();
      const live = await client.get<{ status: string; degraded?: string[] }>('/health');
      // 503 names the dependencies that do not answer (the reasons are in `caxton status`).
      const r = await client.request<{ status: string; dependencies?: { name: string; ok: boolean }[] }>(
        'GET',
        '/ready',
        { accept: [503] },
      );
      const ready = r.status === 200;
      const down = (r.data.dependencies ?? []).filter((d) => !d.ok).map((d) => d.name);
      const degraded = live.degraded && live.degraded.length > 0 ? await degradedDetails(client, live.degraded) : [];
      if (out.json)
        out.data({
          server: client.base,
          live: live.status,
          ready,
          ...(r.data.dependencies && { dependencies: r.data.dependencies }),
          ...(degraded.length > 0 && { degraded }),
        });
      else {
        if (!ready)
          out.out(
            `${client.base}: live but not ready (${down.length > 0 ? `unavailable: ${down.join(', ')}; see caxton status` : r.data.status})`,
          );
        else if (degraded.length > 0)
          out.out(`${client.base}: live and ready, but degraded: runs will fail until this is fixed`);
        else out.out(`${client.base}: healthy (live and ready)`);
        for (const d of degraded) out.out(`  - ${d.problem}${d.fix ? `\n    fix: ${d.fix}` : ''}`);
      }
      if (!ready || degraded.length > 0) process.exitCode = 1;
    });

  addWatchOptions(
    program
      .command('status')
      .description(
        'live overview: agents, executions and messages per second, error rates, queue depth, dead letters, memory, tool servers',
      ),
  )
    .option(
      '--window <duration>',
      'rates are averaged over this long (default 10s, at most 5m)',
      durationFlag('--window', 1000, 300_000),
    )
    .option(
      '--cluster',
      'the cluster instead: every node with its state, heartbeat age and load (a node without [cluster] lists itself)',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  caxton status\n  caxton status --json\n  caxton status --watch --interval 5s\n  caxton status --cluster',
    )
    .action(
      async (opts: { watch?: boolean; interval?: number; window?: number; count?: number; cluster?: boolean }) => {
        const out = ctx.output();
        const client = ctx.client();
        if (opts.cluster) {
          await watchLoop(opts, process.stdout.isTTY === true && !out.json, async (clear) => {
            const c = await client.get<ClusterStatus>('/api/v1/cluster');
            if (out.json) {
              if (opts.watch) process.stdout.write(`${JSON.stringify(c)}\n`);
              else out.data(c);
              return;
            }
            if (clear) process.stdout.write('\x1b[2J\x1b[H');
            out.out(clusterText(c));
          });
          return;
        }
        const path = `/api/v1/status/overview${opts.window !== undefined ? `?window=${opts.window / 1000}s` : ''}`;
        const show = async (clear: boolean) => {
          const s = await client.get<Overview>(path);
          if (out.json) {
            if (opts.watch) process.stdout.write(`${JSON.stringify(s)}\n`);
            else out.data(s);
            return;
          }
          const text = table(['', ''], overviewRows(client.base, s)).split('\n').slice(1).join('\n');
          if (clear) process.stdout.write('\x1b[2J\x1b[H');
          out.out(
            opts.watch
              ? `${text}\n(${s.time}; refreshing every ${(opts.interval ?? 2000) / 1000}s, Ctrl-C to stop)`
              : text,
          );
          if (!s.metrics_enabled) out.err('rates are 0: the server runs with [metrics] enabled = false');
        };
        await watchLoop(opts, process.stdout.isTTY === true && !out.json, show, () => {
          if (!process.stdout.isTTY && !out.json) out.out('');
        });
      },
    );

  const config = program.command('config').description('inspect configuration');
  addServerConfigOptions(
    config
      .command('show')
      .description('print the effective configuration (flags > CAXTON_* env > file > defaults), secrets redacted'),
  )
    .option('--remote', "show the running server's configuration instead (via --server)")
    .action(async (opts: Record<string, unknown>) => {
      const out = ctx.output();
      const effective = opts.remote
        ? await ctx.client().get<Record<string, unknown>>('/api/v1/config')
        : (redactSecrets(loadServerConfig(serverLoadOptions(opts))) as unknown as Record<string, unknown>);
      if (out.json) return out.data(effective);
      const { source, ...rest } = effective as { source?: { file: string | null; env: string[]; flags: string[] } };
      if (source)
        out.out(
          `# file: ${source.file ?? '(none: defaults)'}; env: ${source.env.join(', ') || '(none)'}; flags: ${source.flags.join(', ') || '(none)'}`,
        );
      out.out(tomlStringify(rest));
    });
}
