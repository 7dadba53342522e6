import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { annotateAudit } from '../../audit/index.js';
import { discardDeadLetters, replayDeadLetters, type MessagingBus } from '../../messaging/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { parseJsonBody } from '../json-body.js';
import { errorEnvelopeSchema } from '../schemas.js';
import { docResponses, onUse } from '../lazy-schemas.js';

const selectionSchema = z.strictObject({
  receiver: z.string().min(1).max(200).optional(),
  sender: z.string().min(1).max(200).optional(),
  since: z.string().min(1).max(64).optional(),
  until: z.string().min(1).max(64).optional(),
  reason: z.string().min(1).max(200).optional(),
  all: z.boolean().optional(),
  dry_run: z.boolean().optional(),
});

const replayedSchema = onUse(() =>
  z.object({
    id: z.number().int(),
    message_id: z.string(),
    receiver: z.string(),
    conversation_id: z.string(),
  }),
);

/** The selection of a bulk action, read from the raw body (messaging routes parse their own bodies). */
function selectionOf(raw: unknown): z.output<typeof selectionSchema> {
  const parsed = selectionSchema.safeParse(parseJsonBody(raw as Buffer | undefined));
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ field: i.path.join('.') || '(body)', message: i.message }));
    throw new CaxtonError(
      'invalid_request',
      `${issues[0]!.field}: ${issues[0]!.message}; send {"receiver": NAME} (or sender, since, until, reason), with "dry_run": true to count first`,
      { field: issues[0]!.field, issues },
    );
  }
  return parsed.data;
}

const SELECTION_DOC =
  'Body: `receiver`, `sender` (exact, any case), `since`, `until` (ISO 8601, when it failed), `reason` (text in the last error), or `all: true`. ' +
  'With `dry_run: true` nothing changes and `matched` says how many would be taken. Only dead letters the caller may read are taken.';

/**
 * POST /api/v1/dead-letters/replay, /discard and /purge: the dead letters a filter takes, replayed,
 * deleted, or deleted with their finished conversations, together (or counted first).
 */
export function deadLetterBulkRoutes(app: FastifyInstance, bus: MessagingBus): void {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/dead-letters/replay',
    {
      schema: {
        summary: 'Deliver again every dead letter a filter takes',
        description: SELECTION_DOC,
        tags: ['messaging'],
        response: docResponses(() => ({
          200: z.object({
            dry_run: z.boolean(),
            matched: z.number().int(),
            replayed: z.array(replayedSchema()),
            failed: z.array(z.object({ id: z.number().int(), error: z.string() })),
          }),
          400: errorEnvelopeSchema,
          403: errorEnvelopeSchema,
        })),
      },
    },
    async (req) => {
      const { dry_run, ...sel } = selectionOf(req.body);
      const dryRun = dry_run === true;
      const out = await replayDeadLetters(bus, req.principal, sel, { dryRun });
      if (!dryRun)
        req.log.info(
          { matched: out.matched, replayed: out.replayed.length, failed: out.failed.length },
          'dead letters replayed',
        );
      return { dry_run: dryRun, ...out };
    },
  );

  for (const purge of [false, true]) {
    const action = purge ? 'purge' : 'discard';
    app.withTypeProvider<ZodTypeProvider>().post(
      `/dead-letters/${action}`,
      {
        schema: {
          summary: purge
            ? 'Delete every dead letter a filter takes, with its conversation once that has nothing else pending or dead'
            : 'Delete every dead letter a filter takes (its conversation and messages stay)',
          description: SELECTION_DOC,
          tags: ['messaging'],
          response: docResponses(() => ({
            200: z.object({
              dry_run: z.boolean(),
              matched: z.number().int(),
              discarded: z.array(z.number().int()).describe('the dead letters deleted (one replayed meanwhile is not)'),
              conversations: z.number().int().describe('conversations deleted with them (purge only)'),
            }),
            400: errorEnvelopeSchema,
            403: errorEnvelopeSchema,
          })),
        },
      },
      async (req) => {
        const { dry_run, ...sel } = selectionOf(req.body);
        const dryRun = dry_run === true;
        const out = await discardDeadLetters(bus, req.principal, sel, { dryRun, purge });
        annotateAudit(req, {
          details: {
            dry_run: dryRun,
            matched: out.matched,
            discarded: out.discarded.length,
            conversations: out.conversations,
          },
        });
        if (!dryRun)
          req.log.info(
            { matched: out.matched, discarded: out.discarded.length, conversations: out.conversations },
            purge ? 'dead letters purged' : 'dead letters discarded',
          );
        return { dry_run: dryRun, ...out };
      },
    );
  }
}
