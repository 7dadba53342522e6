/**
 * What the followers of a shared table have in common (tool packages, tool-sync.ts; API agents,
 * directory-sync.ts): PostgreSQL holds the rows, core NATS carries fire-and-forget notices that a
 * row changed, and a reconciliation compares this node with the table at start, after each
 * reconnection to NATS and every `reconcileMs`, so a missed notice costs at most that interval.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { describeError } from '../shared/errors.js';

export const DEFAULT_RECONCILE_MS = 15_000;

export interface NoticeChannelOptions {
  nc: NatsConnection;
  subject: string;
  /** How often the comparison runs without a reason (default 15 s). */
  reconcileMs?: number;
  /** What is followed, and where it is kept, for the log lines ("tool packages", "the shared store"). */
  what: string;
  store: string;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void } | undefined;
  /** A notice's text (its sender's own included: the caller skips those). */
  onNotice(text: string): void;
  /** One comparison with the table: counts of what it changed (logged when any is above zero). */
  compare(): Promise<Record<string, number>>;
}

export class NoticeChannel {
  readonly #opts: NoticeChannelOptions;
  #sub: Subscription | undefined;
  #status: { stop?(): void } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #pending = new Set<Promise<unknown>>();
  /** The reconciliation running now, and whether another was asked for meanwhile. */
  #reconciling: Promise<void> | undefined;
  #again = false;
  #failing = false;

  private constructor(opts: NoticeChannelOptions) {
    this.#opts = opts;
  }

  /** Subscribes and starts the reconciliation's triggers; resolves once the subscription reached the server (call `reconcile` next). */
  static async open(opts: NoticeChannelOptions): Promise<NoticeChannel> {
    const ch = new NoticeChannel(opts);
    ch.#sub = opts.nc.subscribe(opts.subject, {
      callback: (err, msg) => (err || ch.#stopped ? undefined : opts.onNotice(msg.string())),
    });
    const status = opts.nc.status();
    ch.#status = status as { stop?(): void };
    void (async () => {
      for await (const st of status) if (st.type === 'reconnect' && !ch.#stopped) ch.track(ch.reconcile());
    })().catch(() => {});
    ch.#timer = setInterval(() => ch.track(ch.reconcile()), opts.reconcileMs ?? DEFAULT_RECONCILE_MS);
    ch.#timer.unref();
    // The subscription reaches the server before the first comparison: nothing falls between them.
    await opts.nc.flush();
    return ch;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Compares with the table. Concurrent calls share one run (and one more after it, if asked for
   * while it ran). Never rejects: a table that cannot be read is logged once per outage, and the
   * next run tries again.
   */
  reconcile(): Promise<void> {
    if (this.#reconciling) {
      this.#again = true;
      return this.#reconciling;
    }
    const { what, store, log } = this.#opts;
    const run = (async () => {
      do {
        this.#again = false;
        if (this.#stopped) return;
        try {
          const changed = await this.#opts.compare();
          if (this.#failing) log?.info({}, `${what}: ${store} answers again`);
          this.#failing = false;
          if (Object.values(changed).some((n) => n > 0)) log?.info({ ...changed }, `${what} reconciled with ${store}`);
        } catch (e) {
          if (!this.#failing)
            log?.warn({ err: describeError(e) }, `${what}: could not compare with ${store}; trying again later`);
          this.#failing = true;
        }
      } while (this.#again);
    })();
    this.#reconciling = run;
    void run.finally(() => (this.#reconciling = undefined));
    return run;
  }

  /** A reconciliation in a second: after a notice whose row could not be read (PostgreSQL may be back in a moment). */
  reconcileSoon(): void {
    this.track(new Promise((r) => setTimeout(r, 1000).unref()).then(() => this.reconcile()));
  }

  /** Sends a notice; false (logged by the caller) when the connection refused it. */
  publish(wire: object): boolean {
    if (this.#stopped) return true;
    try {
      this.#opts.nc.publish(this.#opts.subject, JSON.stringify(wire));
      return true;
    } catch {
      return false;
    }
  }

  /** Work `stop` waits for. */
  track(p: Promise<unknown>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#status?.stop?.();
    try {
      this.#sub?.unsubscribe();
    } catch {
      // the connection is already closed
    }
    await Promise.all(this.#pending);
  }
}

/** The lags of the last `size` changes applied here (ms), for GET /api/v1/cluster. */
export class LagWindow {
  readonly #lags: number[] = [];
  readonly #size: number;

  constructor(size = 1000) {
    this.#size = size;
  }

  add(ms: number): number {
    const v = Math.max(0, ms);
    this.#lags.push(v);
    if (this.#lags.length > this.#size) this.#lags.shift();
    return v;
  }

  /** p50, p99 and max (null before any sample). */
  summary(): { samples: number; p50_ms: number | null; p99_ms: number | null; max_ms: number | null } {
    const s = [...this.#lags].sort((a, b) => a - b);
    const at = (q: number) => (s.length === 0 ? null : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!);
    return { samples: s.length, p50_ms: at(0.5), p99_ms: at(0.99), max_ms: s.length === 0 ? null : s[s.length - 1]! };
  }
}
