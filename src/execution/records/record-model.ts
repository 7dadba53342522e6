/**
 * Executions as records (ADR 0056): what one execution did, kept for a while after it finished —
 * its agent and version, who asked, in which conversation and for which message, each model
 * turn, each tool call with its arguments, result, duration and outcome, tokens, latency, errors.
 *
 * One shape, one filter and one way to build a record, shared by both adapters of the port
 * (`ExecutionLog`): SQLite on a single node, PostgreSQL on a cluster. Stored text is scrubbed of
 * the configured secrets and bounded: each argument object, result, request and answer is cut at
 * a fixed size with a marker saying how much was cut, so one chatty tool cannot grow a row
 * without bound.
 */
import { agentScopeSql } from '../../auth/scope-read.js';
import { isCaxtonError } from '../../shared/errors.js';
import { scrubSecrets } from '../../shared/secrets.js';
import type { SqlDialect } from '../../storage/index.js';
import type { AgentResponse, InvokeRequest, ModelTurn, ToolCallRecord } from '../types.js';
import type { ThreadPage, ThreadQuery } from './thread-reads.js';

/** Longest stored request, answer or error message, in UTF-16 units. */
export const MAX_TEXT = 8 * 1024;
/** Longest stored tool arguments (as JSON) or tool result. */
export const MAX_TOOL_TEXT = 4 * 1024;
/** Most tool calls and model turns stored per execution (the rest are counted, not stored). */
export const MAX_STEPS = 200;

/** Cuts `text` to `max` units, with a marker naming how much was cut (never inside a surrogate pair). */
export function bounded(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max;
  const c = text.charCodeAt(end - 1);
  if (c >= 0xd800 && c <= 0xdbff) end--;
  return `${text.slice(0, end)}…[truncated ${text.length - end} chars]`;
}

export interface StoredToolCall {
  id: string;
  name: string;
  /** The arguments as JSON text (bounded). */
  arguments: string;
  result: string;
  outcome: 'ok' | 'error';
  duration_ms: number;
}

/** One execution as the API serves it (GET /api/v1/executions/{id}). */
export interface ExecutionView {
  id: string;
  agent: string;
  /** The definition's `version`. */
  version: string;
  /** Which version of the agent's history ran (what NAME@VERSION addresses), when known. */
  version_number: number | null;
  /** Whether the caller addressed that version itself (NAME@VERSION) rather than the agent's name. */
  addressed: boolean;
  principal: string | null;
  conversation_id: string | null;
  message_id: string | null;
  /** 'ok' or 'error'. */
  status: 'ok' | 'error';
  error: { code: string; message: string } | null;
  started_at: string;
  finished_at: string;
  duration_ms: number;
  isolation: string | null;
  provider: string | null;
  model: string | null;
  finish_reason: string | null;
  usage: { input_tokens: number; output_tokens: number };
  turns: number;
  trace_id: string | null;
  shadow: boolean;
  /** The node that ran it (a cluster), else null. */
  node: string | null;
  request: string;
  answer: string | null;
  model_turns: ModelTurn[];
  tool_calls: StoredToolCall[];
  /** Steps beyond MAX_STEPS that were not stored. */
  steps_not_stored: number;
}

/** A list entry: the view without the bulky parts. */
export type ExecutionSummary = Omit<ExecutionView, 'request' | 'answer' | 'model_turns' | 'tool_calls'> & {
  tool_calls: number;
};

/** What the adapters write: the columns, and the bulky parts as one JSON text. */
export interface ExecutionEntry {
  id: string;
  ts: number;
  ended: number;
  agent: string;
  version: string;
  principal: string | null;
  conversation_id: string | null;
  message_id: string | null;
  status: 'ok' | 'error';
  error_code: string | null;
  duration_ms: number;
  input_tokens: number;
  output_tokens: number;
  trace_id: string | null;
  /** JSON: everything else of ExecutionView (scrubbed when written). */
  detail: string;
}

