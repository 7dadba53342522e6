/**
 * GET /api/v1/stats/history?range=1h: the Overview charts' retained history — executions and
 * their errors, tokens, latency p50/p95, and message deliveries done and dead, per time bucket
 * (src/observability/history.ts). Server-wide figures, like the overview's rates.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { HISTORY_RANGES, type HistoryRange, type StatsHistory } from '../../observability/index.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { docResponses, onFirstRequest, onUse } from '../lazy-schemas.js';

const RANGES = Object.keys(HISTORY_RANGES) as [HistoryRange, ...HistoryRange[]];

const bucketSchema = onUse(() =>
  z.object({
    time: z.string().describe('start of the bucket (ISO 8601)'),
    executions: z.number().int(),
    execution_errors: z.number().int(),
    input_tokens: z.number().int(),
    output_tokens: z.number().int(),
    latency_p50_ms: z.number().nullable().describe('nearest-rank median duration; null without executions'),
    latency_p95_ms: z.number().nullable(),
    messages_delivered: z.number().int(),
    messages_failed: z.number().int().describe('deliveries given up (dead letters) in the bucket'),
  }),
);

const historySchema = onUse(() =>
  z.object({
    range: z.enum(RANGES),
    from: z.string(),
    to: z.string(),
    bucket_seconds: z.number(),
    sources: z.object({ executions: z.boolean(), messages: z.boolean() }),
    buckets: z.array(bucketSchema()),
  }),
);

export async function statsHistoryRoutes(app: FastifyInstance, deps: { history: StatsHistory }): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/stats/history',
    {
      schema: {
        summary: 'Executions, errors, tokens, latency and message deliveries per time bucket',
        description:
          'Aggregated from the retained execution records and message deliveries (every node of a cluster): `15m` in 30 s buckets, `1h` in 1 min, `6h` in 5 min, `24h` in 15 min, `7d` in 2 h. A range reaches back as far as `[executions] retention` and `[messaging] retention` keep rows.',
        tags: ['system'],
        querystring: onFirstRequest(() =>
          z.object({
            range: z
              .enum(RANGES, { error: `expected one of ${RANGES.join(', ')}` })
              .default('1h')
              .describe(RANGES.join(', ')),
          }),
        ),
        response: docResponses(() => ({ 200: historySchema(), 400: errorEnvelopeSchema })),
      },
    },
    async (req) => {
      const h = await deps.history.history(req.query.range);
      return {
        range: req.query.range,
        from: new Date(h.from).toISOString(),
        to: new Date(h.to).toISOString(),
        bucket_seconds: h.bucket_ms / 1000,
        sources: h.sources,
        buckets: h.buckets.map(({ t, ...b }) => ({ time: new Date(t).toISOString(), ...b })),
      };
    },
  );
}
