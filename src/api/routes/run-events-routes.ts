import type { FastifyReply, FastifyRequest } from 'fastify';
import { approvalsOf, type DurableRuns, type RunStatus, type RunWithSteps } from '../../execution/index.js';
import { envelope } from '../envelope.js';
import { keepOpen, openSse } from '../sse-stream.js';

/**
 * How often a followed run is read again besides being told of its changes: a change made by
 * another node of a cluster (a run it holds, a decision taken there) is only seen by reading the
 * shared journal.
 */
export const RUN_FOLLOW_POLL_MS = 1_000;

const ENDED: ReadonlySet<RunStatus> = new Set(['completed', 'failed', 'cancelled']);

/**
 * GET /runs/{id}/events: the run `first` (already read in the caller's scope) as server-sent
 * events. `step` for each step recorded so far and each one committed after, `status` when the
 * status changes (with the calls it waits on), `end` with the outcome, then the stream closes.
 * Changes made here are heard at once (DurableRuns.watchRun); the journal is also read every
 * RUN_FOLLOW_POLL_MS. One read at a time, the next one coalescing whatever was heard meanwhile: a
 * busy run costs one read in flight per follower, never a queue.
 */
export function followRun(
  req: FastifyRequest,
  reply: FastifyReply,
  runs: DurableRuns,
  first: RunWithSteps,
  streams: Set<() => void>,
): FastifyReply {
  const id = first.run.id;
  const sse = openSse(req, reply);
  let sent = 0;
  let said = '';
  let done = false;

  /** Sends what is new in `got`; true once the run has ended (its `end` sent). */
  const show = (got: RunWithSteps): boolean => {
    for (; sent < got.steps.length; sent++) sse.send('step', { index: sent, ...got.steps[sent] });
    const { run } = got;
    const waiting =
      run.status === 'awaiting_approval'
        ? approvalsOf(got.steps)
            .filter((a) => a.decision === null)
            .map((a) => ({
              tool: a.tool,
              call_id: a.call_id,
              arguments: a.arguments,
              requested_at: new Date(a.requested_at).toISOString(),
            }))
        : [];
    const key = `${run.status} ${waiting.map((w) => w.call_id).join(' ')}`;
    // Waiting with nothing left to decide: decided, about to run again (its `approval` step says so).
    const deciding = run.status === 'awaiting_approval' && waiting.length === 0;
    if (key !== said && !deciding) {
      said = key;
      sse.send('status', { run_id: id, agent: run.agent, status: run.status, resumes: run.resumes, waiting });
    }
    if (!ENDED.has(run.status)) return false;
    sse.send('end', { run_id: id, status: run.status, response: run.response, error: run.error });
    return true;
  };

  let reading = false;
  let again = false;
  const read = async (): Promise<void> => {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    try {
      do {
        again = false;
        const got = await runs.journal.get(id);
        if (done) return;
        if (got === undefined) {
          // Deleted meanwhile (retention): said in the API's error shape.
          sse.send('error', envelope('not_found', `run "${id}" no longer exists`, { id }, String(req.id)));
          end();
          return;
        }
        if (show(got)) {
          end();
          return;
        }
      } while (again);
    } catch (e) {
      // The journal could not be read (a database restarting): the next poll tries again.
      req.log.warn({ err: e, run: id }, 'a followed run could not be read');
    } finally {
      reading = false;
    }
  };

  const poll = setInterval(() => void read(), RUN_FOLLOW_POLL_MS);
  poll.unref();
  const unwatch = runs.watchRun(id, () => void read());
  const end = keepOpen(sse, streams, () => {
    done = true;
    clearInterval(poll);
    unwatch();
  });
  if (show(first)) end();
  // What changed between the first read and the watch: read once more now.
  else void read();
  return reply;
}
