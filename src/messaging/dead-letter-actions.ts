import type { Principal } from '../auth/index.js';
import { CaxtonError } from '../shared/errors.js';
import type { MessagingBus } from './bus-port.js';
import type { MessageId } from './message.js';
import { readsFor } from './scoped-reads.js';

/**
 * Replaying dead letters, one or many, for a caller: every surface (REST, the console) replays
 * through here, so the rule is the same for one and for a selection — a caller replays only the
 * dead letters it may read (src/auth/scope-read.ts), and one out of its scope is "not found".
 */

/** Which dead letters a bulk action takes; every field narrows, none given means none is taken (unless `all`). */
export interface DeadLetterSelection {
  /** The receiver, exactly (any case). */
  receiver?: string;
  /** The message's sender, exactly (any case). */
  sender?: string;
  /** Failed at or after this time (ISO 8601). */
  since?: string;
  /** Failed before this time (ISO 8601). */
  until?: string;
  /** Text anywhere in the last error (any case). */
  reason?: string;
  /** Take every dead letter the caller may read: a bulk action with no filter must say so. */
  all?: boolean;
}

export interface ReplayedLetter {
  id: number;
  message_id: MessageId;
  receiver: string;
  conversation_id: string;
}

export interface BulkReplayResult {
  /** Dead letters the selection matched (for a dry run, what a replay would take). */
  matched: number;
  replayed: ReplayedLetter[];
  /** Those that could not be replayed (replayed by someone else meanwhile, say), with why. */
  failed: { id: number; error: string }[];
}

/** The most dead letters one bulk action takes; a larger selection is narrowed by its filter, or taken in turns. */
export const MAX_BULK_DEAD_LETTERS = 5_000;
const PAGE = 500;

/** One dead letter, replayed for `reader` (in its scope, else "not found"). */
export async function replayDeadLetter(
  bus: MessagingBus,
  reader: Pick<Principal, 'scope'> | undefined,
  id: number,
): Promise<ReplayedLetter> {
  const d = await readsFor(bus.reads, reader).deadLetter(id);
  const out = await bus.replay(d.id);
  return { ...out, conversation_id: d.message.conversation_id };
}

function instant(field: 'since' | 'until', v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t))
    throw new CaxtonError('invalid_request', `${field}: "${v}" is not a time; give one like 2026-01-31T12:00:00Z`, {
      field,
      issues: [{ field, message: 'is not a time (ISO 8601, e.g. 2026-01-31T12:00:00Z)' }],
    });
  return t;
}

/** The dead letters `reader` may read that `sel` takes, oldest first (at most MAX_BULK_DEAD_LETTERS). */
export async function selectDeadLetters(
  bus: MessagingBus,
  reader: Pick<Principal, 'scope'> | undefined,
  sel: DeadLetterSelection,
): Promise<{ id: number; message_id: MessageId; receiver: string; conversation_id: string }[]> {
  const narrowed =
    sel.receiver !== undefined ||
    sel.sender !== undefined ||
    sel.since !== undefined ||
    sel.until !== undefined ||
    sel.reason !== undefined;
  if (!narrowed && sel.all !== true)
    throw new CaxtonError(
      'invalid_request',
      'choose which dead letters: give a receiver, sender, since, until or reason, or all: true for every one',
      { field: 'receiver', issues: [{ field: 'receiver', message: 'give a filter, or all: true' }] },
    );
  const since = instant('since', sel.since);
  const until = instant('until', sel.until);
  const receiver = sel.receiver?.toLowerCase();
  const sender = sel.sender?.toLowerCase();
  const reads = readsFor(bus.reads, reader);
  const out: { id: number; message_id: MessageId; receiver: string; conversation_id: string }[] = [];
  for (let offset = 0; ; offset += PAGE) {
    // The store narrows by receiver text and error text; the rest is checked here, on pages of rows.
    const page = await reads.deadLetters({
      ...(sel.receiver !== undefined && { receiver: sel.receiver }),
      ...(sel.reason !== undefined && { error: sel.reason }),
      limit: PAGE,
      offset,
    });
    for (const d of page.items) {
      if (receiver !== undefined && d.receiver.toLowerCase() !== receiver) continue;
      if (sender !== undefined && d.message.sender.toLowerCase() !== sender) continue;
      const at = Date.parse(d.updated_at);
      if (since !== undefined && !(at >= since)) continue;
      if (until !== undefined && !(at < until)) continue;
      out.push({
        id: d.id,
        message_id: d.message_id,
        receiver: d.receiver,
        conversation_id: d.message.conversation_id,
      });
      if (out.length >= MAX_BULK_DEAD_LETTERS) return out;
    }
    if (page.items.length < PAGE) return out;
  }
}

/** Replays every dead letter `sel` takes for `reader`, or (dry run) counts them. */
export async function replayDeadLetters(
  bus: MessagingBus,
  reader: Pick<Principal, 'scope'> | undefined,
  sel: DeadLetterSelection,
  opts: { dryRun?: boolean } = {},
): Promise<BulkReplayResult> {
  const chosen = await selectDeadLetters(bus, reader, sel);
  if (opts.dryRun) return { matched: chosen.length, replayed: [], failed: [] };
  const replayed: ReplayedLetter[] = [];
  const failed: { id: number; error: string }[] = [];
  for (const d of chosen) {
    try {
      const out = await bus.replay(d.id);
      replayed.push({ ...out, conversation_id: d.conversation_id });
    } catch (e) {
      failed.push({ id: d.id, error: e instanceof CaxtonError ? e.message : 'it could not be queued again' });
    }
  }
  return { matched: chosen.length, replayed, failed };
}

export interface BulkDiscardResult {
  /** Dead letters the selection matched (for a dry run, what the action would take). */
  matched: number;
  /** The dead letters deleted (one replayed meanwhile is not). */
  discarded: number[];
  /** Conversations deleted with them (a purge only). */
  conversations: number;
}

/**
 * Deletes every dead letter `sel` takes for `reader`, or (dry run) counts them. With `purge`, the
 * conversations they belonged to go too, with their messages, once nothing of them is pending or
 * dead — what retention would delete later.
 */
export async function discardDeadLetters(
  bus: MessagingBus,
  reader: Pick<Principal, 'scope'> | undefined,
  sel: DeadLetterSelection,
  opts: { dryRun?: boolean; purge?: boolean } = {},
): Promise<BulkDiscardResult> {
  const chosen = await selectDeadLetters(bus, reader, sel);
  if (opts.dryRun) return { matched: chosen.length, discarded: [], conversations: 0 };
  const out = await bus.discard(chosen, { purge: opts.purge === true });
  return { matched: chosen.length, ...out };
}
