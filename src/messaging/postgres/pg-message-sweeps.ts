/**
 * The sweeps over a cluster's message state, run by every node on a timer: the publish marks the
 * republish sweep reads (deliveries stored but never confirmed published, or untouched too long),
 * and retention. Each takes its rows so that nodes sweeping at once split them, or skip.
 */
import type { AclMessage } from '../index.js';
import { inTransaction, intArray } from '../../storage/pg/index.js';
import { PgMessageRows } from './pg-message-rows.js';

/** The `[messaging]` retention keys the cluster applies (max_messages is the single node's only). */
export interface MessagingRetentionLimits {
  retention: number;
  max_conversations: number;
  dead_letter_retention: number;
  max_dead_letters: number;
}

/** A stored delivery whose publish was not confirmed (see migration cluster-messaging-004). */
export interface UnpublishedDelivery {
  id: number;
  receiver: string;
  /** The Nats-Msg-Id suffix it was (or was to be) published with. */
  tag: string;
  message: AclMessage;
}

export class PgMessageSweeps extends PgMessageRows {
  /**
   * Records JetStream's PubAck of these deliveries (under the tag each was published with: a later
   * replay's stays unpublished). A row a conversation step holds is skipped, not waited for: that
   * step is finishing it (an acknowledgement, mostly), and a step must never wait behind this
   * bookkeeping. Should the row stay pending, it is published again under the same Nats-Msg-Id,
   * which JetStream drops within its duplicate window.
   */
  async markPublished(published: readonly { id: number; tag: string }[]): Promise<void> {
    if (published.length === 0) return;
    await this.pool.query(
      `UPDATE ${this.s}.deliveries d SET unpublished_since = NULL FROM (
         SELECT x.id FROM ${this.s}.deliveries x JOIN unnest($1::bigint[], $2::text[]) AS p(id, tag) ON x.id = p.id AND x.publish_tag = p.tag
         WHERE x.unpublished_since IS NOT NULL AND x.state = 'pending' FOR UPDATE OF x SKIP LOCKED) AS l WHERE d.id = l.id`,
      [published.map((p) => p.id), published.map((p) => p.tag)],
    );
  }

