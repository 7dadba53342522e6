/**
 * A durable run as a caller may reach it: the one rule REST (src/api/routes/runs-routes.ts), a run's
 * event stream and MCP's run tools (src/mcp/run-tools.ts) apply. A run of an agent outside the
 * caller's agent scope does not exist for it (not found, never "forbidden": its id says nothing);
 * reading needs RUN_PERMISSIONS.read, deciding on a call RUN_PERMISSIONS.decide. No principal:
 * the local user (stdio MCP), who may do everything.
 */
import { RUN_PERMISSIONS, type Permission } from '../../auth/permissions.js';
import { agentOfRef, can, type Principal } from '../../auth/principal.js';
import { agentVisible } from '../../auth/scope-read.js';
import { CaxtonError } from '../../shared/errors.js';
import { threadReaderOf } from '../thread-access.js';
import type { DurableRuns } from './durable.js';
import type { RunQuery, RunRecord, RunWithSteps } from './run-model.js';

type Caller = Principal | undefined;

/** Refuses a caller without `permission`, in the words of the API's own refusal (src/auth/plugin.ts). */
export function assertRunPermission(p: Caller, permission: Permission): void {
  if (p !== undefined && !can(p, permission))
    throw new CaxtonError(
      'forbidden',
      `${p.id} (role ${p.role}) may not do this: it needs the permission ${permission}`,
      {
        reason: 'permission',
        permission,
        role: p.role,
      },
    );
}

/**
 * Whether `p` sees the run: an agent in its scope, and — for a turn of a chat thread (a run with a
 * conversation that no message started) — the thread's rule (thread-access.ts): a run that carries a
 * thread's text is as private as the thread, its own principal's (or an admin's).
 */
export function runVisibleTo(p: Caller, run: Pick<RunRecord, 'agent' | 'origin' | 'principal' | 'request'>): boolean {
  if (!agentVisible(p, agentOfRef(run.agent))) return false;
  if (run.origin === 'message' || run.request.conversation_id === undefined) return true;
  const owner = threadReaderOf(p);
  return owner === undefined || run.principal === owner;
}

/**
 * Which runs `p` reads: every one it sees with RUN_PERMISSIONS.read; with `own` (A2A tasks: a
 * caller follows the work it started), only the runs it started when it lacks that permission.
 * Undefined: all it sees. Throws forbidden when it may read none.
 */
function readerOf(p: Caller, own: boolean | undefined): string | undefined {
  if (p === undefined || can(p, RUN_PERMISSIONS.read)) return undefined;
  if (own !== true) assertRunPermission(p, RUN_PERMISSIONS.read);
  return p.id;
}

/** The run with its steps, if `p` may read it; else not found, whether it exists or not. */
export async function readRunAs(
  runs: DurableRuns,
  p: Caller,
  id: string,
  opts: { own?: boolean } = {},
): Promise<RunWithSteps> {
  const only = readerOf(p, opts.own);
  const got = await runs.journal.get(id);
  if (!got || !runVisibleTo(p, got.run) || (only !== undefined && got.run.principal !== only))
    throw new CaxtonError('not_found', `no run "${id}"`, { id });
  return got;
}

/**
 * Runs newest first as `p` sees them: filtered by its agent scope after reading, a few pages at
 * most, so a scoped caller's page stays full. `next` is the cursor of the following page.
 */
export async function listRunsAs(
  runs: DurableRuns,
  p: Caller,
  q: Omit<RunQuery, 'before'> & { cursor?: string | undefined; own?: boolean },
): Promise<{ runs: RunRecord[]; next?: string }> {
  const only = readerOf(p, q.own);
  if (only !== undefined) q = { ...q, principal: only };
  const out: RunRecord[] = [];
  let before = q.cursor;
  for (let page = 0; page < 10 && out.length < q.limit; page++) {
    const rows = await runs.journal.list({
      ...(q.agent !== undefined && { agent: q.agent }),
      ...(q.status !== undefined && { status: q.status }),
      ...(q.origin !== undefined && { origin: q.origin }),
      ...(q.principal !== undefined && { principal: q.principal }),
      ...(before !== undefined && { before }),
      limit: q.limit,
    });
    for (const row of rows) if (out.length < q.limit && runVisibleTo(p, row)) out.push(row);
    if (rows.length < q.limit) break;
    before = rows[rows.length - 1]!.id;
  }
  const last = out[out.length - 1];
  return out.length === q.limit && last !== undefined ? { runs: out, next: last.id } : { runs: out };
}

/**
 * Records `p`'s decision on a call run `id` waits on (`callId`, else the first waiting) and resumes
 * the run; the decision is recorded in the run as made by `p` (DurableRuns.decide). Throws
 * forbidden without the permission, not_found outside the scope, conflict when nothing waits.
 */
export async function decideAs(
  runs: DurableRuns,
  p: Caller,
  id: string,
  d: { decision: 'approved' | 'denied'; callId?: string | undefined; reason?: string | undefined },
): Promise<RunRecord> {
  assertRunPermission(p, RUN_PERMISSIONS.decide);
  const got = await runs.journal.get(id);
  if (!got || !runVisibleTo(p, got.run)) throw new CaxtonError('not_found', `no run "${id}"`, { id });
  const run = await runs.decide(id, {
    decision: d.decision,
    // No principal: the local user, named as the API names it with authentication off.
    by: p?.id ?? 'local:anonymous',
    ...(d.callId !== undefined && { callId: d.callId }),
    ...(d.reason !== undefined && { reason: d.reason }),
  });
  if (!run) throw new CaxtonError('not_found', `no run "${id}"`, { id });
  return run;
}
