/**
 * Tool package propagation: a tool server deployed, replaced or removed through the API
 * of one node is loaded, replaced or unloaded on every node. PostgreSQL holds the packages
 * (pg-package-store.ts, the module bytes included); NATS only says that a name changed.
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
import type { NatsConnection } from '@nats-io/transport-node';
import { describeError } from '../shared/errors.js';
import type { ToolServerManager } from '../tools/servers/index.js';
import { LagWindow, NoticeChannel } from './notice-channel.js';

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

export class ToolSync {
  readonly #opts: ToolSyncOptions;
  #channel!: NoticeChannel;
  #unlisten: (() => void) | undefined;
  readonly #lags = new LagWindow();

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
    s.#channel = await NoticeChannel.open({
      nc: opts.nc,
      subject: opts.subject,
      ...(opts.reconcileMs !== undefined && { reconcileMs: opts.reconcileMs }),
      what: 'tool packages',
      store: 'the shared store',
      log: opts.log,
      // Before `open` returns there is no channel yet: such a notice is covered by the first reconciliation.
      onNotice: (text) => void (s.#channel && s.#onNotice(text)),
      compare: async () => ({ ...(await opts.manager.refreshAll()) }),
    });
    s.#unlisten = opts.manager.onChange((c) =>
      s.#publish(c.type === 'deployed' ? { name: c.name, revision: c.revision, digest: c.digest } : { name: c.name }),
    );
    await s.reconcile();
    return s;
  }

  /** The lag of the last (up to 1,000) changes of other nodes applied here: p50, p99 and max, in ms. */
  lag(): { samples: number; p50_ms: number | null; p99_ms: number | null; max_ms: number | null } {
    return this.#lags.summary();
  }

  /** Compares the running packages with the store and refreshes the names that differ (see NoticeChannel.reconcile). */
  reconcile(): Promise<void> {
    return this.#channel.reconcile();
  }

  async stop(): Promise<void> {
    this.#unlisten?.();
    await this.#channel.stop();
  }

  #publish(n: Omit<ToolNoticeWire, 'node' | 'published_at'>): void {
    const wire: ToolNoticeWire = { node: this.#opts.node, ...n, published_at: Date.now() };
    // Other nodes catch up at their next reconciliation.
    if (!this.#channel.publish(wire))
      this.#opts.log?.warn(
        { tool_server: n.name },
        'could not tell the other nodes about a tool package change; they catch up within their reconciliation interval',
      );
  }

  #onNotice(text: string): void {
    let w: ToolNoticeWire;
    try {
      w = JSON.parse(text) as ToolNoticeWire;
    } catch {
      return this.#opts.log?.warn(
        { subject: this.#opts.subject },
        `skipped a tool package notice on ${this.#opts.subject}: it is not JSON`,
      );
    }
    if (typeof w?.name !== 'string' || typeof w.node !== 'string') {
      return this.#opts.log?.warn(
        { subject: this.#opts.subject },
        `skipped a tool package notice on ${this.#opts.subject}: it names no package`,
      );
    }
    if (w.node === this.#opts.node) return;
    const known = typeof w.revision === 'number' ? { revision: w.revision } : undefined;
    this.#channel.track(
      this.#opts.manager.refresh(w.name, known).then(
        (outcome) => {
          if (outcome === 'unchanged' || typeof w.published_at !== 'number') return;
          const lag = this.#lags.add(Date.now() - w.published_at);
          this.#opts.onApplied?.(lag, w.name);
        },
        (e: unknown) => {
          this.#opts.log?.warn(
            { tool_server: w.name, node: w.node, err: describeError(e) },
            `tool package "${w.name}" changed on node ${w.node} but could not be read here; the next reconciliation tries again`,
          );
          this.#channel.reconcileSoon();
        },
      ),
    );
  }
}