/** The columns every adapter stores, in this order (PostgreSQL's adds `node`). */
export const ENTRY_COLUMNS = [
  'execution_id',
  'ts',
  'ended',
  'agent',
  'version',
  'principal',
  'conversation_id',
  'message_id',
  'status',
  'error_code',
  'duration_ms',
  'input_tokens',
  'output_tokens',
  'trace_id',
  'detail',
] as const;

export function entryValues(e: ExecutionEntry): (string | number | null)[] {
  return [
    e.id,
    e.ts,
    e.ended,
    e.agent,
    e.version,
    e.principal,
    e.conversation_id,
    e.message_id,
    e.status,
    e.error_code,
    e.duration_ms,
    e.input_tokens,
    e.output_tokens,
    e.trace_id,
    scrubSecrets(e.detail), // ADR 0017
  ];
}

/** What the executor hands over for one finished execution. */
export interface FinishedExecution {
  id: string;
  agent: string;
  version: string;
  /** The version of the agent's history that ran, when known. */
  version_number?: number | undefined;
  /** Addressed as NAME@VERSION. */
  addressed?: boolean;
  shadow: boolean;
  /** Epoch ms when it started. */
  started: number;
  duration_ms: number;
  request: InvokeRequest;
  response?: AgentResponse | undefined;
  error?: unknown;
  /** Its `agent.execute` span's trace, when traced. */
  trace_id?: string | undefined;
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;

/**
 * The record of a finished execution. Cheap on purpose (it runs on the executor's path): the
 * bulky parts are bounded here and serialized once; scrubbing happens when the batch is written.
 *
 * The detail JSON leaves out what a reader can put back (ADR 0092): a part at its default (no
 * error, not a shadow, no version number, nothing left unstored), and a model turn's provider and
 * model when they are the execution's. `viewOfRow` restores them, so the view is the same.
 */
export function entryOf(f: FinishedExecution): ExecutionEntry {
  const r = f.response;
  const err = f.error;
  const code = r ? null : isCaxtonError(err) ? err.code : 'internal';
  const detail: StoredDetail = {};
  if (code !== null) {
    const message = err instanceof Error ? err.message : String(err);
    detail.error = { code, message: bounded(message, MAX_TEXT) };
  }
  if (f.shadow) detail.shadow = true;
  if (f.version_number !== undefined) detail.version_number = f.version_number;
  if (f.addressed === true) detail.addressed = true;
  detail.request = bounded(f.request.request, MAX_TEXT);
  if (r) {
    detail.isolation = r.isolation;
    detail.provider = r.provider;
    detail.model = r.model;
    detail.finish_reason = r.finish_reason;
    detail.turns = r.turns;
    detail.answer = bounded(r.content, MAX_TEXT);
    const turns = r.model_turns;
    if (turns !== undefined && turns.length > 0) detail.model_turns = storedTurns(turns, r.provider, r.model);
    const calls = r.tool_calls;
    if (calls.length > 0) detail.tool_calls = storedCalls(calls);
    const unstored = Math.max(0, calls.length - MAX_STEPS) + Math.max(0, (turns?.length ?? 0) - MAX_STEPS);
    if (unstored > 0) detail.steps_not_stored = unstored;
  }
  return {
    id: f.id,
    ts: Math.round(f.started),
    ended: Math.round(f.started + f.duration_ms),
    agent: f.agent,
    version: f.version,
    principal: f.request.principal ?? null,
    conversation_id: r?.conversation_id ?? f.request.conversation_id ?? null,
    message_id: f.request.message_id ?? null,
    status: r ? 'ok' : 'error',
    error_code: code,
    duration_ms: round3(f.duration_ms),
    input_tokens: r?.usage.input_tokens ?? 0,
    output_tokens: r?.usage.output_tokens ?? 0,
    trace_id: f.trace_id ?? null,
    detail: JSON.stringify(detail),
  };
}

/** A model turn as stored: provider and model only when they differ from the execution's. */
type StoredTurn = Omit<ModelTurn, 'provider' | 'model'> & { provider?: string; model?: string };

function storedTurns(turns: readonly ModelTurn[], provider: string, model: string): StoredTurn[] {
  const n = Math.min(turns.length, MAX_STEPS);
  const out: StoredTurn[] = new Array<StoredTurn>(n);
  for (let i = 0; i < n; i++) {
    const t = turns[i]!;
    if (t.provider === provider && t.model === model) {
      const { provider: _p, model: _m, ...rest } = t;
      out[i] = rest;
    } else out[i] = t;
  }
  return out;
}

function storedCalls(calls: readonly ToolCallRecord[]): StoredToolCall[] {
  const n = Math.min(calls.length, MAX_STEPS);
  const out: StoredToolCall[] = new Array<StoredToolCall>(n);
  for (let i = 0; i < n; i++) {
    const c = calls[i]!;
    out[i] = {
      id: c.id,
      name: c.name,
      arguments: bounded(JSON.stringify(c.arguments), MAX_TOOL_TEXT),
      result: bounded(c.result, MAX_TOOL_TEXT),
      outcome: c.is_error ? 'error' : 'ok',
      duration_ms: c.duration_ms,
    };
  }
  return out;
}

/**
 * The detail JSON as stored: every part optional, absent at its default. Rows written before
 * parts were left out hold all of them (nulls and zeros included); both read the same.
 */
interface StoredDetail {
  error?: { code: string; message: string } | null;
  isolation?: string | null;
  provider?: string | null;
  model?: string | null;
  finish_reason?: string | null;
  turns?: number;
  shadow?: boolean;
  version_number?: number | null;
  addressed?: boolean;
  request?: string;
  answer?: string | null;
  model_turns?: StoredTurn[];
  tool_calls?: StoredToolCall[];
  steps_not_stored?: number;
}

/** A stored row (PostgreSQL's bigints arrive as strings). */
export interface ExecutionRow {
  id: number | string;
  execution_id: string;
  ts: number | string;
  ended: number | string;
  agent: string;
  version: string;
  principal: string | null;
  conversation_id: string | null;
  message_id: string | null;
  status: string;
  error_code: string | null;
  duration_ms: number | string;
  input_tokens: number | string;
  output_tokens: number | string;
  trace_id: string | null;
  detail: string;
  node?: string | null;
}

export function viewOfRow(row: ExecutionRow): ExecutionView {
  const d = JSON.parse(row.detail) as StoredDetail;
  const provider = d.provider ?? null;
  const model = d.model ?? null;
  return {
    id: row.execution_id,
    agent: row.agent,
    version: row.version,
    // Records written before versions were numbered in them have neither.
    version_number: d.version_number ?? null,
    addressed: d.addressed ?? false,
    principal: row.principal,
    conversation_id: row.conversation_id,
    message_id: row.message_id,
    status: row.status === 'ok' ? 'ok' : 'error',
    error: d.error ?? null,
    started_at: new Date(Number(row.ts)).toISOString(),
    finished_at: new Date(Number(row.ended)).toISOString(),
    duration_ms: Number(row.duration_ms),
    isolation: d.isolation ?? null,
    provider,
    model,
    finish_reason: d.finish_reason ?? null,
    usage: { input_tokens: Number(row.input_tokens), output_tokens: Number(row.output_tokens) },
    turns: d.turns ?? 0,
    trace_id: row.trace_id,
    shadow: d.shadow ?? false,
    node: row.node ?? null,
    request: d.request ?? '',
    answer: d.answer ?? null,
    model_turns: (d.model_turns ?? []).map((t) => turnOfStored(t, provider ?? '', model ?? '')),
    tool_calls: d.tool_calls ?? [],
    steps_not_stored: d.steps_not_stored ?? 0,
  };
}

/** A stored model turn with the execution's provider and model put back where they were left out. */
function turnOfStored(t: StoredTurn, provider: string, model: string): ModelTurn {
  if (t.provider !== undefined && t.model !== undefined) return t as ModelTurn;
  const { turn, ...rest } = t;
  return { turn, provider, model, ...rest };
}

export function summaryOf(v: ExecutionView): ExecutionSummary {
  const { request: _r, answer: _a, model_turns: _m, tool_calls, ...rest } = v;
  return { ...rest, tool_calls: tool_calls.length };
}

/**
 * Who reads execution records, as the records narrow for it: its agent scope, and whose chat
 * threads it may read (src/execution/thread-access.ts decides both for a principal: executionReaderOf).
 */
export interface ExecutionReader {
  /**
   * Only executions of agents matching one of these globs: the reader's agent scope, applied in
   * the query so a page is full (src/auth/scope-read.ts holds the rule).
   */
  agents?: readonly string[];
  /**
   * Only chat turns (src/execution/records/thread-reads.ts) of threads this principal began; other
   * executions are not narrowed. Absent: the reader reads everyone's threads.
   */
  thread_owner?: string;
}

/** GET /api/v1/executions filters. */
export interface ExecutionQuery extends ExecutionReader {
  agent?: string;
  version?: string;
  principal?: string;
  conversation_id?: string;
  /** The message whose delivery ran the execution. */
  message_id?: string;
  status?: 'ok' | 'error';
  /** Epoch ms, inclusive (start time). */
  since?: number;
  /** Epoch ms, exclusive (start time). */
  until?: number;
  /** Only rows older than this cursor (the previous page's `next_cursor`). */
  before?: number;
  /** Default 50. */
  limit?: number;
}

/**
 * The reader's narrowing as SQL conditions (joined by AND): its agent scope, and its thread
 * privacy — a chat turn (in a conversation, not a message's delivery) is read only when the
 * thread's first turn, whose principal began it, is the reader's. The same first turn as the
 * threads' own reads (readFirst), so an execution is exactly as private as its thread.
 */
function readerSql(
  r: ExecutionReader,
  param: (v: string | number) => string,
  dialect: SqlDialect,
  table: string,
): string[] {
  const where: string[] = [];
  if (r.agents !== undefined) where.push(agentScopeSql(dialect, 'agent', r.agents, param));
  if (r.thread_owner !== undefined)
    where.push(
      `(conversation_id IS NULL OR message_id IS NOT NULL OR (SELECT f.principal FROM ${table} f WHERE f.conversation_id = executions.conversation_id AND f.agent = executions.agent AND f.message_id IS NULL ORDER BY f.id LIMIT 1) = ${param(r.thread_owner)})`,
    );
  return where;
}

/** The WHERE, ORDER BY and LIMIT of an ExecutionQuery, for both dialects (`param` gives each value's placeholder). */
export function executionSql(
  q: ExecutionQuery,
  param: (v: string | number) => string,
  dialect: SqlDialect,
  table: string,
): string {
  const where: string[] = [];
  if (q.agent !== undefined) where.push(`agent = ${param(q.agent)}`);
  if (q.version !== undefined) where.push(`version = ${param(q.version)}`);
  if (q.principal !== undefined) where.push(`principal = ${param(q.principal)}`);
  if (q.conversation_id !== undefined) where.push(`conversation_id = ${param(q.conversation_id)}`);
  if (q.message_id !== undefined) where.push(`message_id = ${param(q.message_id)}`);
  if (q.status !== undefined) where.push(`status = ${param(q.status)}`);
  if (q.since !== undefined) where.push(`ts >= ${param(q.since)}`);
  if (q.until !== undefined) where.push(`ts < ${param(q.until)}`);
  if (q.before !== undefined) where.push(`id < ${param(q.before)}`);
  where.push(...readerSql(q, param, dialect, table));
  const w = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
  return `${w} ORDER BY id DESC LIMIT ${param(q.limit ?? 50)}`;
}

/** A statement with its arguments, bound in order. */
export interface ExecutionStatement {
  sql: string;
  args: (string | number)[];
}

/**
 * The reads of ExecutionLog, the same for both adapters but for the dialect (`?` or `$n`
 * parameters): an adapter gives its `SELECT … FROM <table>` (the table named `executions`, in its
 * schema) and runs the statements (`rows`, after writing what it has queued). The reader narrows
 * `get` and `byTrace` as it narrows a list.
 */
export abstract class ExecutionReads {
  readonly #select: string;
  readonly #dialect: SqlDialect;
  readonly #table: string;

