/**
 * Tool package propagation (issue 17): a tool server deployed, replaced or removed through the API
 * of one node is loaded, replaced or unloaded on every node. PostgreSQL holds the packages
 * (pg-tool-packages.ts, the module bytes included); NATS only says that a name changed.
 *
 * - After a deploy or removal through this node's manager, a notice `{node, name, revision,
 *   digest}` goes out on a core NATS subject (`caxton.tools.<schema>`): no module bytes, so a
 *   package of any size travels (NATS's max_payload is 1 MiB by default).
 * - A node hearing a notice from another node refreshes that name from PostgreSQL through the
 *   manager's `refresh`: the row is read and loaded through the checks a local deploy makes
 *   (manifest, grants, caps, compilation, tool names); a name without a row is unloaded. A notice
 *   naming the revision already running here reads nothing.
 * - Notices are fire and forget: one missed (NATS down, this node reconnecting) is caught up by
 *   the reconciliation, which compares the running packages with the store's names, digests and
 *   revisions (one query without the bytes) and refreshes the names that differ. It runs when the
 *   sync starts, after each reconnection to NATS, and every `reconcileMs`.
 * - The row is what counts, not the notice: notices arriving out of order, or two nodes deploying
 *   one name at once, end with every node running the row PostgreSQL kept (the later commit).
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { describeError } from '../shared/errors.js';
import type { ToolServerManager } from '../tools/wasm/index.js';

/** The core NATS subject of a cluster's tool package notices (one per schema: one per cluster). */
export const toolsSubject = (schema: string): string => `caxton.tools.${schema}`;

export interface ToolSyncOptions {
  nc: NatsConnection;
  /** The subject notices travel on (toolsSubject(schema)). */
  subject: string;
  /** This node's name (its own notices are not applied again). */
  node: string;
  /** The node's tool servers, already started (their packages loaded from the shared store). */
  manager: Pick<ToolServerManager, 'onChange' | 'refresh' | 'refreshAll'>;
  /** How often the running packages are compared with the store (default 15 s). */
  reconcileMs?: number;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /** Told each time another node's change was applied here, with its lag (ms, from the publisher's clock). */
  onApplied?: (lagMs: number, name: string) => void;
}

/** One notice as it travels between nodes. */
interface ToolNoticeWire {
  node: string;
  name: string;
  /** Absent for a removal. */
  revision?: number;
  digest?: string;
  /** The publisher's clock (epoch ms) when it published. */
  published_at: number;
}

const LAG_WINDOW = 1000;
export const DEFAULT_RECONCILE_MS = 15_000;

export class ToolSync {
  readonly #opts: ToolSyncOptions;
  #sub: Subscription | undefined;
  #status: { stop?(): void } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #unlisten: (() => void) | undefined;
  #stopped = false;
  readonly #lags: number[] = [];
  readonly #pending = new Set<Promise<unknown>>();
  /** The reconciliation running now, and whether another was asked for meanwhile. */
  #reconciling: Promise<void> | undefined;
  #again = false;
  #failing = false;

  private constructor(opts: ToolSyncOptions) {
    this.#opts = opts;
  }

