import type { KV, KvEntry } from '@nats-io/kv';

/** How long a watch may take to deliver a bucket's current entries before it is started again. */
const INITIAL_WAIT_MS = 5_000;
const ATTEMPTS = 4;
/** How often a watch is checked for progress by default. */
const CHECK_MS = 10_000;

export interface FollowOptions {
  /**
   * How often the watch is checked against the bucket's stream (default 10 s): a message the
   * stream held at one check and the watch has not delivered by the next starts it again.
   */
  checkMs?: number | undefined;
  /** The watch was started again (`error`: starting it failed; tried again at the next check). */
  onRestart?: ((why: string, error?: unknown) => void) | undefined;
}

/**
 * Follows every key of `kv`: `onEntry` gets the bucket's current entries, then each change, and
 * the promise resolves once the current entries have been applied. Used by the API keys
 * (key-sync.ts) and the membership (membership.ts); the directory of API agents used it until it
 * moved to PostgreSQL, ADR 0045.
 *
 * Why the retries: a watch started while an entry is being replaced (history 1 deletes the old
 * message) can be handed a message the server no longer has; nats-server 2.9 then delivers
 * nothing at all, and a node would wait for its initial values forever. A watch that has not
 * finished them within INITIAL_WAIT_MS is stopped and started again (applying an entry twice is
 * harmless: the caller ignores what it already holds, by revision); after ATTEMPTS the start
 * fails with an error naming the bucket.
 *
 * Why the check: a watch can also stop delivering later (its consumer lost by the server) without
 * nats.js noticing (measured: nothing for 20 s, test/cluster/membership.test.ts). A revoked API
 * key would then go on verifying on that node, and the membership would list every other node as
 * gone. Every `checkMs` the stream's last sequence is read (one request); when the watch has not
 * delivered, by the next check, a sequence the stream held at this one, the watch is started
 * again (`onRestart`).
 */
export async function followBucket(
  kv: KV,
  label: string,
  onEntry: (e: KvEntry) => void,
  opts: FollowOptions = {},
): Promise<{ stop(): void }> {
  let seen = 0;
  const apply = (e: KvEntry) => {
    if (e.revision > seen) seen = e.revision;
    onEntry(e);
  };
  const checkMs = opts.checkMs ?? CHECK_MS;
  /** A watch that has its current entries is caught up with the stream as it was then (an older message that is gone will never come). */
  const start = async () => {
    const w = await watch(kv, label, apply);
    if (w.last > seen) seen = w.last;
    return w.it;
  };
  let current = await start();
  let stopped = false;
  let busy = false;
  /** The stream's last sequence at the previous check, when the watch had not delivered it yet. */
  let owed: number | undefined;
  const timer = setInterval(() => {
    if (busy || stopped) return;
    busy = true;
    void (async () => {
      try {
        const last = (await kv.status()).streamInfo.state.last_seq;
        if (owed !== undefined && seen < owed) {
          const why = `the ${label} watch had not delivered sequence ${owed} (the stream's last ${checkMs} ms ago; delivered up to ${seen})`;
          owed = undefined;
          current.stop();
          try {
            const next = await start();
            if (stopped) next.stop();
            else current = next;
            opts.onRestart?.(why);
          } catch (e) {
            opts.onRestart?.(why, e);
          }
          return;
        }
        owed = last > seen ? last : undefined;
      } catch {
        // NATS away: checked again next time (the watch resumes by itself after a reconnect).
        owed = undefined;
      } finally {
        busy = false;
      }
    })();
  }, checkMs);
  timer.unref();
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      current.stop();
    },
  };
}

/**
 * One watch of every key, once its current entries have arrived (started again up to ATTEMPTS
 * times), and the stream's last sequence read just after it started.
 */
async function watch(
  kv: KV,
  label: string,
  onEntry: (e: KvEntry) => void,
): Promise<{ it: { stop(): void }; last: number }> {
  for (let attempt = 1; ; attempt++) {
    let ready!: () => void;
    const initial = new Promise<void>((r) => (ready = r));
    const it = await kv.watch({ key: '>' });
    let done = false;
    void (async () => {
      for await (const e of it) {
        onEntry(e);
        // The initial values end when none are left to come (delta 0), or with the first change.
        if ((e.delta === 0 || e.isUpdate) && !done) {
          done = true;
          ready();
        }
      }
    })();
    // An empty bucket has no initial values to wait for: the watch reports nothing until a change.
    const status = await kv.status();
    if (status.values === 0) ready();
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      initial.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), INITIAL_WAIT_MS))),
    ]);
    clearTimeout(timer);
    if (inTime) return { it, last: status.streamInfo.state.last_seq };
    it.stop();
    if (attempt >= ATTEMPTS) {
      throw new Error(
        `the ${label} bucket's current entries did not arrive within ${(ATTEMPTS * INITIAL_WAIT_MS) / 1000} s (${ATTEMPTS} watches); check the NATS server's JetStream logs`,
      );
    }
  }
}