  constructor(select: string, dialect: SqlDialect, table: string) {
    this.#select = select;
    this.#dialect = dialect;
    this.#table = table;
  }

  protected abstract rows(read: ExecutionStatement): ExecutionRow[] | Promise<ExecutionRow[]>;

  #bind() {
    const args: (string | number)[] = [];
    const param =
      this.#dialect === 'pg' ? (v: string | number) => `$${args.push(v)}` : (v: string | number) => (args.push(v), '?');
    const scope = (reader: ExecutionReader | undefined) =>
      readerSql(reader ?? {}, param, this.#dialect, this.#table)
        .map((w) => ` AND ${w}`)
        .join('');
    return { args, param, scope };
  }

  async list(q: ExecutionQuery): Promise<ExecutionPage> {
    const { args, param } = this.#bind();
    const limit = q.limit ?? 50;
    const sql = `${this.#select}${executionSql({ ...q, limit }, param, this.#dialect, this.#table)}`;
    return pageOf(await this.rows({ sql, args }), limit);
  }

  async get(id: string, reader?: ExecutionReader): Promise<ExecutionView | undefined> {
    const { args, param, scope } = this.#bind();
    const row = (
      await this.rows({ sql: `${this.#select} WHERE execution_id = ${param(id)}${scope(reader)}`, args })
    )[0];
    return row && viewOfRow(row);
  }

