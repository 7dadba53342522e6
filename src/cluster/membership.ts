/**
 * Cluster membership on a JetStream key-value bucket: every node writes its
 * heartbeat (name, URL, version, start time, load) under its own key every `heartbeat`; the
 * bucket's TTL (three heartbeats) makes the server drop a silent node's entry, so no node decides
 * another is dead — JetStream's clock does. Nothing home-made: no gossip, no election.
 *
 * A node whose heartbeats stop reaching NATS (connection lost, JetStream unavailable) reports
 * itself unhealthy (`healthy()`, which /ready will use) and keeps trying; it is healthy again
 * with its next successful heartbeat. `stop()` deletes its key so the others see it leave at once.
 *
 * Each node follows the bucket (a watch, kv-follow.ts) and answers `nodes()` from what it holds.
 * Why not list the bucket when asked: `kv.keys()` on nats-server 2.9 never ends when a heartbeat
 * replaces an entry while the listing starts (measured: 3 listings in 300 under three nodes
 * beating hung past 8 s, 2 more took 2-3 s), and `nodes()` is on request paths (GET /cluster, a
 * rollout's status through another node): a CI run's request hung there until the test gave up.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { followBucket } from './kv-follow.js';
import { createKv } from './nats.js';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ClusterConfig } from '../config/index.js';

/** What a node says about itself in each heartbeat. */
export interface Heartbeat {
  node: string;
  url: string | null;
  version: string;
  started_at: string;
  heartbeat_at: string;
  /** The node's own figures (queue depth, running executions...), as its load function gives them. */
  load: Record<string, number>;
}

export interface NodeInfo extends Heartbeat {
  /** `up`: heard from within two heartbeats; `stale`: within the bucket's TTL (three), then gone. */
  state: 'up' | 'stale';
  /** Since its last heartbeat reached JetStream (JetStream's timestamp). */
  age_ms: number;
  self: boolean;
}

export interface MembershipOptions {
  nc: NatsConnection;
  cluster: ClusterConfig;
  version: string;
  load?: () => Record<string, number>;
  /** Told when heartbeats start failing and when they succeed again. */
  onHealth?: (healthy: boolean, error?: string) => void;
  /** Told when the watch of the bucket is started again (it stopped delivering: kv-follow.ts), and why. */
  onRewatch?: (why: string, error?: unknown) => void;
  /** Told while the bucket cannot be created yet (a NATS cluster forming). */
  log?: { warn(obj: object, msg: string): void };
}

export class Membership {
  readonly #kv: KV;
  readonly #opts: MembershipOptions;
  readonly #startedAt = new Date().toISOString();
  #timer: NodeJS.Timeout | undefined;
  #lastOk = 0;
  #lastError: string | null = null;
  #healthy = false;
  #stopped = false;
  #inFlight = false;
  /** The bucket's entries as followed, by node: the newest heartbeat and when JetStream stored it. */
  readonly #heard = new Map<string, { beat: Heartbeat; at: number; revision: number }>();
  /** Revisions of entries deleted (a node that left), so an older heartbeat delivered late is not taken back. */
  readonly #left = new Map<string, number>();
  /** When each node's heartbeat was last applied here, kept past the bucket's TTL (see `recent`). */
  readonly #lastHeard = new Map<string, number>();
  #watch: { stop(): void } | undefined;

  private constructor(kv: KV, opts: MembershipOptions) {
    this.#kv = kv;
    this.#opts = opts;
  }

