/**
 * Cluster membership on a JetStream key-value bucket (issue 17, item 4): every node writes its
 * heartbeat (name, URL, version, start time, load) under its own key every `heartbeat`; the
 * bucket's TTL (three heartbeats) makes the server drop a silent node's entry, so no node decides
 * another is dead — JetStream's clock does. Nothing home-made: no gossip, no election.
 *
 * A node whose heartbeats stop reaching NATS (connection lost, JetStream unavailable) reports
 * itself unhealthy (`healthy()`, which /ready will use) and keeps trying; it is healthy again
 * with its next successful heartbeat. `stop()` deletes its key so the others see it leave at once.
 */
import type { KV } from '@nats-io/kv';
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

  private constructor(kv: KV, opts: MembershipOptions) {
    this.#kv = kv;
    this.#opts = opts;
  }

  /** Opens (or creates) the nodes bucket, writes the first heartbeat and keeps writing them. */
  static async start(opts: MembershipOptions): Promise<Membership> {
    const { cluster } = opts;
    const kv = await createKv(opts.nc, cluster.nodes_bucket, { history: 1, ttl: cluster.heartbeat * 3, replicas: cluster.replicas ?? 1 });
    const m = new Membership(kv, opts);
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
    if (this.#healthy && Date.now() - this.#lastOk > hbMs * 2) this.#unhealthy(`no heartbeat acknowledged by JetStream for ${Date.now() - this.#lastOk} ms`);
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
      await this.#kv.put(this.node, JSON.stringify(hb));
      this.#lastOk = Date.now();
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

  /** Every node heard from within the bucket's TTL, by name. */
  async nodes(now = Date.now()): Promise<NodeInfo[]> {
    const hb = this.#opts.cluster.heartbeat;
    const out: NodeInfo[] = [];
    // The key listing walks the bucket's stream: a node that beats while it runs can be listed twice.
    const keys = new Set<string>();
    for await (const key of await this.#kv.keys()) keys.add(key);
    for (const key of keys) {
      const e = await this.#kv.get(key);
      if (!e || e.operation !== 'PUT') continue;
      const age = Math.max(0, now - e.created.getTime());
      if (age > hb * 3) continue; // expired but not yet removed by the server
      let beat: Heartbeat;
      try {
        beat = e.json<Heartbeat>();
      } catch {
        continue; // not a heartbeat Caxton wrote
      }
      out.push({ ...beat, state: age <= hb * 2 ? 'up' : 'stale', age_ms: age, self: key === this.node });
    }
    return out.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  /** Stops the heartbeats and removes this node's entry (others see it leave at once). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#kv.delete(this.node).catch(() => {});
  }
}
