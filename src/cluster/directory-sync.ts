/**
 * Directory propagation (issue 17, item 4; ADR 0039): an agent deployed, updated or removed through
 * the API on one node reaches every node's registry, through a JetStream key-value bucket
 * (`[cluster] agents_bucket`): each node puts its API agents there and watches the bucket.
 *
 * - The bucket holds one entry per agent (history 1): a node that starts (or reconnects) reads
 *   the current directory from the watch's initial values, then follows the changes.
 * - File agents stay per node (each node watches its own agents_dir): they are never published,
 *   and an entry never replaces a file agent of the same name on a node (that node logs it).
 * - An entry carries the definition the deploying node parsed, checked again here against the
 *   stored-definition shape; one that does not match is skipped with a warning naming the key.
 * - The lag (from the publisher's clock to the registry update here) is kept per node for
 *   `GET /api/v1/cluster`; it assumes the nodes' clocks agree (NTP), as logs do.
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { agentKey, checkStoredDefinition, type AgentFormat, type AgentRegistry, type DeployedAgent, type RegistryEvent } from '../agents/index.js';
import { describeError } from '../shared/errors.js';
import { whileRelayed } from '../shared/relayed.js';
import { followBucket } from './kv-follow.js';

export interface DirectorySyncOptions {
  nc: NatsConnection;
  /** The key-value bucket of API agents. */
  bucket: string;
  /** This node's name (entries it wrote are not applied again). */
  node: string;
  /** Copies JetStream keeps of the bucket when this node creates it (`[cluster] replicas`). */
  replicas?: number;
  registry: AgentRegistry;
  log?: { warn(obj: object, msg: string): void };
  /** Told each time a remote change reached the registry, with its lag (ms). */
  onApplied?: (lagMs: number, key: string) => void;
}

/** One agent as it travels between nodes. */
interface DirectoryEntryWire {
  node: string;
  /** The publisher's clock (epoch ms) when it published: the lag is measured from it. */
  published_at: number;
  format: AgentFormat;
  revision: number;
  deployed_at: string;
  updated_at: string;
  definition: DeployedAgent['definition'];
}

const LAG_WINDOW = 1000;

export class DirectorySync {
  readonly #kv: KV;
  readonly #opts: DirectorySyncOptions;
  /** Set while a remote change is applied: the registry's change event it causes is not published back. */
  #applying = false;
  #stopped = false;
  readonly #lags: number[] = [];
  #watch: { stop(): void } | undefined;
  readonly #onChange = (e: RegistryEvent) => void this.#publish(e);
  /** Publishes in flight (stop waits for them). */
  readonly #pending = new Set<Promise<void>>();

  private constructor(kv: KV, opts: DirectorySyncOptions) {
    this.#kv = kv;
    this.#opts = opts;
  }

