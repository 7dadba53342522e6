/**
 * The audit log of tool calls: one record per call (time, agent, conversation, tool, digest of the
 * arguments, outcome, duration, fuel and memory used), whoever ran it (a tool server, an MCP
 * server, a host tool, the host registry for built-ins and refusals; ADR 0144). This file is the
 * port (`ToolAuditLog`), the query and row helpers both stores use, and an in-memory sink; the
 * rows are kept in the data dir's SQLite (`ToolAuditStore`, sqlite-tool-audit.ts) or a cluster's
 * PostgreSQL (`PgToolAudit`, pg-tool-audit.ts).
 */
import { createHash } from 'node:crypto';
import { globSql, type SqlDialect } from '../storage/index.js';
import { scrubSecrets } from '../shared/secrets.js';

/**
 * How a tool call ends. `ok` is a success; every other value is a failure the audit log records
 * and the model sees as an error result.
 */
export type CallOutcome =
  | 'ok'
  /** The tool ran and reported an error itself (non-zero return, `error_set`). */
  | 'error'
  | 'invalid_input'
  | 'input_too_large'
  | 'output_too_large'
  | 'fuel_exhausted'
  | 'timeout'
  | 'out_of_memory'
  | 'stack_overflow'
  /** A host function refused: host, path or capability not granted. */
  | 'denied'
  | 'io_error'
  | 'http_error'
  /** Any other trap (unreachable, out-of-bounds access, abort). */
  | 'trap'
  /** Never run: the calling agent's `tools` allowlist does not include the tool (ToolRegistry). */
  | 'not_allowed';

export const CALL_OUTCOMES: readonly CallOutcome[] = [
  'ok',
  'error',
  'invalid_input',
  'input_too_large',
  'output_too_large',
  'fuel_exhausted',
  'timeout',
  'out_of_memory',
  'stack_overflow',
  'denied',
  'io_error',
  'http_error',
  'trap',
  'not_allowed',
];

export interface ToolAuditRecord {
  /** When the call started, ms since the epoch. */
  time: number;
  agent: string;
  execution_id?: string;
  conversation_id?: string;
  /** Tool server name. */
  server: string;
  /** Full tool name (`server.tool`). */
  tool: string;
  /** SHA-256 (hex) of the arguments as passed to the module (UTF-8 JSON). */
  args_digest: string;
  outcome: CallOutcome;
  error?: string;
  duration_us: number;
  fuel_used: number;
  memory_bytes: number;
  input_bytes: number;
  output_bytes: number;
  /** The authenticated caller whose request led to the call (Principal.id; src/auth), when known. */
  principal?: string;
}

export interface StoredAuditRecord extends ToolAuditRecord {
  id: number;
}

/** Where tool servers send their records. */
export interface ToolAuditSink {
  record(r: ToolAuditRecord): void;
}

