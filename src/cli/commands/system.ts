import type { Command } from 'commander';
import { loadServerConfig, redactSecrets } from '../../config/index.js';
import { stringify as tomlStringify } from 'smol-toml';
import { table } from '../output.js';
import type { CliContext } from '../context.js';
import { addServerConfigOptions, configFlags } from './serve.js';

interface Status {
  version: string;
  uptime_seconds: number;
  ready: boolean;
  agents: { total: number; from_files: number; from_api: number; capabilities: number };
  agent_files: { loaded: number; invalid: { path: string; agent?: string; errors: { message: string; line?: number }[] }[]; ignored: string[] };
  memory: { rss_bytes: number; heap_used_bytes: number };
  config: { file: string | null; agents_dir: string; data_dir: string };
}

export function registerSystemCommands(program: Command, ctx: CliContext): void {
  program
    .command('health')
    .description('check that the server is up and ready (exit 0 when ready, 1 otherwise)')
    .action(async () => {
      const out = ctx.output();
      const client = ctx.client();
      const live = await client.get<{ status: string }>('/health');
      let ready = true;
      try {
        await client.get('/ready');
      } catch {
        ready = false;
      }
      if (out.json) out.data({ server: client.base, live: live.status, ready });
      else out.out(`${client.base}: ${ready ? 'healthy (live and ready)' : `live but not ready (${live.status})`}`);
      if (!ready) process.exitCode = 1;
    });

  program
    .command('status')
    .description('show server status: agents, agent files, memory')
    .action(async () => {
      const out = ctx.output();
      const s = await ctx.client().get<Status>('/api/v1/status');
      if (out.json) return out.data(s);
      const rows = [
        ['server', `${ctx.client().base} (caxton ${s.version}, up ${s.uptime_seconds}s, ${s.ready ? 'ready' : 'not ready'})`],
        ['agents', `${s.agents.total} (${s.agents.from_files} from files, ${s.agents.from_api} via API), ${s.agents.capabilities} capabilities`],
        ['agent files', `${s.agent_files.loaded} loaded, ${s.agent_files.invalid.length} invalid, ${s.agent_files.ignored.length} ignored`],
        ['memory', `${(s.memory.rss_bytes / 1024 / 1024).toFixed(1)} MiB resident`],
        ['config', s.config.file ?? '(defaults)'],
        ['agents_dir', s.config.agents_dir],
        ['data_dir', s.config.data_dir],
      ];
      out.out(table(['', ''], rows).split('\n').slice(1).join('\n'));
      for (const f of s.agent_files.invalid) out.err(`invalid agent file ${f.path}${f.agent ? ` (still serving the last good "${f.agent}")` : ''}: ${f.errors[0]?.message ?? ''}`);
    });

  const config = program.command('config').description('inspect configuration');
  addServerConfigOptions(config.command('show').description('print the effective configuration (flags > CAXTON_* env > file > defaults), secrets redacted'))
    .option('--remote', "show the running server's configuration instead (via --server)")
    .action(async (opts: Record<string, unknown>) => {
      const out = ctx.output();
      const effective = opts.remote
        ? await ctx.client().get<Record<string, unknown>>('/api/v1/config')
        : (redactSecrets(loadServerConfig({ ...(opts.config !== undefined && { file: String(opts.config) }), flags: configFlags(opts) })) as unknown as Record<string, unknown>);
      if (out.json) return out.data(effective);
      const { source, ...rest } = effective as { source?: { file: string | null; env: string[]; flags: string[] } };
      if (source) out.out(`# file: ${source.file ?? '(none: defaults)'}; env: ${source.env.join(', ') || '(none)'}; flags: ${source.flags.join(', ') || '(none)'}`);
      out.out(tomlStringify(rest));
    });
}
