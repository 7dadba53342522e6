/**
 * Chat threads read from the execution records: a thread is one conversation with one agent,
 * begun by a direct call (the invoke API, /v1, MCP; not a message delivery), and its turns are
 * that conversation's executions of the agent. Nothing is stored for threads beyond the records
 * themselves, so a thread lives as long as its executions are kept (`[executions] retention`).
 *
 * The queries are written once for both adapters: each hands over a runner that fills in its
 * dialect's placeholders and reads the rows.
 */
import { ENTRY_COLUMNS, viewOfRow, type ExecutionRow, type ExecutionView } from './record-model.js';

/** Runs the SQL that `build` writes (`param` gives each value's placeholder) and returns its rows. */
export type RowRunner = <R>(build: (param: (v: string | number) => string) => string) => Promise<R[]>;

export interface ThreadQuery {
  agent: string;
  /** Only threads begun by this principal (null: by no principal, a server without authentication); absent: anyone's. */
  principal?: string | null;
  /** Default 50. */
  limit?: number;
  /** Only threads last active before this cursor (the previous page's `next_cursor`). */
  before?: number;
}

/** One thread as a list shows it. */
export interface ThreadSummary {
  conversation_id: string;
  agent: string;
  /** The first request, cut short. */
  title: string;
  /** Executions in the thread (each a request and its answer or error). */
  turns: number;
  /** Who began it. */
  principal: string | null;
  started_at: string;
  last_active_at: string;
  /** The version of the agent's history its newest turn ran on, when known. */
  version_number: number | null;
  /** What its newest turn was addressed to: NAME, or NAME@VERSION when a version was chosen. */
  target: string;
}

export interface ThreadPage {
  threads: ThreadSummary[];
  next_cursor?: string;
}

/** Longest thread title, in UTF-16 units. */
export const TITLE_LENGTH = 80;
/** Most turns a thread read returns (its newest). */
export const THREAD_TURNS = 500;

export function titleOf(request: string): string {
  const flat = request.replace(/\s+/g, ' ').trim();
  return flat.length > TITLE_LENGTH ? `${flat.slice(0, TITLE_LENGTH - 1)}…` : flat;
}

export function targetOf(v: Pick<ExecutionView, 'agent' | 'addressed' | 'version_number'>): string {
  return v.addressed && v.version_number !== null ? `${v.agent}@${v.version_number}` : v.agent;
}

interface GroupRow {
  conversation_id: string;
  turns: number | string;
  first_id: number | string;
  last_id: number | string;
}

/** Executions that can be a chat's turns: in a conversation, not a message's delivery. */
const CHAT = 'conversation_id IS NOT NULL AND message_id IS NULL';

/**
 * A page of one agent's threads, newest activity first. A thread belongs to whoever made its first
 * turn: with a principal given, a conversation it joined later is not its thread. Shadow copies
 * (a rollout's candidate run on a live request) are no one's thread.
 */
export async function listThreads(run: RowRunner, table: string, q: ThreadQuery): Promise<ThreadPage> {
  const limit = q.limit ?? 50;
  const groups = await run<GroupRow>((p) => {
    // Placeholders are numbered in the order they are made (SQLite's `?` by position): in the text's order.
    const agent = p(q.agent);
    const who =
      q.principal === undefined
        ? ''
        : q.principal === null
          ? ' AND principal IS NULL'
          : ` AND principal = ${p(q.principal)}`;
    const before = q.before === undefined ? '' : ` HAVING MAX(id) < ${p(q.before)}`;
    return `SELECT conversation_id, COUNT(*) AS turns, MIN(id) AS first_id, MAX(id) AS last_id FROM ${table}
      WHERE agent = ${agent} AND ${CHAT}${who} GROUP BY conversation_id${before} ORDER BY MAX(id) DESC LIMIT ${p(limit)}`;
  });
  if (groups.length === 0) return { threads: [] };
  const ids = groups.map((g) => g.conversation_id);
  // Each conversation's own first turn (another principal's, when it began the conversation).
  const firsts = await run<{ conversation_id: string; first_id: number | string }>(
    (p) => `SELECT conversation_id, MIN(id) AS first_id FROM ${table}
      WHERE agent = ${p(q.agent)} AND ${CHAT} AND conversation_id IN (${ids.map(p).join(', ')}) GROUP BY conversation_id`,
  );
  const firstOf = new Map(firsts.map((f) => [f.conversation_id, Number(f.first_id)]));
  const wanted = groups.flatMap((g) => [Number(firstOf.get(g.conversation_id) ?? g.first_id), Number(g.last_id)]);
  const rows = await run<ExecutionRow>(
    (p) =>
      `SELECT id, ${ENTRY_COLUMNS.join(', ')} FROM ${table} WHERE id IN (${[...new Set(wanted)].map(p).join(', ')})`,
  );
  const byId = new Map(rows.map((r) => [Number(r.id), viewOfRow(r)]));
  const threads: ThreadSummary[] = [];
  for (const g of groups) {
    const first = byId.get(firstOf.get(g.conversation_id) ?? Number(g.first_id));
    const last = byId.get(Number(g.last_id));
    if (!first || !last || first.shadow) continue;
    if (q.principal !== undefined && first.principal !== q.principal) continue;
    threads.push({
      conversation_id: g.conversation_id,
      agent: last.agent,
      title: titleOf(first.request),
      turns: Number(g.turns),
      principal: first.principal,
      started_at: first.started_at,
      last_active_at: last.finished_at,
      version_number: last.version_number,
      target: targetOf(last),
    });
  }
  const tail = groups[groups.length - 1];
  return { threads, ...(groups.length === limit && tail && { next_cursor: String(tail.last_id) }) };
}

const THREAD_WHERE = (p: (v: string | number) => string, agent: string, conversation: string) =>
  `conversation_id = ${p(conversation)} AND agent = ${p(agent)} AND message_id IS NULL`;

/** A thread's first execution: whose principal began it. */
export async function readFirst(
  run: RowRunner,
  table: string,
  agent: string,
  conversation: string,
): Promise<ExecutionView | undefined> {
  const rows = await run<ExecutionRow>(
    (p) =>
      `SELECT id, ${ENTRY_COLUMNS.join(', ')} FROM ${table} WHERE ${THREAD_WHERE(p, agent, conversation)} ORDER BY id LIMIT 1`,
  );
  return rows[0] && viewOfRow(rows[0]);
}

/** One conversation's executions of `agent` (its newest `limit`, at most THREAD_TURNS), oldest first. */
export async function readThread(
  run: RowRunner,
  table: string,
  agent: string,
  conversation: string,
  limit = THREAD_TURNS,
): Promise<ExecutionView[]> {
  const rows = await run<ExecutionRow>(
    (p) => `SELECT id, ${ENTRY_COLUMNS.join(', ')} FROM ${table}
      WHERE ${THREAD_WHERE(p, agent, conversation)}
      ORDER BY id DESC LIMIT ${p(Math.min(limit, THREAD_TURNS))}`,
  );
  return rows.reverse().map(viewOfRow);
}