export function digestArgs(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface ToolAuditQuery {
  agent?: string;
  /** Only calls made for agents matching one of these globs: a reader's agent scope (src/auth/scope-read.ts), narrowed in the query. */
  agents?: readonly string[];
  /** Exact tool name, or `server.*`. */
  tool?: string;
  server?: string;
  conversation_id?: string;
  execution_id?: string;
  principal?: string;
  outcome?: CallOutcome | 'failed';
  /** Time range, ms since the epoch or ISO strings; `until` is exclusive. */
  since?: number | string;
  until?: number | string;
  /** Records with an id below this one (pagination, newest first). */
  before_id?: number;
  /** At most this many (default 100, at most 1,000). */
  limit?: number;
}

/**
 * The read side of the tool audit (GET /api/v1/tools/audit): the node's SQLite ToolAuditStore and
 * the cluster's PgToolAudit (src/audit/pg-tool-audit.ts) answer it alike
 * (test/observability/pg-events.test.ts runs one suite against both).
 */
export interface ToolAuditReads {
  /** Records matching every given filter, newest first (ToolAuditQuery); what is queued is written first. */
  find(q?: ToolAuditQuery): Promise<StoredAuditRecord[]>;
}

/** A tool audit as the server uses it: tool servers record, the routes read. `record` never blocks nor throws. */
export interface ToolAuditLog extends ToolAuditSink, ToolAuditReads {
  /** Writes what is queued (reads do it too). */
  flush(): void | Promise<void>;
  close(): void | Promise<void>;
}

/**
 * The WHERE clause of a ToolAuditQuery over the `tool_audit` columns, `param(value)` returning each
 * value's placeholder (SQLite `?`, PostgreSQL `$n`): one definition of the filters for both stores.
 */
export function auditWhere(q: ToolAuditQuery, param: (v: string | number) => string, dialect: SqlDialect): string {
  const where: string[] = [];
  if (q.agents !== undefined) where.push(globSql(dialect, 'agent', q.agents, param));
  const eq = (col: string, v: string | undefined) => {
    if (v !== undefined) where.push(`${col} = ${param(v)}`);
  };
  eq('agent', q.agent);
  eq('server', q.server);
  eq('conversation_id', q.conversation_id);
  eq('execution_id', q.execution_id);
  eq('principal', q.principal);
  if (q.tool !== undefined) {
    if (q.tool.endsWith('.*'))
      where.push(`tool LIKE ${param(`${q.tool.slice(0, -1).replace(/[\\%_]/g, (c) => `\\${c}`)}%`)} ESCAPE '\\'`);
    else eq('tool', q.tool);
  }
  if (q.outcome === 'failed') where.push("outcome <> 'ok'");
  else eq('outcome', q.outcome);
  if (q.since !== undefined) where.push(`time >= ${param(toMs(q.since))}`);
  if (q.until !== undefined) where.push(`time < ${param(toMs(q.until))}`);
  if (q.before_id !== undefined) where.push(`id < ${param(q.before_id)}`);
  return where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
}

/** Newest first, at most `limit` (default 100, between 1 and 1,000). */
export function auditOrder(q: ToolAuditQuery, param: (v: number) => string): string {
  return ` ORDER BY id DESC LIMIT ${param(Math.min(1000, Math.max(1, Math.floor(q.limit ?? 100))))}`;
}

/** The columns every audit store writes, in order (the INSERT of both). */
export const AUDIT_COLUMNS = [
  'time',
  'agent',
  'execution_id',
  'conversation_id',
  'server',
  'tool',
  'args_digest',
  'outcome',
  'error',
  'duration_us',
  'fuel_used',
  'memory_bytes',
  'input_bytes',
  'output_bytes',
  'principal',
] as const;

/** A record as the row values of AUDIT_COLUMNS; the error is scrubbed of the configured secrets (it may quote a tool's output; ADR 0017). */
export function auditValues(r: ToolAuditRecord): (string | number | null)[] {
  return [
    r.time,
    r.agent,
    r.execution_id ?? null,
    r.conversation_id ?? null,
    r.server,
    r.tool,
    r.args_digest,
    r.outcome,
    r.error === undefined || r.error === null ? null : scrubSecrets(r.error),
    r.duration_us,
    r.fuel_used,
    r.memory_bytes,
    r.input_bytes,
    r.output_bytes,
    r.principal ?? null,
  ];
}

/** A stored row as a record: absent optional fields are left out (PostgreSQL's bigints arrive as strings). */
export function auditOfRow(r: Record<string, unknown>): StoredAuditRecord {
  const n = (k: string) => Number(r[k]);
  const out: StoredAuditRecord = {
    id: n('id'),
    time: n('time'),
    agent: r.agent as string,
    server: r.server as string,
    tool: r.tool as string,
    args_digest: r.args_digest as string,
    outcome: r.outcome as CallOutcome,
    duration_us: n('duration_us'),
    fuel_used: n('fuel_used'),
    memory_bytes: n('memory_bytes'),
    input_bytes: n('input_bytes'),
    output_bytes: n('output_bytes'),
  };
  if (r.execution_id !== null) out.execution_id = r.execution_id as string;
  if (r.conversation_id !== null) out.conversation_id = r.conversation_id as string;
  if (r.error !== null) out.error = r.error as string;
  if (r.principal !== null) out.principal = r.principal as string;
  return out;
}

function toMs(v: number | string): number {
  return typeof v === 'number' ? v : Date.parse(v);
}

/** Keeps records in memory: for tests and for servers run without a data dir. */
export class MemoryToolAuditSink implements ToolAuditSink {
  readonly records: ToolAuditRecord[] = [];
  constructor(readonly max = 10_000) {}
  record(r: ToolAuditRecord): void {
    this.records.push(r);
    if (this.records.length > this.max) this.records.splice(0, this.records.length - this.max);
  }
}