  /**
   * Marks these deliveries' publish as not confirmed since `at` (the publish failed: no PubAck in
   * time, or NATS refused it), for the republish sweep. Only pending rows without a mark: a
   * finished one is never published again, and a marked one keeps its older mark.
   */
  async markUnpublished(ids: readonly number[], at: number): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query(
      `UPDATE ${this.s}.deliveries SET unpublished_since = $2 WHERE id = ANY($1::bigint[]) AND state = 'pending' AND unpublished_since IS NULL`,
      [ids, at],
    );
  }

  /** Pending deliveries stored before `before` (epoch ms) whose publish was never confirmed, oldest first. */
  async unpublished(before: number, limit: number): Promise<UnpublishedDelivery[]> {
    const rows = (
      await this.pool.query<{ id: string; receiver: string; publish_tag: string; body: string }>(
        `SELECT d.id, d.receiver, d.publish_tag, m.body FROM ${this.s}.deliveries d JOIN ${this.s}.messages m ON m.id = d.message_id
         WHERE d.unpublished_since IS NOT NULL AND d.unpublished_since < $1 AND d.state = 'pending' ORDER BY d.unpublished_since LIMIT $2`,
        [before, limit],
      )
    ).rows;
    return rows.map((r) => ({
      id: Number(r.id),
      receiver: r.receiver,
      tag: r.publish_tag,
      message: JSON.parse(r.body) as AclMessage,
    }));
  }

  /**
   * Records that this node still holds these pending deliveries (fetched, queued or running here),
   * in one UPDATE: the reconciliation sweep leaves a row held since its cutoff alone. A row a step
   * holds is skipped, not waited for: that step is finishing it.
   */
  async stillHeld(ids: readonly number[], at: number): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query(
      `UPDATE ${this.s}.deliveries d SET held_at = $2 FROM (
         SELECT id FROM ${this.s}.deliveries WHERE id = ANY($1::bigint[]) AND state = 'pending' FOR UPDATE SKIP LOCKED) AS x
       WHERE d.id = x.id`,
      [intArray(ids), at],
    );
  }

  /**
   * Claims pending deliveries nothing touched since `before` (epoch ms: not stored, retried, or
   * published again since, and held by no node since: `stillHeld`), oldest first, for the
   * reconciliation sweep: whatever their publish mark says, the stream may have lost them. A
   * claimed row is not claimed again before `before` passes its claim, on this node or another.
   */
  async stale(before: number, limit: number): Promise<UnpublishedDelivery[]> {
    const s = this.s;
    // The candidates are read from deliveries_open (the unfinished rows) whatever the statistics
    // say: ordered by the primary key, with statistics from before a burst (every row pending),
    // PostgreSQL walked the whole table along it to find the few pending rows (200,000 rows: 270–
    // 340 ms, every node's claim), and unordered it read the table through. `id + 0` is an order no
    // index gives, and with sequential scans off the partial index is the only cheap way left.
    const rows = await inTransaction(this.pool, 'BEGIN; SET LOCAL enable_seqscan = off', async (c) => {
      const r = await c.query<{ id: string; receiver: string; publish_tag: string; body: string }>(
        `WITH claimed AS (
           UPDATE ${s}.deliveries d SET reconciled_at = $3 FROM (
             SELECT id FROM ${s}.deliveries WHERE state = 'pending' AND unpublished_since IS NULL AND updated_at < $1 AND next_at < $2
               AND (reconciled_at IS NULL OR reconciled_at < $2) AND (held_at IS NULL OR held_at < $2)
             ORDER BY id + 0 LIMIT $4 FOR UPDATE SKIP LOCKED) AS x
           WHERE d.id = x.id RETURNING d.id, d.receiver, d.publish_tag, d.message_id)
         SELECT c.id, c.receiver, c.publish_tag, m.body FROM claimed c JOIN ${s}.messages m ON m.id = c.message_id ORDER BY c.id`,
        [new Date(before).toISOString(), before, Date.now(), limit],
      );
      return r.rows;
    });
    return rows.map((r) => ({
      id: Number(r.id),
      receiver: r.receiver,
      tag: r.publish_tag,
      message: JSON.parse(r.body) as AclMessage,
    }));
  }

  /**
   * One batch of retention, as the single-node rules (src/messaging/sqlite/sqlite-retention.ts): dead letters
   * older than `dead_letter_retention` or beyond `max_dead_letters`, then finished conversations
   * with nothing undelivered or dead, idle longer than `retention` or beyond `max_conversations`
   * (oldest first), each with its messages, deliveries and subscriptions. One node at a time runs
   * it (a transaction-scoped try-lock; the others skip). Returns the rows deleted per rule and
   * whether a full batch was taken (more may be due).
   */
  prune(
    cfg: MessagingRetentionLimits,
    batch: number,
  ): Promise<{ dead_letters: number; conversations: number; more: boolean; skipped: boolean }> {
    const s = this.s;
    return inTransaction(this.pool, 'BEGIN', async (c) => {
      const lock = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS ok', [
        `caxton-retention:${s}`,
      ]);
      if (!lock.rows[0]!.ok) return { dead_letters: 0, conversations: 0, more: false, skipped: true };
      const deadCutoff = new Date(Date.now() - cfg.dead_letter_retention).toISOString();
      const dead = await c.query(
        `DELETE FROM ${s}.deliveries WHERE id IN (
           (SELECT id FROM ${s}.deliveries WHERE state = 'dead' AND updated_at < $1 ORDER BY id LIMIT $2)
           UNION (SELECT id FROM ${s}.deliveries WHERE state = 'dead' ORDER BY id DESC OFFSET $3 LIMIT $2))`,
        [deadCutoff, batch, cfg.max_dead_letters],
      );
      const cutoff = new Date(Date.now() - cfg.retention).toISOString();
      const settled = `state IN ('completed', 'failed', 'expired') AND NOT EXISTS (SELECT 1 FROM ${s}.messages m JOIN ${s}.deliveries d ON d.message_id = m.id WHERE m.conversation_id = c.id AND d.state <> 'done')`;
      // The idle half reads the conversations created before the cutoff (conversations_created),
      // those idle since are among them. The cap's half first asks whether there are more than
      // max_conversations conversations at all, along the same index (a one-time filter): without
      // it, each run tested every finished conversation for undelivered work to skip the newest
      // max_conversations, a stall of the shared PostgreSQL each minute on each node that grew with the table.
      // One-way conversations completed by their delivery have no row (migration
      // cluster-messaging-011-ended-kept): their delivery, done and still marked, along
      // deliveries_kept_done. Settled by construction (a second message would have written the row).
      const ended = `SELECT m.conversation_id AS id, m.created_at, d.updated_at FROM ${s}.deliveries d JOIN ${s}.messages m ON m.id = d.message_id
        WHERE d.state = 'done' AND d.kept_until IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${s}.conversations x WHERE x.id = m.conversation_id)`;
      const ids = (
        await c.query<{ id: string }>(
          `(SELECT id FROM ${s}.conversations c WHERE ${settled} AND created_at < $1 AND updated_at < $1 ORDER BY updated_at LIMIT $2)
           UNION (SELECT id FROM (${ended}) k WHERE created_at < $1 AND updated_at < $1 ORDER BY updated_at LIMIT $2)
           UNION (SELECT id FROM (SELECT id, updated_at FROM ${s}.conversations c WHERE ${settled} UNION ALL SELECT id, updated_at FROM (${ended}) k) a
             WHERE EXISTS (SELECT 1 FROM (SELECT id FROM ${s}.conversations UNION ALL SELECT id FROM (${ended}) k) n OFFSET $3 LIMIT 1)
             ORDER BY updated_at DESC OFFSET $3 LIMIT $2)`,
          [cutoff, batch, cfg.max_conversations],
        )
      ).rows.map((r) => r.id);
      let conversations = 0;
      if (ids.length > 0) {
        await c.query(
          `DELETE FROM ${s}.deliveries WHERE message_id IN (SELECT id FROM ${s}.messages WHERE conversation_id = ANY($1))`,
          [ids],
        );
        await c.query(`DELETE FROM ${s}.messages WHERE conversation_id = ANY($1)`, [ids]);
        await c.query(`DELETE FROM ${s}.subscriptions WHERE conversation_id = ANY($1)`, [ids]);
        await c.query(`DELETE FROM ${s}.conversations WHERE id = ANY($1)`, [ids]);
        // Rows and conversations read from their delivery alike: one each.
        conversations = ids.length;
      }
      const deadLetters = dead.rowCount ?? 0;
      return {
        dead_letters: deadLetters,
        conversations,
        more: deadLetters >= batch || ids.length >= batch,
        skipped: false,
      };
    });
  }

  /** Deletes the dead letters among `ids` (one replayed meanwhile is not dead, and stays); returns those deleted. */
  async discardDead(ids: readonly number[]): Promise<number[]> {
    if (ids.length === 0) return [];
    const r = await this.pool.query<{ id: string }>(
      `DELETE FROM ${this.s}.deliveries WHERE id = ANY($1::bigint[]) AND state = 'dead' RETURNING id`,
      [ids],
    );
    return r.rows.map((x) => Number(x.id));
  }

  /**
   * Deletes those of `ids` that are finished conversations with nothing of theirs pending or dead,
   * with their messages, deliveries and subscriptions (what retention would take, now); returns how many.
   */
  dropSettledConversations(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return Promise.resolve(0);
    const s = this.s;
    return inTransaction(this.pool, 'BEGIN', async (c) => {
      const settled = (
        await c.query<{ id: string }>(
          `SELECT id FROM ${s}.conversations c WHERE id = ANY($1::text[]) AND state IN ('completed', 'failed', 'expired')
             AND NOT EXISTS (SELECT 1 FROM ${s}.messages m JOIN ${s}.deliveries d ON d.message_id = m.id WHERE m.conversation_id = c.id AND d.state <> 'done')
           ORDER BY id FOR UPDATE`,
          [[...new Set(ids)]],
        )
      ).rows.map((r) => r.id);
      if (settled.length === 0) return 0;
      await c.query(
        `DELETE FROM ${s}.deliveries WHERE message_id IN (SELECT id FROM ${s}.messages WHERE conversation_id = ANY($1))`,
        [settled],
      );
      await c.query(`DELETE FROM ${s}.messages WHERE conversation_id = ANY($1)`, [settled]);
      await c.query(`DELETE FROM ${s}.subscriptions WHERE conversation_id = ANY($1)`, [settled]);
      return (await c.query(`DELETE FROM ${s}.conversations WHERE id = ANY($1)`, [settled])).rowCount ?? 0;
    });
  }
}
