/**
 * Creating a node's JetStream assets (the delivery stream, the buckets) while a NATS cluster is
 * still forming. Servers started together elect a meta leader first and learn of their peers
 * after: until then an asset of three replicas is refused ("no suitable peers for placement"), or
 * the API answers "temporarily unavailable", or does not answer in time. Nodes and NATS servers
 * started at once (a compose file, a rolling restart of the whole cluster) meet this window; a
 * node that gave up at once would need a supervisor to start it again. So a node retries for a
 * bounded time, saying what it waits for, and then fails naming the asset, the replicas it asked
 * for and what to check.
 */
import { CaxtonError, describeError } from '../../shared/errors.js';
import { backoffDelay } from '../../shared/backoff.js';

/** How long a starting node waits for its NATS cluster to place an asset. */
export const PLACEMENT_WAIT_MS = 60_000;

/**
 * The JetStream API's answers that a forming cluster gives and a formed one stops giving
 * (nats-server's errors.json): 10005 no suitable peers for placement, 10008 JetStream system
 * temporarily unavailable, 10009 cluster can not handle the request (no leader yet), 10076 not
 * assigned to this server yet.
 */
const FORMING_CODES = new Set([10005, 10008, 10009, 10076]);

/** Whether `e` is what a NATS cluster answers while it forms (retried), not a refusal that stays. */
export function whileForming(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'number' && FORMING_CODES.has(code)) return true;
  // A JetStream API request no server answered in time (no meta leader yet): the client's TimeoutError.
  if ((e as { name?: unknown } | null)?.name === 'TimeoutError') return true;
  return /no suitable peers for placement|temporarily unavailable/i.test(describeError(e));
}

export interface PlacementOptions {
  /** What is being created, for the log and the error: `the delivery stream "caxton_deliveries"`. */
  what: string;
  /** The replicas asked for (named in the error when they cannot be placed). */
  replicas?: number;
  /** Default PLACEMENT_WAIT_MS. */
  waitMs?: number;
  log?: { warn(obj: object, msg: string): void };
}

/** Runs `make` until it succeeds, fails for a reason other than a forming cluster, or `waitMs` passes. */
export async function untilPlaced<T>(make: () => Promise<T>, o: PlacementOptions): Promise<T> {
  const deadline = Date.now() + (o.waitMs ?? PLACEMENT_WAIT_MS);
  for (let attempt = 1; ; attempt++) {
    try {
      return await make();
    } catch (e) {
      if (!whileForming(e)) throw e;
      const left = deadline - Date.now();
      if (left <= 0) throw notPlaced(e, o);
      if (attempt === 1)
        o.log?.warn(
          { err: describeError(e), wait_ms: o.waitMs ?? PLACEMENT_WAIT_MS },
          `the NATS cluster cannot place ${o.what} yet (it may still be forming); trying again until it can`,
        );
      const pause = Math.min(left, backoffDelay(attempt - 1, { baseMs: 250, maxMs: 2_000, jitter: [0.8, 1.2] }));
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

function notPlaced(e: unknown, o: PlacementOptions): CaxtonError {
  const copies = o.replicas !== undefined && o.replicas > 1 ? ` with ${o.replicas} replicas` : '';
  const seconds = Math.round((o.waitMs ?? PLACEMENT_WAIT_MS) / 1000);
  return new CaxtonError(
    'not_ready',
    `the NATS cluster could not place ${o.what}${copies} within ${seconds} s (${describeError(e)}): check that ` +
      (copies
        ? `at least ${o.replicas} NATS servers with JetStream are up and routed to each other, or lower [cluster] replicas`
        : 'the NATS servers run with JetStream and see each other (their routes)'),
    { field: 'cluster.replicas' },
  );
}
