import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { usageError } from '../errors.js';
import { table, truncate } from '../output.js';
import { nonNegativeInt, positiveInt } from '../number-flags.js';

// The CLI stays free of the server's modules (the store pulls in SQLite): the outcomes are repeated here.
const OUTCOMES = ['ok', 'denied', 'error'];

interface AuditRecordJson {
  id: number;
  time: string;
  principal: string | null;
  principal_kind: string | null;
  source: string | null;
  request_id: string | null;
  client_request_id?: string | null;
  action: string;
  method: string | null;
  route: string | null;
  target: string | null;
  outcome: string;
  status: number | null;
  details: Record<string, unknown> | null;
}

function detailsText(d: Record<string, unknown> | null): string {
  if (!d) return '';
  return Object.entries(d)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

export function registerAuditCommand(program: Command, ctx: CliContext): void {
  program
    .command('audit')
    .description(
      'show the audit trail: who deployed, removed, changed or read what, from where, and with what outcome (newest last)',
    )
    .option('--principal <id>', 'only this caller (key:ci, oidc:SUBJECT...); "-" for requests without one')
    .option('--action <action>', 'only this action (agent.deploy, memory.import...) or family ("memory.*")')
    .option('--outcome <outcome>', `only this outcome: ${OUTCOMES.join(', ')}`)
    .option('--target <target>', 'only this target (an agent, tool server, memory scope, dead-letter id)')
    .option('--since <when>', 'only records since then: an ISO 8601 time or a duration ago ("1h", "24h")')
    .option('--until <when>', 'only records before then: an ISO 8601 time or a duration ago')
    .option('--limit <n>', 'the newest this many (default 100, at most 1000)', positiveInt('--limit', 1000))
    .option('--offset <n>', 'skip this many of the newest', nonNegativeInt('--offset'))
    .addHelpText(
      'after',
      '\nOutcomes: ok; denied (401/403: not authenticated or not allowed); error (any other failure).\n' +
        'Examples:\n  caxton audit --since 1h\n  caxton audit --action "agent.*" --outcome error\n  caxton audit --principal key:ci --json\n  caxton audit --target assistant --limit 20',
    )
    .action(
      async (opts: {
        principal?: string;
        action?: string;
        outcome?: string;
        target?: string;
        since?: string;
        until?: string;
        limit?: number;
        offset?: number;
      }) => {
        const out = ctx.output();
        if (opts.outcome !== undefined && !OUTCOMES.includes(opts.outcome))
          throw usageError(`--outcome expects one of ${OUTCOMES.join(', ')}, got "${opts.outcome}"`);
        const q = new URLSearchParams();
        for (const k of ['principal', 'action', 'outcome', 'target', 'since', 'until'] as const)
          if (opts[k] !== undefined) q.set(k, opts[k]);
        if (opts.limit !== undefined) q.set('limit', String(opts.limit));
        if (opts.offset !== undefined) q.set('offset', String(opts.offset));
        const res = await ctx
          .client()
          .get<{ records: AuditRecordJson[]; count: number; limit: number; offset: number }>(
            `/api/v1/audit${q.size > 0 ? `?${q}` : ''}`,
          );
        if (out.json) return out.data(res);
        if (res.records.length === 0) return out.err('no audit records match');
        out.out(
          table(
            [
              'TIME',
              'PRINCIPAL',
              'SOURCE',
              'ACTION',
              'TARGET',
              'OUTCOME',
              'STATUS',
              'REQUEST',
              'CLIENT REQUEST',
              'DETAILS',
            ],
            [...res.records]
              .reverse()
              .map((r) => [
                r.time,
                r.principal ?? '-',
                r.source ?? '-',
                r.action,
                truncate(r.target ?? '-', 40),
                r.outcome,
                r.status === null ? '-' : String(r.status),
                r.request_id ?? '-',
                truncate(r.client_request_id ?? '-', 40),
                truncate(detailsText(r.details), 60),
              ]),
          ),
        );
        if (res.count === res.limit)
          out.out(
            `(the newest ${res.count} from offset ${res.offset}; older ones: --offset ${res.offset + res.count})`,
          );
      },
    );
}