  /**
   * Subscribes to the notices, starts publishing this node's changes, and reconciles once (a
   * package deployed elsewhere between the manager's start and the subscription is loaded before
   * this resolves).
   */
  static async start(opts: ToolSyncOptions): Promise<ToolSync> {
    const s = new ToolSync(opts);
    s.#sub = opts.nc.subscribe(opts.subject, { callback: (err, msg) => (err ? undefined : s.#onNotice(msg.string())) });
    s.#unlisten = opts.manager.onChange((c) => s.#publish(c.type === 'deployed' ? { name: c.name, revision: c.revision, digest: c.digest } : { name: c.name }));
    const status = opts.nc.status();
    s.#status = status as { stop?(): void };
    void (async () => {
      for await (const st of status) if (st.type === 'reconnect' && !s.#stopped) s.#track(s.reconcile());
    })().catch(() => {});
    s.#timer = setInterval(() => s.#track(s.reconcile()), opts.reconcileMs ?? DEFAULT_RECONCILE_MS);
    s.#timer.unref();
    // The subscription reaches the server before the first comparison: nothing falls between them.
    await opts.nc.flush();
    await s.reconcile();
    return s;
  }

  /** The lag of the last (up to 1,000) changes of other nodes applied here: p50, p99 and max, in ms. */
  lag(): { samples: number; p50_ms: number | null; p99_ms: number | null; max_ms: number | null } {
    const s = [...this.#lags].sort((a, b) => a - b);
    const at = (q: number) => (s.length === 0 ? null : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!);
    return { samples: s.length, p50_ms: at(0.5), p99_ms: at(0.99), max_ms: s.length === 0 ? null : s[s.length - 1]! };
  }

  /**
   * Compares the running packages with the store and refreshes the names that differ. Concurrent
   * calls share one run (and one more after it, if asked for while it ran). Never rejects: a
   * store that cannot be reached is logged once per outage, and the next run tries again.
   */
  reconcile(): Promise<void> {
    if (this.#reconciling) {
      this.#again = true;
      return this.#reconciling;
    }
    const run = (async () => {
      do {
        this.#again = false;
        if (this.#stopped) return;
        try {
          const r = await this.#opts.manager.refreshAll();
          if (this.#failing) this.#opts.log?.info({}, 'tool packages: the shared store answers again');
          this.#failing = false;
          if (r.loaded + r.failed + r.removed > 0) this.#opts.log?.info({ ...r }, 'tool packages reconciled with the shared store');
        } catch (e) {
          if (!this.#failing) this.#opts.log?.warn({ err: describeError(e) }, 'tool packages: could not compare with the shared store; trying again later');
          this.#failing = true;
        }
      } while (this.#again);
    })();
    this.#reconciling = run;
    void run.finally(() => (this.#reconciling = undefined));
    return run;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#unlisten?.();
    this.#status?.stop?.();
    try {
      this.#sub?.unsubscribe();
    } catch {
      // the connection is already closed
    }
    await Promise.all(this.#pending);
  }

  #track(p: Promise<unknown>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  #publish(n: Omit<ToolNoticeWire, 'node' | 'published_at'>): void {
    if (this.#stopped) return;
    const wire: ToolNoticeWire = { node: this.#opts.node, ...n, published_at: Date.now() };
    try {
      this.#opts.nc.publish(this.#opts.subject, JSON.stringify(wire));
    } catch (e) {
      // Other nodes catch up at their next reconciliation.
      this.#opts.log?.warn({ tool_server: n.name, err: describeError(e) }, 'could not tell the other nodes about a tool package change; they catch up within their reconciliation interval');
    }
  }

  #onNotice(text: string): void {
    if (this.#stopped) return;
    let w: ToolNoticeWire;
    try {
      w = JSON.parse(text) as ToolNoticeWire;
    } catch {
      return this.#opts.log?.warn({ subject: this.#opts.subject }, `skipped a tool package notice on ${this.#opts.subject}: it is not JSON`);
    }
    if (typeof w?.name !== 'string' || typeof w.node !== 'string') {
      return this.#opts.log?.warn({ subject: this.#opts.subject }, `skipped a tool package notice on ${this.#opts.subject}: it names no package`);
    }
    if (w.node === this.#opts.node) return;
    const known = typeof w.revision === 'number' ? { revision: w.revision } : undefined;
    this.#track(
      this.#opts.manager.refresh(w.name, known).then(
        (outcome) => {
          if (outcome === 'unchanged' || typeof w.published_at !== 'number') return;
          const lag = Math.max(0, Date.now() - w.published_at);
          this.#lags.push(lag);
          if (this.#lags.length > LAG_WINDOW) this.#lags.shift();
          this.#opts.onApplied?.(lag, w.name);
        },
        (e: unknown) => {
          this.#opts.log?.warn(
            { tool_server: w.name, node: w.node, err: describeError(e) },
            `tool package "${w.name}" changed on node ${w.node} but could not be read here; the next reconciliation tries again`,
          );
          // Sooner than the interval: the store may be back in a moment.
          this.#track(new Promise((r) => setTimeout(r, 1000).unref()).then(() => this.reconcile()));
        },
      ),
    );
  }
}
