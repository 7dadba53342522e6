import { z } from 'zod';
import type { ConversationBids } from '../../messaging/index.js';
import type { Check, Documents } from '../type-checks.js';
import { onUse } from '../lazy-schemas.js';

const bidValueSchema = onUse(() =>
  z.object({
    value: z.number(),
    source: z
      .enum(['typed', 'text', 'asking'])
      .describe(
        "typed: a field of the bid's structured content; text: read from prose; asking: the round's asking price",
      ),
    read_from: z.string().optional().describe('for a value read from text: the words it was read from'),
  }),
);

/** GET /conversations/{id} `bids`: computed once, in src/messaging/protocols/bids.ts. */
export const bidsSchema = onUse(() =>
  z
    .object({
      rule: z.string().describe('the selection rule in words, e.g. "lowest price, then lowest delivery_days"'),
      keys: z.array(z.object({ field: z.string(), order: z.enum(['lowest', 'highest']) })),
      rounds: z.array(
        z.object({
          round: z.number().int(),
          cfp_id: z.string(),
          asking_price: z.number().optional(),
          bids: z.array(
            z.object({
              rank: z.number().int().describe('1 = best by the rule'),
              message_id: z.string(),
              sender: z.string(),
              source: z.enum(['typed', 'text']),
              values: z.record(z.string(), bidValueSchema()).describe('the value of each field the rule ranks on'),
              fields: z
                .record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]))
                .optional()
                .describe("a typed bid's fields"),
              text: z.string().optional().describe("a text bid's words"),
              outcome: z.enum(['accepted', 'rejected']).optional(),
            }),
          ),
          refused: z.array(z.object({ sender: z.string(), performative: z.string(), reason: z.string() })),
        }),
      ),
      winner: z.object({ sender: z.string(), message_id: z.string(), round: z.number().int() }).nullable(),
      why: z.string().describe('why the winner won, or why there is none yet'),
    })
    .describe('the bids of a conversation with a call for proposals: values, ranking and why the winner won'),
);

/** The schema documents ConversationBids; does not compile otherwise. */
export type BidsDocumented = Check<Documents<z.output<ReturnType<typeof bidsSchema>>, ConversationBids>>;
