/**
 * The message state of a cluster in PostgreSQL (ADR 0043): the
 * messaging tables of the single-node store (src/messaging/sqlite/sqlite-message-store.ts) — messages, delivery rows,
 * conversations, subscriptions — shared by every node, with the two guarantees the cluster's bus
 * rests on:
 *
 *  - **one step of a conversation at a time, cluster-wide**: `inConversation` runs a step in one
 *    transaction holding the conversation's transaction-scoped advisory lock (the row may not
 *    exist yet when the first message creates it, so the lock is on its id, not on the row). Two
 *    nodes answering one Contract Net serialize there; different conversations never wait for
 *    each other's locks. Under load, steps of different conversations share one transaction
 *    (group commit, step-groups.ts; ADR 0046), each still seeing only its own conversation.
 *  - **each deadline handled once**: `expired` takes the conversations whose `expires_at` passed
 *    with `FOR UPDATE SKIP LOCKED`, so nodes sweeping at the same time split them.
 *
 * The cluster's bus (cluster-bus.ts) runs on it. This file holds the steps and the writes; the
 * tables are pg-message-tables.ts, the reads outside a step pg-message-rows.ts, the publish and
 * retention sweeps pg-message-sweeps.ts.
 */
import type pg from 'pg';
import type { AclMessage, Conversation, ConversationStep } from '../index.js';
import { scrubSecrets } from '../../shared/secrets.js';
import type { StatementBatch } from '../../storage/pg/index.js';
import type { ClusterStepStats } from '../../observability/index.js';
import {
  escapeLiteral,
  inTransaction,
  isUnreachable,
  literal,
  type Literal,
  migrateSchema,
  quotedSchema,
} from '../../storage/pg/index.js';
import {
  appendAttemptError,
  conversationOf,
  keptJsonSql,
  MESSAGE_MIGRATIONS,
  type ConversationRow,
} from './pg-message-tables.js';
import type { TakeRow } from './pg-message-rows.js';
import {
  PgConversationStep,
  type Held,
  type KeptHandOut,
  type LockedDelivery,
  type PendingCount,
  type StepHost,
} from './pg-conversation-step.js';
import { PgMessageSweeps } from './pg-message-sweeps.js';
import { StepGroups, type StepGroupsOptions } from './step-groups.js';

export interface PgMessageStoreOptions {
  pool: pg.Pool;
  /** The schema holding the tables (created if missing). */
  schema: string;
  /** Group commit of conversation steps (step-groups.ts): steps per group (default 64), groups at once (default 4; a server passes `[cluster.state] step_transactions`). */
  groups?: Partial<StepGroupsOptions>;
}

/** What one conversation step may do, inside its transaction and lock. */
export type { ConversationStep };