  /**
   * Opens (or creates) the bucket, publishes this node's API agents, applies the others', and
   * follows both ways until `stop`. Resolves once the bucket's current entries have been applied.
   */
  static async start(opts: DirectorySyncOptions): Promise<DirectorySync> {
    const kv = await new Kvm(opts.nc).create(opts.bucket, { history: 1, replicas: opts.replicas ?? 1 });
    const s = new DirectorySync(kv, opts);
    await s.#follow();
    opts.registry.on('change', s.#onChange);
    for (const a of opts.registry.list({ limit: Number.MAX_SAFE_INTEGER }).agents) if (a.origin.kind === 'api') s.#track(s.#put(a));
    await Promise.all(s.#pending);
    return s;
  }

  /** The lag of the last (up to 1,000) remote changes applied here: p50, p99 and max, in ms. */
  lag(): { samples: number; p50_ms: number | null; p99_ms: number | null; max_ms: number | null } {
    const s = [...this.#lags].sort((a, b) => a - b);
    const at = (q: number) => (s.length === 0 ? null : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!);
    return { samples: s.length, p50_ms: at(0.5), p99_ms: at(0.99), max_ms: s.length === 0 ? null : s[s.length - 1]! };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#opts.registry.off('change', this.#onChange);
    this.#watch?.stop();
    await Promise.all(this.#pending);
  }

  #track(p: Promise<void>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  #publish(e: RegistryEvent): void {
    if (this.#applying || this.#stopped) return;
    const a = e.agent;
    if (e.type === 'removed') {
      if (a.origin.kind === 'api') this.#track(this.#del(agentKey(a.definition.name)));
      return;
    }
    // A file agent replacing an API one (or the reverse) on this node: only API agents travel.
    if (a.origin.kind === 'api') this.#track(this.#put(a));
  }

  async #put(a: DeployedAgent): Promise<void> {
    const wire: DirectoryEntryWire = {
      node: this.#opts.node,
      published_at: Date.now(),
      format: a.format,
      revision: a.revision,
      deployed_at: a.deployed_at,
      updated_at: a.updated_at,
      definition: a.definition,
    };
    try {
      await this.#kv.put(agentKey(a.definition.name), JSON.stringify(wire));
    } catch (e) {
      this.#opts.log?.warn({ agent: a.definition.name, err: describeError(e) }, 'could not publish an agent to the cluster directory; other nodes see it after its next change');
    }
  }

  async #del(key: string): Promise<void> {
    try {
      await this.#kv.delete(key);
    } catch (e) {
      this.#opts.log?.warn({ agent: key, err: describeError(e) }, 'could not remove an agent from the cluster directory');
    }
  }

  /** Starts the watch and resolves once its initial values (the current directory) have been applied. */
  async #follow(): Promise<void> {
    this.#watch = await followBucket(this.#kv, 'cluster directory', (e) => {
      if (e.operation === 'PUT') this.#applyPut(e.key, e.string());
      else this.#applyDelete(e.key, e.created.getTime());
    });
  }

  #applyPut(key: string, text: string): void {
    let w: DirectoryEntryWire;
    try {
      w = JSON.parse(text) as DirectoryEntryWire;
    } catch {
      return this.#opts.log?.warn({ key }, `skipped cluster directory entry "${key}": it is not JSON`);
    }
    if (w.node === this.#opts.node) return; // this node's own write (it may already be newer here)
    const def = checkStoredDefinition(w.definition);
    if (!def.ok || agentKey(def.definition.name) !== key) {
      const why = def.ok ? `it holds agent "${def.definition.name}"` : def.problem;
      return this.#opts.log?.warn({ key, from: w.node }, `skipped cluster directory entry "${key}" from node ${String(w.node)}: ${why}`);
    }
    const here = this.#opts.registry.get(key);
    if (here?.origin.kind === 'file') {
      return this.#opts.log?.warn({ agent: key, from: w.node }, `agent "${key}" deployed on node ${w.node} is not applied here: this node has a file agent of that name (file agents stay per node)`);
    }
    if (here && here.revision === w.revision && here.updated_at === w.updated_at) return;
    this.#applying = true;
    try {
      // Marked while applied: the change event it causes is node w.node's, recorded there (the cluster's event store).
      const agent: DeployedAgent = { definition: def.definition, format: w.format, origin: { kind: 'api' }, revision: w.revision, deployed_at: w.deployed_at, updated_at: w.updated_at };
      whileRelayed(agent, w.node, () => this.#opts.registry.upsert(agent));
    } finally {
      this.#applying = false;
    }
    this.#sample(Date.now() - w.published_at, key);
  }

  /** A removal carries no publisher clock: its lag is measured from JetStream's timestamp of the delete. */
  #applyDelete(key: string, deletedAt: number): void {
    const here = this.#opts.registry.get(key);
    if (!here || here.origin.kind !== 'api') return;
    this.#applying = true;
    try {
      whileRelayed(here, 'directory', () => this.#opts.registry.remove(key));
    } finally {
      this.#applying = false;
    }
    this.#sample(Date.now() - deletedAt, key);
  }

  #sample(lag: number, key: string): void {
    const v = Math.max(0, lag);
    this.#lags.push(v);
    if (this.#lags.length > LAG_WINDOW) this.#lags.shift();
    this.#opts.onApplied?.(v, key);
  }
}