  async byTrace(traceId: string, reader?: ExecutionReader): Promise<ExecutionSummary[]> {
    const { args, param, scope } = this.#bind();
    // The prefix condition lets SQLite use its index keyed by the trace id's first 8 characters
    // (ADR 0082); on PostgreSQL, indexed by the whole id, it is one more test of the found rows.
    const sql = `${this.#select} WHERE substr(trace_id, 1, 8) = ${param(traceId.slice(0, 8))} AND trace_id = ${param(traceId)}${scope(reader)} ORDER BY id LIMIT 1000`;
    return (await this.rows({ sql, args })).map((r) => summaryOf(viewOfRow(r)));
  }
}

/** One page of a list, and the cursor of the next (absent on the last). */
export interface ExecutionPage {
  executions: ExecutionSummary[];
  next_cursor?: string;
}

export function pageOf(rows: readonly ExecutionRow[], limit: number): ExecutionPage {
  const executions = rows.map((r) => summaryOf(viewOfRow(r)));
  const last = rows[rows.length - 1];
  return { executions, ...(rows.length === limit && last && { next_cursor: String(last.id) }) };
}

/**
 * The port both adapters implement. `record` never blocks nor throws: records are queued and
 * written in batches off the execution's path (a TurnBatcher, bounded, back-pressure counted).
 */
export interface ExecutionLog {
  record(e: ExecutionEntry): void;
  /** A page of executions, newest first; what is queued is written first. */
  list(q: ExecutionQuery): Promise<ExecutionPage>;
  /** One execution, or undefined when none has that id or `reader` may not read it. */
  get(id: string, reader?: ExecutionReader): Promise<ExecutionView | undefined>;
  /** Executions of one trace (a trace read names its executions) that `reader` may read. */
  byTrace(traceId: string, reader?: ExecutionReader): Promise<ExecutionSummary[]>;
  /** A page of one agent's chat threads (src/execution/records/thread-reads.ts), newest activity first. */
  threads(q: ThreadQuery): Promise<ThreadPage>;
  /** One chat thread's executions, oldest first, its newest `limit` (empty: no such thread). */
  thread(agent: string, conversation: string, limit?: number): Promise<ExecutionView[]>;
  /** A chat thread's first execution (whose principal began it), or undefined. */
  firstOfThread(agent: string, conversation: string): Promise<ExecutionView | undefined>;
  /** Writes what is queued (readers that aggregate the table, such as the stats history, call it first). */
  flush(): void | Promise<void>;
  /** Records dropped since start (the queue bound, or a failed write). */
  readonly dropped: number;
  /** Writes what is queued and stops. */
  close(): void | Promise<void>;
}
