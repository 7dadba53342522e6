import type { KV, KvEntry } from '@nats-io/kv';

/** How long a watch may take to deliver a bucket's current entries before it is started again. */
const INITIAL_WAIT_MS = 5_000;
const ATTEMPTS = 4;

/**
 * Follows every key of `kv`: `onEntry` gets the bucket's current entries, then each change, and
 * the promise resolves once the current entries have been applied. Used by the API keys
 * (key-sync.ts; the directory of API agents used it until it moved to PostgreSQL, ADR 0045).
 *
 * Why the retries: a watch started while an entry is being replaced (history 1 deletes the old
 * message) can be handed a message the server no longer has; nats-server 2.9 then delivers
 * nothing at all, and a node would wait for its initial values forever. A watch that has not
 * finished them within INITIAL_WAIT_MS is stopped and started again (applying an entry twice is
 * harmless: the caller ignores what it already holds); after ATTEMPTS the start fails with an
 * error naming the bucket.
 */
export async function followBucket(kv: KV, label: string, onEntry: (e: KvEntry) => void): Promise<{ stop(): void }> {
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
    const inTime = await Promise.race([initial.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), INITIAL_WAIT_MS)))]);
    clearTimeout(timer);
    if (inTime) return it;
    it.stop();
    if (attempt >= ATTEMPTS) {
      throw new Error(`the ${label} bucket's current entries did not arrive within ${(ATTEMPTS * INITIAL_WAIT_MS) / 1000} s (${ATTEMPTS} watches); check the NATS server's JetStream logs`);
    }
  }
}
