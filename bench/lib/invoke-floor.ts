/**
 * The smallest server that does an invoke's durable work, written to be the floor of the
 * audit-and-events target: fastify, the JSON body parsed, a scripted answer, and the three rows a
 * context-mode invoke leaves (an audit row, an `execution.finished` event, an execution record)
 * inserted into the same tables, with the same indexes, in one SQLite transaction per 10 ms
 * window, as Caxton's turn writer does. No authentication, routing, limits, spans or logging:
 * what Caxton costs above this is its own machinery, not the rows it keeps.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Fastify from 'fastify';
import { AUDIT_MIGRATIONS } from '../../src/audit/index.js';
import { EXECUTIONS_MIGRATIONS } from '../../src/execution/records/index.js';
import { EVENTS_MIGRATIONS } from '../../src/observability/sqlite-agent-events.js';
import { migrate, openDatabase } from '../../src/storage/index.js';

export interface InvokeFloor {
  readonly url: string;
  close(): Promise<void>;
}

const WINDOW_MS = 10;

export const AUDIT_SQL = `INSERT INTO audit_log (time, principal, principal_kind, source, request_id, client_request_id, action, method, route, target, outcome, status, details)
  VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, NULL)`;
export const EVENT_SQL =
  'INSERT INTO agent_events (ts, type, category, agent, trace_id, span_id, data) VALUES (?, ?, ?, ?, ?, ?, ?)';
const EXECUTION_SQL = `INSERT OR IGNORE INTO executions (execution_id, ts, ended, agent, version, principal, conversation_id, message_id, status, error_code, duration_ms, input_tokens, output_tokens, trace_id, detail)
  VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, NULL, ?, ?, ?, ?, ?)`;

type Rows = { a: unknown[]; e: unknown[]; x: unknown[] };

export async function startInvokeFloor(dir: string): Promise<InvokeFloor> {
  const db = openDatabase(join(dir, 'floor.db'));
  migrate(db, AUDIT_MIGRATIONS);
  migrate(db, EVENTS_MIGRATIONS);
  migrate(db, EXECUTIONS_MIGRATIONS);
  let queue: Rows[] = [];
  let timer: NodeJS.Timeout | undefined;
  let last = 0;
  const audit = db.prepare(AUDIT_SQL);
  const event = db.prepare(EVENT_SQL);
  const execution = db.prepare(EXECUTION_SQL);
  const write = db.transaction((batch: Rows[]) => {
    for (const r of batch) {
      audit.run(...r.a);
      event.run(...r.e);
      execution.run(...r.x);
    }
  });
  const flush = () => {
    timer = undefined;
    last = Date.now();
    const batch = queue;
    queue = [];
    write(batch);
  };
  const push = (r: Rows) => {
    queue.push(r);
    if (timer === undefined) timer = setTimeout(flush, Math.max(0, last + WINDOW_MS - Date.now()));
  };

  const app = Fastify({ logger: false });
  app.post<{ Params: { name: string }; Body: { request?: unknown } }>('/api/v1/agents/:name/invoke', async (req) => {
    const t0 = performance.now();
    const request = req.body?.request;
    if (typeof request !== 'string' || request.length === 0) throw new Error('"request" must be a non-empty string');
    const agent = req.params.name;
    const now = Date.now();
    // Ids made as the executor makes them (time-ordered, a trace id led by its second), so each
    // index takes new rows at its end as Caxton's do.
    const executionId = `exec_${now.toString(16).padStart(12, '0')}${randomUUID().slice(12)}`;
    const traceId =
      Math.floor(now / 1000)
        .toString(16)
        .padStart(8, '0') + randomBytes(12).toString('hex');
    const spanId = randomBytes(8).toString('hex');
    const content = `ok: ${request}`;
    const duration = performance.now() - t0;
    const usage = { input_tokens: 5, output_tokens: 3, total_tokens: 8 };
    push({
      a: [
        now,
        null,
        null,
        req.ip,
        String(req.id),
        'agent.invoke',
        'POST',
        '/api/v1/agents/:name/invoke',
        agent,
        'ok',
        200,
      ],
      e: [
        now,
        'execution.finished',
        'performance',
        agent,
        traceId,
        spanId,
        JSON.stringify({ execution_id: executionId, status: 'ok', duration_ms: duration, ...usage }),
      ],
      x: [
        executionId,
        now,
        now,
        agent,
        '1.0.0',
        null,
        'ok',
        duration,
        5,
        3,
        traceId,
        JSON.stringify({ request, content, tool_calls: [], turns: 1 }),
      ],
    });
    return {
      id: `resp_${randomUUID()}`,
      execution_id: executionId,
      agent,
      content,
      tool_calls: [],
      usage,
      execution_time_ms: duration,
      finish_reason: 'stop',
      provider: 'bench',
      model: 'scripted',
      turns: 1,
      isolation: 'context',
    };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      await app.close();
      if (timer) clearTimeout(timer);
      if (queue.length > 0) flush();
      db.close();
    },
  };
}