  /** Opens (or creates) the nodes bucket, follows it, writes the first heartbeat and keeps writing them. */
  static async start(opts: MembershipOptions): Promise<Membership> {
    const { cluster } = opts;
    const kv = await createKv(
      opts.nc,
      cluster.nodes_bucket,
      {
        history: 1,
        ttl: cluster.heartbeat * 3,
        replicas: cluster.replicas ?? 1,
      },
      { log: opts.log },
    );
    const m = new Membership(kv, opts);
    // Checked every two heartbeats: a watch that stopped delivering is started again within four.
    m.#watch = await followBucket(kv, `nodes (${cluster.nodes_bucket})`, (e) => m.#apply(e), {
      checkMs: cluster.heartbeat * 2,
      onRestart: opts.onRewatch,
    });
    await m.beat();
    m.#timer = setInterval(() => void m.beat(), cluster.heartbeat);
    m.#timer.unref();
    return m;
  }

  get node(): string {
    return this.#opts.cluster.node;
  }

  /** Heartbeats reach JetStream: the last one succeeded within two intervals. */
  healthy(now = Date.now()): boolean {
    return !this.#stopped && this.#healthy && now - this.#lastOk <= this.#opts.cluster.heartbeat * 2;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  /**
   * Writes one heartbeat now (the timer does it every `heartbeat`). While NATS is away a publish
   * waits in the client's reconnect buffer rather than failing, so silence counts too: no
   * acknowledged heartbeat for two intervals is unhealthy.
   */
  async beat(): Promise<void> {
    if (this.#stopped) return;
    const hbMs = this.#opts.cluster.heartbeat;
    if (this.#healthy && Date.now() - this.#lastOk > hbMs * 2)
      this.#unhealthy(`no heartbeat acknowledged by JetStream for ${Date.now() - this.#lastOk} ms`);
    if (this.#inFlight) return; // the previous one is still waiting (NATS away): do not pile them up
    this.#inFlight = true;
    const hb: Heartbeat = {
      node: this.node,
      url: this.#opts.cluster.advertise_url ?? null,
      version: this.#opts.version,
      started_at: this.#startedAt,
      heartbeat_at: new Date().toISOString(),
      load: this.#opts.load?.() ?? {},
    };
    try {
      const revision = await this.#kv.put(this.node, JSON.stringify(hb));
      this.#lastOk = Date.now();
      // Its own entry without waiting for the watch to bring it back.
      if (revision > (this.#heard.get(this.node)?.revision ?? 0) && !this.#stopped)
        this.#heard.set(this.node, { beat: hb, at: this.#lastOk, revision });
      if (!this.#healthy && !this.#stopped) {
        this.#healthy = true;
        this.#lastError = null;
        this.#opts.onHealth?.(true);
      }
    } catch (e) {
      this.#unhealthy(e instanceof Error ? e.message : String(e));
    } finally {
      this.#inFlight = false;
    }
  }

  #unhealthy(why: string): void {
    this.#lastError = why;
    if (this.#healthy) {
      this.#healthy = false;
      this.#opts.onHealth?.(false, why);
    }
  }

  /** One entry of the bucket as the watch delivers it (a watch started again may repeat older ones). */
  #apply(e: KvEntry): void {
    const had = Math.max(this.#heard.get(e.key)?.revision ?? 0, this.#left.get(e.key) ?? 0);
    if (e.revision <= had) return;
    if (e.operation !== 'PUT') {
      this.#heard.delete(e.key);
      this.#left.set(e.key, e.revision);
      return;
    }
    try {
      this.#heard.set(e.key, { beat: e.json<Heartbeat>(), at: e.created.getTime(), revision: e.revision });
      this.#left.delete(e.key);
      this.#lastHeard.set(e.key, Date.now());
    } catch {
      // not a heartbeat Caxton wrote
    }
  }

  /**
   * Every node heard from within the bucket's TTL, by name, from the entries followed (no I/O).
   * JetStream drops a silent node's entry without telling watchers (no delete marker before
   * nats-server 2.11): an entry older than the TTL is dropped here.
   */
  nodes(now = Date.now()): Promise<NodeInfo[]> {
    const hb = this.#opts.cluster.heartbeat;
    const out: NodeInfo[] = [];
    for (const [key, { beat, at }] of this.#heard) {
      const age = Math.max(0, now - at);
      if (age > hb * 3) {
        this.#heard.delete(key);
        continue;
      }
      out.push({ ...beat, state: age <= hb * 2 ? 'up' : 'stale', age_ms: age, self: key === this.node });
    }
    return Promise.resolve(out.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)));
  }

  /**
   * The other nodes heard from within `withinMs` (default an hour), whether or not their entries
   * are still in the bucket. Why not `nodes()`: a node too busy to beat for three heartbeats
   * (seconds) drops out of the bucket while it still runs what it took, and that is the node a
   * delivery redelivered elsewhere must ask (delivery-holders.ts). One that is gone for good costs
   * the asker nothing: NATS answers at once that no one listens on its subject.
   */
  recent(withinMs = 3_600_000, now = Date.now()): string[] {
    const out: string[] = [];
    for (const [node, at] of this.#lastHeard) {
      if (now - at > withinMs) this.#lastHeard.delete(node);
      else if (node !== this.node) out.push(node);
    }
    return out;
  }

  /** Stops the heartbeats and removes this node's entry (others see it leave at once). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#watch?.stop();
    await this.#kv.delete(this.node).catch(() => {});
  }
}
