import type { Db, RetentionRule } from '../../storage/index.js';

/** What messaging keeps (`[messaging]` retention keys). */
export interface MessagingRetention {
  /** Finished conversations (with their messages and deliveries) idle longer than this are deleted, ms. */
  retention: number;
  /** At most this many finished conversations are kept; the oldest go first. */
  max_conversations: number;
  /** At most this many messages are kept: the oldest finished conversations go first. */
  max_messages: number;
  /** Dead letters older than this are deleted, ms. */
  dead_letter_retention: number;
  /** At most this many dead letters are kept; the oldest go first. */
  max_dead_letters: number;
}

const FINISHED = "state IN ('completed', 'failed', 'expired')";
/** Nothing of the conversation is still to deliver, nor waiting in the dead-letter queue. */
const SETTLED =
  "NOT EXISTS (SELECT 1 FROM messages m JOIN deliveries d ON d.message_id = m.id WHERE m.conversation_id = c.id AND d.state <> 'done')";

/**
 * Retention rules of the messaging tables, for the storage Pruner. The unit is the finished
 * conversation: it goes with its messages, their deliveries and its subscriptions, and only when
 * nothing of it is undelivered (a pending or retrying delivery) or dead-lettered; an open
 * conversation is never touched. Dead letters have their own retention; once one is deleted its
 * conversation can go too. A message id is remembered for duplicate detection as long as it is kept.
 */
export function messagingRetentionRules(db: Db, cfg: MessagingRetention): RetentionRule[] {
  const byAge = db
    .prepare(
      `SELECT c.id FROM conversations c WHERE ${FINISHED} AND updated_at < ? AND ${SETTLED} ORDER BY updated_at LIMIT ?`,
    )
    .pluck();
  const oldest = db
    .prepare(`SELECT c.id FROM conversations c WHERE ${FINISHED} AND ${SETTLED} ORDER BY rowid LIMIT ?`)
    .pluck();
  const finishedCount = db.prepare(`SELECT count(*) FROM conversations WHERE ${FINISHED}`).pluck();
  const messageCount = db.prepare('SELECT count(*) FROM messages').pluck();
  const delDeliveries = db.prepare(
    'DELETE FROM deliveries WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = ?)',
  );
  const delMessages = db.prepare('DELETE FROM messages WHERE conversation_id = ?');
  const delSubs = db.prepare('DELETE FROM subscriptions WHERE conversation_id = ?');
  const delConversation = db.prepare('DELETE FROM conversations WHERE id = ?');
  /** Deletes conversations with everything of theirs; returns the rows deleted and the messages among them. */
  const drop = (ids: string[]): { rows: number; messages: number } => {
    let rows = 0;
    let messages = 0;
    for (const id of ids) {
      rows += delDeliveries.run(id).changes;
      const m = delMessages.run(id).changes;
      messages += m;
      rows += m + delSubs.run(id).changes + delConversation.run(id).changes;
    }
    return { rows, messages };
  };
  // Conversations per batch: each carries a few messages and deliveries, so a batch of rows stays small.
  const per = (limit: number) => Math.max(1, Math.floor(limit / 4));

  // How far over the count limits, counted once per backlog (count(*) is a scan) and then
  // decremented batch by batch; recounted when the backlog is done.
  let overConversations: number | undefined;
  let overMessages: number | undefined;
  const conversations: RetentionRule = {
    name: 'conversations',
    prune(limit) {
      const n = per(limit);
      const cutoff = new Date(Date.now() - cfg.retention).toISOString();
      let ids = byAge.all(cutoff, n) as string[];
      if (ids.length > 0) {
        const { rows, messages } = drop(ids);
        if (overConversations !== undefined) overConversations -= ids.length;
        if (overMessages !== undefined) overMessages -= messages;
        return { deleted: rows, more: true };
      }
      overConversations ??= (finishedCount.get() as number) - cfg.max_conversations;
      if (overConversations > 0) {
        ids = oldest.all(Math.min(overConversations, n)) as string[];
        if (ids.length > 0) {
          const { rows, messages } = drop(ids);
          overConversations -= ids.length;
          if (overMessages !== undefined) overMessages -= messages;
          return { deleted: rows, more: true };
        }
      }
      overMessages ??= (messageCount.get() as number) - cfg.max_messages;
      if (overMessages > 0) {
        // A conversation holds at least one message: taking at most `over` of them never overshoots by more than a batch.
        ids = oldest.all(Math.min(n, overMessages)) as string[];
        if (ids.length > 0) {
          const { rows, messages } = drop(ids);
          overMessages -= messages;
          return { deleted: rows, more: true };
        }
      }
      overConversations = undefined;
      overMessages = undefined;
      return { deleted: 0, more: false };
    },
  };

  const deadByAge = db.prepare(
    "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE state = 'dead' AND updated_at < ? ORDER BY id LIMIT ?)",
  );
  const deadCut = db
    .prepare("SELECT id FROM deliveries WHERE state = 'dead' ORDER BY id DESC LIMIT 1 OFFSET ?")
    .pluck();
  const deadOver = db.prepare(
    "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE state = 'dead' AND id <= ? ORDER BY id LIMIT ?)",
  );
  const deadLetters: RetentionRule = {
    name: 'dead_letters',
    prune(limit) {
      const n = deadByAge.run(new Date(Date.now() - cfg.dead_letter_retention).toISOString(), limit).changes;
      if (n >= limit) return { deleted: n, more: true };
      const cut = deadCut.get(cfg.max_dead_letters) as number | undefined;
      const m = cut === undefined ? 0 : deadOver.run(cut, limit - n).changes;
      return { deleted: n + m, more: n + m >= limit };
    },
  };
  // Dead letters first: deleting one can make its conversation due in the same run.
  return [deadLetters, conversations];
}