/** A conversation step waiting for its group (step-groups.ts). */
interface QueuedStep {
  key: string;
  delivery: number | undefined;
  /** A step about a delivery (its acknowledgement, mostly): it goes into a group before new work (step-groups.ts). */
  first: boolean;
  /** The conversation is new, its id made for this step: no row to read, no lock to take. */
  fresh: boolean;
  /** Its delivery marked its conversation kept when this node took it: its BEGIN reads only the delivery row (#beginGroup). */
  lean: boolean;
  /**
   * A first attempt that marked its conversation kept when this node took it, with what the take
   * read (TakeRow.keptFirst): the step runs on that, reading nothing, and its done-marking is
   * written on condition that the row is still as read (#groupTx). Cleared for a step run again.
   */
  optimistic: TakeRow['keptFirst'] | undefined;
  step: (s: ConversationStep) => Promise<unknown>;
  /** Its last run's step (the messages it inserted). */
  ran?: PgConversationStep;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/**
 * Where a step about a delivery of a conversation kept with its message starts: no conversation
 * row, the conversation as its message keeps it, and this delivery its only pending one.
 */
const keptStart = <R extends Record<string, unknown>>(opening: string | ConversationRow, row: R) => ({
  found: { row: undefined, opening },
  withDelivery: { row, pending: 1 },
});

/** A step's result, or: run it again as a step that reads its rows (an optimistic step whose condition did not hold). */
type StepOutcome = PromiseSettledResult<unknown> | 'again';

/** A group's transaction is void: a step failed after some of its writes were sent (its steps run again alone). */
class GroupVoid extends Error {
  constructor() {
    super('a step of the group failed after its writes were sent');
  }
}

/** A message INSERT found its id stored: a client-chosen id sent again. */
const repeatedId = (e: unknown): boolean =>
  (e as { code?: string }).code === '23505' && (e as { constraint?: string }).constraint === 'messages_id_key';

/** Delivery ids a node reserves at once from the table's sequence (see `#takeId`). */
const ID_BLOCK = 256;

/** What a step's BEGIN read of its conversation: its row, or the one-way conversation its message keeps (migration cluster-messaging-007-one-way). */
interface Found {
  row: ConversationRow | undefined;
  /** As JSON text when read, parsed when a first hand-out carried it. */
  opening: string | ConversationRow | null | undefined;
}

/** Where a step's BEGIN found each read's rows among its results (absent: not read). */
interface ReadsAt {
  conversations?: number;
  deliveries?: number;
  pending?: number;
  openings?: number;
}

/** A delivery row as a step's BEGIN reads it, with the conversation its message keeps (null: none). */
type DeliveryReadRow = Record<string, unknown> & { opening: string | null };

/** The row is pending and marks its conversation kept with its message (ADR 0080). */
function keptPending(row: DeliveryReadRow | undefined): row is DeliveryReadRow & { opening: string } {
  return row !== undefined && row.state === 'pending' && row.kept_until !== null && row.opening !== null;
}

/** The conversation ids of `steps` as an SQL text array. */
const textArray = (steps: readonly QueuedStep[]): string =>
  `ARRAY[${steps.map((q) => escapeLiteral(q.key)).join(', ')}]::text[]`;

/** Deliveries remembered as taken while they marked their conversation kept (see PgMessageStore.deliveriesToTake). */
const KEPT_HINTS = 4096;

/** Remembers `value` under `key` in `hints`, forgetting the oldest beyond KEPT_HINTS. */
function remember<K, V>(hints: Map<K, V>, key: K, value: V): void {
  hints.set(key, value);
  if (hints.size > KEPT_HINTS) hints.delete(hints.keys().next().value!);
}

/** Where a step's conversation is: a row, kept with its message (ADR 0080), or nowhere yet. */
/** The conversation a step starts from, and where it is. */
function startOf(found: Found): { conversation: Conversation | undefined; held: Held } {
  if (found.row) return { conversation: conversationOf(found.row), held: 'row' };
  if (found.opening)
    return {
      conversation: conversationOf(
        typeof found.opening === 'string' ? (JSON.parse(found.opening) as ConversationRow) : found.opening,
      ),
      held: 'kept',
    };
  return { conversation: undefined, held: 'none' };
}

export class PgMessageStore extends PgMessageSweeps {
  /** One-way conversations are kept with their message until a step writes their row (ADR 0080). */
  readonly defersOneWay = true;
  /** A repeated client-chosen id fails its step at the messages INSERT (the table's key): no read before the step. */
  readonly checksIdsOnInsert = true;
  /**
   * Delivery ids taken from the sequence ahead of use, oldest first. A step's delivery row then
   * goes with its COMMIT like its other writes (its id known without a round trip of its own);
   * ids are unique but not in commit order across nodes, and a node that stops
   * leaves a gap of the ones it did not use.
   */
  #ids: number[] = [];
  #reserving: Promise<void> | undefined;
  /**
   * Deliveries this node took while they were pending and marked their conversation kept, oldest
   * first, with what the take read of a first attempt (deliveriesToTake).
   */
  readonly #keptAtTake = new Map<number, TakeRow['keptFirst']>();
  /**
   * What the first hand-out of each delivery a step of this node inserted while it marked its
   * conversation kept carries (KeptHandOut), until the queue publishes it; oldest first, at most
   * KEPT_HINTS (a step run again leaves the ids of its first run behind).
   */
  readonly #keptOut = new Map<number, KeptHandOut>();
  readonly #groups: StepGroups<QueuedStep>;
  readonly #groupStats: ClusterStepStats = { transactions: 0, steps: 0, voided: 0, unread: 0, reread: 0 };
  readonly #lingerMs: number;

