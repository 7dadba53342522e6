import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../auth/principal.js';
import { AUDIT_ROUTES, isStateChanging, type AuditRoute } from './actions.js';
import type { AuditEntry, AuditOutcome, AuditSink } from './audit-store.js';
import type { AnonymousRefusals } from './anonymous.js';

/** What a route may add to its request's audit row (the action it really did, a target, details). */
export interface AuditNote {
  action?: string;
  /** The outcome when the status does not tell it (a refusal answered inside a 200, as MCP answers tool calls). */
  outcome?: AuditOutcome;
  target?: string;
  details?: Record<string, unknown>;
}

const notes = new WeakMap<FastifyRequest, AuditNote>();
/** The error code of a failed response, read from its envelope in onSend. */
const errorCodes = new WeakMap<FastifyRequest, string>();
/** The `details.reason` of a refusal (missing_credentials, agent_scope...), read with the code. */
const reasons = new WeakMap<FastifyRequest, string>();
/** The statuses of a refusal without a principal: 401, 403 before authentication, 429 of the anonymous limit. */
const ANONYMOUS_REFUSAL = new Set([401, 403, 429]);

/**
 * Lets a route say more than the table can: `annotateAudit(req, { action: 'message.send_as',
 * details: { as: sender } })`. Later calls add to earlier ones.
 */
export function annotateAudit(req: FastifyRequest, note: AuditNote): void {
  const prev = notes.get(req);
  notes.set(req, prev ? { ...prev, ...note, details: { ...prev.details, ...note.details } } : note);
}

export function outcomeOf(status: number): AuditOutcome {
  if (status === 401 || status === 403) return 'denied';
  return status >= 400 ? 'error' : 'ok';
}

type Plugin = (app: FastifyInstance) => Promise<void>;

export interface AuditRecorderOptions {
  /** Defaults to AUDIT_ROUTES. */
  routes?: Readonly<Record<string, AuditRoute | null>>;
  /** Where refusals of requests without a principal are counted instead of one row each (anonymous.ts). */
  anonymous?: AnonymousRefusals;
}

/**
 * The fastify plugin recording every state-changing request (and the reads AUDIT_ROUTES names)
 * when its response is finished: one onResponse hook at the root, so it sees every route
 * whichever plugin registered it. The principal is read from `req.principal` (src/auth) at that
 * point. A refusal (401/403) of a known principal is recorded `denied` on any route, reads
 * included. A refusal of a request without a principal (401, a 403 before authentication, the
 * anonymous 429) goes to `opts.anonymous`, which writes one row per source address per interval;
 * without it (tests of the recorder alone) such requests are recorded with principal null.
 */
export function auditRecorder(sink: AuditSink, opts: AuditRecorderOptions = {}): Plugin {
  const table = new Map(Object.entries(opts.routes ?? AUDIT_ROUTES));
  const plugin: Plugin = async (app) => {
    // The envelope's error code is worth keeping (validation_failed, forbidden...), never its
    // message, which may quote the input.
    app.addHook('onSend', (req, reply, payload, done) => {
      if (
        reply.statusCode >= 400 &&
        typeof payload === 'string' &&
        payload.length < 65_536 &&
        payload.startsWith('{"error"')
      ) {
        const code = /^\{"error":\{"code":"([a-z_]{1,64})"/.exec(payload)?.[1];
        if (code) errorCodes.set(req, code);
        const reason = ANONYMOUS_REFUSAL.has(reply.statusCode)
          ? /"reason":"([a-z_]{1,64})"/.exec(payload)?.[1]
          : undefined;
        if (reason) reasons.set(req, reason);
      }
      done(null, payload);
    });
    app.addHook('onResponse', (req, reply, done) => {
      try {
        record(sink, table, req, reply, opts.anonymous);
      } catch (e) {
        // Recording must never fail a request that has already been answered.
        req.log.error({ err: e }, 'audit record could not be built');
      }
      done();
    });
  };
  // Not encapsulated: the hooks apply to every route of the app, not only this plugin's.
  (plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
  return plugin;
}

function record(
  sink: AuditSink,
  table: Map<string, AuditRoute | null>,
  req: FastifyRequest,
  reply: FastifyReply,
  anonymous: AnonymousRefusals | undefined,
): void {
  const route = req.routeOptions.url;
  if (route === undefined) return; // no route matched: nothing was done
  const status = reply.statusCode;
  const principal = (req as FastifyRequest & { principal?: Principal }).principal;
  const code = errorCodes.get(req);
  if (principal === undefined && anonymous && ANONYMOUS_REFUSAL.has(status)) {
    anonymous.note(req.ip, reasons.get(req) ?? code ?? String(status), `${req.method} ${route}`);
    return;
  }
  const key = `${req.method} ${route}`;
  const entry = table.get(key);
  // A refusal is worth its row on every route, reads and event streams included: who tried what.
  const refused = outcomeOf(status) === 'denied' && principal !== undefined;
  if (entry === null && !refused) return;
  if (entry === undefined && !isStateChanging(req.method, route) && !refused) return;
  const note = notes.get(req);
  const outcome = note?.outcome ?? outcomeOf(status);
  const reason = reasons.get(req);
  const unmapped = entry === undefined && isStateChanging(req.method, route);
  const denyReason = outcome === 'denied' ? reason : undefined;
  // Most rows have no details: the merged object is made only when one of its parts is there.
  let details: Record<string, unknown> | undefined;
  if (unmapped || entry?.details || code !== undefined || denyReason !== undefined || note?.details) {
    details = {
      ...(unmapped && { unmapped: true }),
      ...entry?.details,
      ...(code !== undefined && { error_code: code }),
      ...(denyReason !== undefined && { reason: denyReason }),
      ...note?.details,
    };
    if (Object.keys(details).length === 0) details = undefined;
  }
  const row = (action: string, target: string | undefined): AuditEntry => {
    const e: AuditEntry = {
      principal: principal ? { id: principal.id, kind: principal.kind } : null,
      source: req.ip,
      request_id: String(req.id),
      client_request_id: (req as FastifyRequest & { clientRequestId?: string }).clientRequestId ?? null,
      action,
      method: req.method,
      route,
      outcome,
      status,
    };
    if (target !== undefined) e.target = target;
    if (details !== undefined) e.details = details;
    return e;
  };
  // A request denied by its status never had its body read; one refused inside its answer did.
  if (entry?.expand && outcomeOf(status) !== 'denied') {
    for (const p of entry.expand(req)) sink.record(row(note?.action ?? p.action, p.target));
    return;
  }
  sink.record(row(note?.action ?? entry?.action ?? 'http.request', note?.target ?? entry?.target?.(req, reply)));
}