  private constructor(opts: PgMessageStoreOptions) {
    super(opts.pool, opts.schema);
    this.#lingerMs = opts.groups?.lingerMs ?? 0;
    this.#groups = new StepGroups((g) => this.#runGroup(g), {
      maxSteps: opts.groups?.maxSteps ?? 64,
      concurrent: opts.groups?.concurrent ?? 4,
      lingerMs: this.#lingerMs,
    });
  }

  /** The linger bound of this node's batches (ms; `[cluster.state] step_linger`): the step groups', and the delivery queue's reads of fetched rows. */
  get lingerMs(): number {
    return this.#lingerMs;
  }

  /** Creates the schema and tables if missing (nodes starting together take turns on a lock). */
  static async open(opts: PgMessageStoreOptions): Promise<PgMessageStore> {
    quotedSchema(opts.schema);
    const store = new PgMessageStore(opts);
    await migrateSchema(opts.pool, opts.schema, MESSAGE_MIGRATIONS);
    return store;
  }

  /**
   * Runs one step of conversation `id` in a transaction holding its lock: every node's steps on
   * the same conversation run one after another, and a step sees what the previous one committed.
   * A step that throws is rolled back whole. Under load, steps of different conversations share a
   * transaction (group commit, step-groups.ts): a step's result is returned once its group
   * committed, and a group that fails as a whole runs each of its steps again alone, so a step may
   * run twice (its effects only count from the run that committed).
   */
  inConversation<T>(
    id: string,
    step: (s: ConversationStep) => Promise<T>,
    opts: { delivery?: number; fresh?: boolean } = {},
  ): Promise<T> {
    const hint = opts.delivery === undefined ? undefined : this.#keptAtTake.get(opts.delivery);
    if (hint !== undefined) this.#keptAtTake.delete(opts.delivery!);
    return new Promise<T>((resolve, reject) => {
      this.#groups.push({
        key: id,
        delivery: opts.delivery,
        first: opts.delivery !== undefined,
        // Only a step about no delivery can be a conversation's first.
        fresh: opts.fresh === true && opts.delivery === undefined,
        lean: hint !== undefined,
        optimistic: hint ?? undefined,
        step,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
    });
  }

  /**
   * The rows of deliveries fetched from JetStream (PgMessageRows), remembering which were pending
   * and marked their conversation kept: a step about one of them reads only its row (#beginGroup),
   * checking the mark again under the conversation's lock. A remembered delivery this node never
   * steps on (another copy finished it, it waits for its retry) is forgotten after KEPT_HINTS more.
   */
  override async deliveriesToTake(ids: readonly number[]): Promise<Map<number, TakeRow>> {
    const rows = await super.deliveriesToTake(ids);
    for (const r of rows.values()) if (r.kept && r.state === 'pending') remember(this.#keptAtTake, r.id, r.keptFirst);
    return rows;
  }

  /**
   * A delivery taken from its first hand-out, which carried what the take would read (KeptHandOut):
   * its step runs as one of a delivery whose row the take read (deliveriesToTake), with no read.
   */
  tookUnread(row: TakeRow): void {
    if (row.keptFirst === null) return;
    remember(this.#keptAtTake, row.id, row.keptFirst);
  }

  /** What delivery `id`'s first hand-out carries, if a step of this node inserted it marking its conversation kept; forgotten once asked. */
  keptHandOut(id: number): KeptHandOut | undefined {
    const hint = this.#keptOut.get(id);
    if (hint !== undefined) this.#keptOut.delete(id);
    return hint;
  }

  /** Conversation-step transactions so far: how many, the steps they held, and groups voided (their steps run again alone). */
  get groupStats(): ClusterStepStats {
    return { ...this.#groupStats };
  }

  /** Runs a group; on a failure of the group as a whole, each step again alone. Never rejects. */
  async #runGroup(group: QueuedStep[]): Promise<void> {
    this.#reserveIds();
    this.#groupStats.transactions++;
    this.#groupStats.steps += group.length;
    let settled: StepOutcome[];
    try {
      settled = await this.#groupTx(group);
    } catch (e) {
      // A statement failed, a step failed after its writes were sent, or one step's input could not
      // be written into the group's statements: which step caused it is unknown, and alone each
      // commits or fails on its own. Only an unreachable PostgreSQL fails them all as they are.
      // A step run again reads its rows: what an optimistic step ran on may be why it failed.
      for (const q of group) q.optimistic = undefined;
      if (group.length > 1 && !isUnreachable(e)) {
        this.#groupStats.voided++;
        if (repeatedId(e) && (await this.#dropRepeats(group, e))) return;
        await Promise.all(group.map((q) => this.#runGroup([q])));
        return;
      }
      for (const q of group) q.reject(e);
      return;
    }
    settled.forEach((r, i) => {
      const q = group[i]!;
      if (r === 'again') {
        this.#groupStats.reread++;
        q.optimistic = undefined;
        this.#groups.push(q);
        return;
      }
      if (q.optimistic && r.status === 'fulfilled') this.#groupStats.unread++;
      if (r.status === 'fulfilled') q.resolve(r.value);
      else q.reject(r.reason);
    });
  }

  /**
   * A group failed at a message id stored already (a client sending it again): its steps that
   * inserted a stored id fail with `e` (the engine answers them as duplicates), and the others
   * run again as one group, not each alone. False when no step's id is found stored (or the read
   * failed): the caller runs them alone.
   */
  async #dropRepeats(group: QueuedStep[], e: unknown): Promise<boolean> {
    const ids = group.flatMap((q) => q.ran?.inserted ?? []);
    let stored: Set<string>;
    try {
      const r = await this.pool.query<{ id: string }>(`SELECT id FROM ${this.s}.messages WHERE id = ANY($1::text[])`, [
        ids,
      ]);
      stored = new Set(r.rows.map((x) => x.id));
    } catch {
      return false;
    }
    const repeats = group.filter((q) => q.ran?.inserted.some((id) => stored.has(id)));
    if (repeats.length === 0) return false;
    for (const q of repeats) q.reject(e);
    const rest = group.filter((q) => !repeats.includes(q));
    if (rest.length > 0) await this.#runGroup(rest);
    return true;
  }

  /**
   * One transaction for `group` (steps of distinct conversations): BEGIN, every lock and the rows
   * in one round trip, the steps, then all their writes with the COMMIT. A step that fails before
   * any of its writes was sent drops them and fails alone; after, the whole group is void.
   *
   * An optimistic step (QueuedStep.optimistic: the acknowledgement of a one-way conversation's
   * first attempt, mostly) reads nothing: it runs on what the take read, its conversation's lock is
   * taken with the others (or, when no step reads, sent in front of the writes), and its
   * done-marking is one row of an UPDATE sent with the COMMIT on condition that the row is still as
   * read (pending, no attempt, still marking its conversation kept, not written since): the lock
   * then holds what the step assumed, as a read under it would have shown. Why: a read of each
   * acknowledged row under its lock would be the only read on a one-way message's delivery path,
   * and a round trip of its own. A step whose condition did not hold wrote nothing and runs
   * again, reading its rows; so does one that wrote anything else (a reply, a conversation row),
   * whose fork is dropped unsent.
   */
  async #groupTx(group: QueuedStep[]): Promise<StepOutcome[]> {
    // New conversations (ids made here, for their first step): nothing to lock or read. A group of
    // them only is BEGIN, its writes and COMMIT in one round trip.
    const held = group.filter((q) => !q.fresh);
    const reading = held.filter((q) => !q.optimistic);
    const optimistic = held.length > reading.length;
    const begin = reading.length === 0 ? null : this.#beginGroup(held);
    const deferred = begin === null && optimistic ? `BEGIN; ${this.#lockSql(held)}` : 'BEGIN';
    return inTransaction(
      this.pool,
      begin?.sql ?? null,
      async (_c, started, batch): Promise<StepOutcome[]> => {
        const found = begin ? await this.#found(reading, begin.at, started as unknown as pg.QueryResult[], batch) : [];
        const read = new Map(reading.map((q, i) => [q, found[i]!]));
        const stepOf = (q: QueuedStep, b: StatementBatch) => {
          const r = q.optimistic ? keptStart(q.optimistic.opening, q.optimistic.row) : read.get(q);
          return this.#stepOf(q, b, r?.found, r?.withDelivery, q.optimistic !== undefined);
        };
        if (group.length === 1 && !optimistic) {
          const q = group[0]!;
          return [{ status: 'fulfilled', value: await q.step(stepOf(q, batch)) }];
        }
        const batches = group.map(() => batch.fork());
        const results = await Promise.allSettled(group.map((q, i) => q.step(stepOf(q, batches[i]!))));
        const settled: StepOutcome[] = [...results];
        const dones: { q: QueuedStep; i: number }[] = [];
        results.forEach((r, i) => {
          const b = batches[i]!;
          if (b.failed || (r.status === 'rejected' && b.wrote)) throw new GroupVoid();
          const q = group[i]!;
          if (q.optimistic) {
            if (b.wrote) throw new GroupVoid();
            if (r.status === 'fulfilled' && !b.waiting && q.ran?.optimisticClean) dones.push({ q, i });
            else settled[i] = 'again';
            return;
          }
          if (r.status === 'fulfilled') batch.adopt(b);
        });
        if (dones.length === 0) return settled;
        const marked = await batch.endWith(this.#optimisticDoneSql(dones.map((d) => d.q)), 'COMMIT');
        const ids = new Set((marked.rows as { id: string }[]).map((r) => Number(r.id)));
        for (const { q, i } of dones) if (!ids.has(q.ran!.optimisticDone!.id)) settled[i] = 'again';
        return settled;
      },
      deferred,
    );
  }

  /** The done-markings of optimistic steps as one UPDATE (optimisticDoneSql). */
  #optimisticDoneSql(steps: readonly QueuedStep[]): string {
    return optimisticDoneSql(
      this.s,
      steps.map((q) => ({ ...q.ran!.optimisticDone!, readAt: q.optimistic!.row.updated_at as string })),
    );
  }

  /**
   * What each step of `held` starts from, out of its BEGIN's results: its conversation and, for a
   * step about a delivery, that row (locked) and the conversation's pending count. A lean step
   * (QueuedStep.lean) whose row no longer says its conversation is kept reads what it skipped
   * now, under the same locks: one round trip more for those steps, all of them together.
   */
  async #found(
    held: readonly QueuedStep[],
    at: ReadsAt,
    results: pg.QueryResult[],
    batch: StatementBatch,
  ): Promise<{ found: Found; withDelivery?: { row: DeliveryReadRow | undefined; pending: number } }[]> {
    const rowsOf = (i: number | undefined) => (i === undefined ? [] : results[i]!.rows);
    const conversations = new Map((rowsOf(at.conversations) as ConversationRow[]).map((r) => [r.id as string, r]));
    const deliveries = new Map((rowsOf(at.deliveries) as DeliveryReadRow[]).map((r) => [Number(r.id), r]));
    const countRows = rowsOf(at.pending) as { id: string; n: string; opening: string | null }[];
    const counts = new Map(countRows.map((r) => [r.id, Number(r.n)]));
    // The one-way conversations kept with their message: from the pending counts for steps about
    // a delivery, from their own query for the others.
    const openings = new Map(countRows.map((r) => [r.id, r.opening]));
    for (const r of rowsOf(at.openings) as { id: string; conversation: string }[]) openings.set(r.id, r.conversation);
    const skipped = held.filter((q) => q.lean && !keptPending(deliveries.get(q.delivery!)));
    if (skipped.length > 0) {
      const keys = textArray(skipped);
      for (const r of (await batch.now<ConversationRow>(this.#conversationsSql(keys), [])).rows)
        conversations.set(r.id as string, r);
      for (const r of (
        await batch.now<{ id: string; n: string; opening: string | null }>(this.#pendingSql(`= ANY(${keys})`, true), [])
      ).rows) {
        counts.set(r.id, Number(r.n));
        openings.set(r.id, r.opening);
      }
    }
    return held.map((q) => {
      if (q.delivery === undefined) return { found: { row: conversations.get(q.key), opening: openings.get(q.key) } };
      const row = deliveries.get(q.delivery);
      // Kept, as the locked row says: no conversation row, and this delivery its only one (see #beginGroup).
      if (q.lean && keptPending(row)) return keptStart(row.opening, row);
      return {
        found: { row: conversations.get(q.key), opening: openings.get(q.key) },
        withDelivery: { row, pending: counts.get(q.key) ?? 0 },
      };
    });
  }

  /** The step of `q` over what its transaction read: its conversation and, for a step about one delivery, that row (locked) and the pending count. */
  #stepOf(
    q: QueuedStep,
    batch: StatementBatch,
    found: Found | undefined,
    withDelivery: { row: Record<string, unknown> | undefined; pending: number } | undefined,
    optimistic = false,
  ): ConversationStep {
    const locked = withDelivery && { id: q.delivery!, row: withDelivery.row, optimistic };
    const pending = withDelivery && { base: withDelivery.pending, delta: 0, valid: true };
    const { conversation, held } = found ? startOf(found) : { conversation: undefined, held: 'none' as const };
    return (q.ran = this.#step(batch, q.key, conversation, held, locked, pending));
  }

  /**
   * BEGIN, the locks and the rows of `held` in one round trip (a multi-statement simple query, run
   * in order, so the locks are held before the rows are read; ids as escaped literals, since such
   * a query takes no parameters). Every lock is taken in one order (the locks' keys, the rows'
   * ids), so two nodes' groups never wait for each other in a cycle.
   *
   * A step about a delivery (an acknowledgement, mostly) reads that row locked, with the kept
   * conversation of its message, and the conversation's pending count here too: outstanding()
   * then needs no round trip of its own. A lean step reads only the row: while a delivery is
   * pending and marks its conversation kept (`kept_until`), that conversation has no row and this
   * delivery is its only one, so there is no row to lock and its pending count is 1. The mark is
   * read under the conversation's lock, which every step that writes the row holds, and that step
   * clears the mark of the conversation's pending delivery in the same transaction (#step's
   * saveConversation); replay clears it too, and a finished delivery is not pending.
   */
  #beginGroup(held: readonly QueuedStep[]): { sql: string; at: ReadsAt } {
    const withDelivery = held.filter((q) => q.delivery !== undefined && !q.optimistic);
    const full = withDelivery.filter((q) => !q.lean);
    const rowed = held.filter((q) => !q.lean);
    const others = held.filter((q) => q.delivery === undefined);
    const sql = ['BEGIN', this.#lockSql(held)];
    const at: ReadsAt = {};
    const read = (key: keyof ReadsAt, text: string) => {
      at[key] = sql.length;
      sql.push(text);
    };
    // The row lock too (when the row exists): a sweeping node skips a conversation a step holds.
    if (rowed.length > 0) read('conversations', this.#conversationsSql(textArray(rowed)));
    if (withDelivery.length > 0)
      read(
        'deliveries',
        // The kept conversation as a subquery, not a join: PostgreSQL plans a join of the two
        // tables for each group's text, which cost more than the reads a lean step skips.
        `SELECT d.*, CASE WHEN d.kept_until IS NOT NULL THEN (SELECT m.conversation FROM ${this.s}.messages m WHERE m.id = d.message_id) END AS opening
         FROM ${this.s}.deliveries d WHERE d.id = ANY(ARRAY[${withDelivery.map((q) => literal(q.delivery)).join(', ')}]::bigint[]) ORDER BY d.id FOR UPDATE`,
      );
    if (full.length > 0) read('pending', this.#pendingSql(`= ANY(${textArray(full)})`, true));
    if (others.length > 0) read('openings', this.#openingSql(`= ANY(${textArray(others)})`));
    return { sql: sql.join('; '), at };
  }

  /** The conversation locks of `held`, taken in the order of their keys (every group's order). */
  #lockSql(held: readonly QueuedStep[]): string {
    return `SELECT pg_advisory_xact_lock(k) FROM (SELECT hashtextextended('caxton-conversation:' || id, 0) AS k FROM unnest(${textArray(held)}) AS id ORDER BY k) AS l`;
  }

  /** The conversation rows of `ids` (an SQL text array), locked in the order of their ids. */
  #conversationsSql(ids: string): string {
    return `SELECT * FROM ${this.s}.conversations WHERE id = ANY(${ids}) ORDER BY id FOR UPDATE`;
  }

  /**
   * Runs `step` on up to `limit` open conversations whose deadline passed, each in its own
   * transaction, skipping those another node is handling now; returns how many it handled.
   */
  async expired(
    now: string,
    limit: number,
    step: (s: ConversationStep & { readonly conversation: Conversation }) => Promise<void>,
  ): Promise<number> {
    let handled = 0;
    // Conversations whose step lock another node holds right now: left to the next sweep.
    const busy: string[] = [];
    // Every node sweeps every second, and nearly always nothing is due: one statement says so,
    // instead of a transaction per kind of conversation.
    const due = (
      await this.pool.query<{ row: boolean; kept: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM ${this.s}.conversations WHERE state IN ('initiated', 'in_progress') AND expires_at < $1) AS row,
                EXISTS (SELECT 1 FROM ${this.s}.deliveries WHERE state = 'pending' AND kept_until < $2) AS kept`,
        [now, Date.parse(now)],
      )
    ).rows[0]!;
    // The conversations with a row first, then the one-way conversations kept with their message.
    for (const kept of [false, true]) {
      if (!(kept ? due.kept : due.row)) continue;
      for (; handled < limit;) {
        const did = await this.#tx(async (c, batch) => {
          const found = kept ? await this.#expiredKept(c, now, busy) : await this.#expiredRow(c, now, busy);
          if (!found) return 'none' as const;
          // The lock inConversation takes: never wait for it (that step may be waiting for this row).
          const locked = await c.query<{ ok: boolean }>(
            'SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS ok',
            [`caxton-conversation:${found.id}`],
          );
          // A kept conversation is read again under the lock: a step may have written its row since.
          const conversation = !locked.rows[0]!.ok
            ? undefined
            : kept
              ? (await this.#expiredKept(c, now, [], found.id))?.conversation
              : found.conversation;
          if (!conversation) {
            busy.push(found.id);
            return 'busy' as const;
          }
          await step(
            this.#step(batch, found.id, conversation, kept ? 'kept' : 'row') as ConversationStep & {
              conversation: Conversation;
            },
          );
          return 'done' as const;
        });
        if (did === 'none') break;
        if (did === 'done') handled++;
      }
    }
    return handled;
  }

  /** The open conversation row whose deadline passed first, locked (none another node holds, none of `busy`). */
  async #expiredRow(
    c: pg.PoolClient,
    now: string,
    busy: string[],
  ): Promise<{ id: string; conversation: Conversation } | undefined> {
    const row = (
      await c.query<ConversationRow>(
        `SELECT * FROM ${this.s}.conversations WHERE state IN ('initiated', 'in_progress') AND expires_at < $1 AND NOT (id = ANY($2))
         ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
        [now, busy],
      )
    ).rows[0];
    return row && { id: row.id, conversation: conversationOf(row) };
  }

  /** A one-way conversation kept with its message (no row) whose deadline passed (`id`: that one only). */
  async #expiredKept(
    c: pg.PoolClient,
    now: string,
    busy: string[],
    id?: string,
  ): Promise<{ id: string; conversation: Conversation } | undefined> {
    const r = (
      await c.query<{ id: string; conversation: string }>(
        `SELECT m.conversation_id AS id, m.conversation FROM ${this.s}.deliveries d JOIN ${this.s}.messages m ON m.id = d.message_id
         WHERE d.state = 'pending' AND d.kept_until < $1 AND NOT (m.conversation_id = ANY($2)) AND ($3::text IS NULL OR m.conversation_id = $3)
         LIMIT 1`,
        [Date.parse(now), busy, id ?? null],
      )
    ).rows[0];
    return r && { id: r.id, conversation: conversationOf(JSON.parse(r.conversation) as ConversationRow) };
  }

  /** The count of pending deliveries of the conversations `where` matches (`= 'id'`), per conversation with `grouped`. */
  // Driven from the conversation's messages, each message's deliveries read along
  // deliveries_message: the state is counted, not searched for, so no plan can start from
  // deliveries_open. A join (even LATERAL) on `state = 'pending'` was planned from that index
  // whenever the statistics counted few pending rows (right after a burst, before autoanalyze):
  // it then visited every pending delivery of the cluster, 60–80 ms for a group of 64 beside a
  // backlog of 18,000 (ADR 0075).
  #pendingSql(where: string, grouped = false): string {
    const n = `(SELECT count(*) FILTER (WHERE d.state = 'pending') FROM ${this.s}.deliveries d WHERE d.message_id = m.id)`;
    const from = `FROM ${this.s}.messages m WHERE m.conversation_id ${where}`;
    // With the one-way conversation a message keeps (at most one message of a conversation keeps one).
    return grouped
      ? `SELECT m.conversation_id AS id, sum(${n}) AS n, max(${keptJsonSql(this.s, 'm', true)}) AS opening ${from} GROUP BY m.conversation_id`
      : `SELECT coalesce(sum(${n}), 0) AS n, max(${keptJsonSql(this.s, 'm', true)}) AS opening ${from}`;
  }

  /** The one-way conversations the messages of the conversations `where` matches keep (ADR 0080). */
  #openingSql(where: string): string {
    return `SELECT m.conversation_id AS id, ${keptJsonSql(this.s, 'm', true)} AS conversation FROM ${this.s}.messages m WHERE m.conversation_id ${where} AND m.conversation IS NOT NULL`;
  }

  /** Takes the next reserved delivery id (undefined when none is left: the caller asks PostgreSQL), reserving more ahead of need. */
  #takeId(): number | undefined {
    const id = this.#ids.shift();
    if (this.#ids.length < ID_BLOCK / 4) this.#reserveIds();
    return id;
  }

  /** Reserves a block of delivery ids when fewer than a quarter of one is left (one query, off any step's path). */
  #reserveIds(): void {
    if (this.#reserving || this.#ids.length >= ID_BLOCK / 4) return;
    this.#reserving = this.pool
      .query<{ id: string }>(
        `SELECT nextval(pg_get_serial_sequence('${this.s}.deliveries', 'id')) AS id FROM generate_series(1, ${ID_BLOCK})`,
      )
      .then(
        (r) => void this.#ids.push(...r.rows.map((x) => Number(x.id))),
        () => {}, // PostgreSQL away: steps take ids from the INSERT meanwhile, and the next step tries again
      )
      .finally(() => (this.#reserving = undefined));
  }

  #step(
    b: StatementBatch,
    id: string,
    conversation: Conversation | undefined,
    /** Where the conversation is: its row, kept with its message (no row yet), or nowhere yet. */
    held: Held,
    locked?: LockedDelivery,
    pending?: PendingCount,
  ): PgConversationStep {
    return new PgConversationStep(this.s, b, id, conversation, held, locked, pending, this.#stepHost);
  }

  /** What a step asks of its store: a reserved delivery id, and the pending count's SQL. */
  readonly #stepHost: StepHost = {
    takeId: () => this.#takeId(),
    pendingSql: (where) => this.#pendingSql(where),
    keptInserted: (id, hint) => remember(this.#keptOut, id, hint),
  };

  #tx<T>(fn: (c: pg.PoolClient, batch: StatementBatch) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, 'BEGIN', (c, _started, batch) => fn(c, batch));
  }

  // ---- delivery rows (each its own statement: a row belongs to one delivery, held by one node) ----

  /** The delivery is done; the replies it produced are stored in the same transaction. */
  ack(id: number, replies: readonly AclMessage[], now: string): Promise<void> {
    return this.#tx(async (_c, batch) => {
      batch.later(
        `UPDATE ${this.s}.deliveries SET state = 'done', attempts = attempts + 1, updated_at = $1, unpublished_since = NULL WHERE id = $2`,
        [now, id],
      );
      for (const r of replies) await this.#step(batch, r.conversation_id, undefined, 'none').insertMessage(r, []);
    });
  }

  /**
   * A failed attempt of a pending delivery, to be run again at `nextAt`. Only a row still pending
   * changes: false when it is done, dead or rerouted already (another node, or another copy of the
   * delivery JetStream gave this one, finished it first). Why: writing 'pending' over 'done' ran
   * the delivery again and stored a second answer (three-nodes e2e, nats-server killed).
   */
  async retry(id: number, attempts: number, nextAt: number, error: string, now: string): Promise<boolean> {
    const r = await this.pool.query(
      `UPDATE ${this.s}.deliveries SET attempts = $1, next_at = $2, last_error = $3, updated_at = $4, errors = ${appendAttemptError('$4', '$3')} WHERE id = $5 AND state = 'pending'`,
      [attempts, nextAt, scrubSecrets(error), now, id],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** A pending delivery dead-lettered (false: it was not pending any more, as for `retry`). */
  async dead(id: number, attempts: number, error: string, now: string): Promise<boolean> {
    const r = await this.pool.query(
      `UPDATE ${this.s}.deliveries SET state = 'dead', attempts = $1, last_error = $2, updated_at = $3, unpublished_since = NULL, errors = ${appendAttemptError('$3', '$2')} WHERE id = $4 AND state = 'pending'`,
      [attempts, scrubSecrets(error), now, id],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** A dead letter back to pending with fresh attempts; false when it was not dead (another node replayed it first). */
  async replay(id: number, now: string): Promise<boolean> {
    const r = await this.pool.query(
      `UPDATE ${this.s}.deliveries SET state = 'pending', attempts = 0, next_at = 0, updated_at = $1, kept_until = NULL WHERE id = $2 AND state = 'dead'`,
      [now, id],
    );
    return (r.rowCount ?? 0) > 0;
  }
}

/**
 * The done-markings of optimistic steps as one UPDATE of the deliveries in schema `s` (quoted),
 * each on condition that its row is as the take read it (`readAt`); it returns the ids of the rows
 * it marked (the others' steps run again). The rows are found by primary key and each one's values
 * picked from arrays by its position, with no join: joined to a VALUES list, the planner of a
 * table not yet analyzed (a new deployment, a backlog grown since the last ANALYZE) scanned the
 * list once per pending row, and a group's transaction went from milliseconds to hundreds while it
 * held its conversations' locks.
 */
export function optimisticDoneSql(
  s: string,
  done: readonly { id: number; attempts: number; at: string; readAt: string }[],
): string {
  const array = (values: readonly Literal[], type: string) => `ARRAY[${values.map(literal).join(',')}]::${type}[]`;
  const ids = array(
    done.map((d) => d.id),
    'bigint',
  );
  /** The value of the row being updated, out of `values` (one per id, in the same order). */
  const its = (values: readonly Literal[], type: string) => `(${array(values, type)})[array_position(${ids}, d.id)]`;
  const attempts = its(
    done.map((d) => d.attempts),
    'integer',
  );
  const at = its(
    done.map((d) => d.at),
    'text',
  );
  const readAt = its(
    done.map((d) => d.readAt),
    'text',
  );
  return `UPDATE ${s}.deliveries AS d SET state = 'done', attempts = ${attempts}, updated_at = ${at}, unpublished_since = NULL
    WHERE d.id = ANY(${ids}) AND d.state = 'pending' AND d.attempts = 0 AND d.kept_until IS NOT NULL AND d.updated_at = ${readAt}
    RETURNING d.id`;
}
