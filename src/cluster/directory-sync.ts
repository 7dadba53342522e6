/**
 * Directory propagation (ADR 0045): an agent deployed, updated or removed
 * through the API on one node reaches every node's registry. PostgreSQL holds the agents
 * (pg-agents.ts: one row per name, removals as tombstones); NATS only says that a name changed.
 *
 * - The node that makes a change writes the row (with the agent's version, in one transaction),
 *   then its registry changes; this sync then reads the row's `seq` and sends a notice
 *   `{node, key, seq}` on a core NATS subject (`caxton.agents.<schema>`).
 * - A node hearing a notice from another node with a `seq` newer than it knows reads that row and
 *   applies it: the agent upserted (checked against the stored-definition shape), or removed.
 * - Notices are fire and forget: a missed one (NATS down, this node reconnecting) is caught up by
 *   the reconciliation, which compares every row's head with the registry and applies the rows
 *   that differ. It runs at start (before the node serves: an agent removed while the node was
 *   down is removed here; one only this node has, deployed before its agents were shared, is
 *   written to the table), after each reconnection to NATS, and every `reconcileMs`.
 * - `seq` orders the changes of one name: a row read before this node's own change committed is
 *   never applied over it (a change of this node counts as pending until its `seq` is known).
 * - File agents stay per node: a row never replaces a file agent of the same name here (warned,
 *   once per change).
 * - The lag (from the writer's clock as it wrote the row to the registry update here) is kept for GET /api/v1/cluster;
 *   it assumes the nodes' clocks agree (NTP), as logs do.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import {
  agentKey,
  definitionHash,
  type AgentRegistry,
  type DeployedAgent,
  type RegistryEvent,
  type StoredAgent,
} from '../agents/index.js';
import { describeError } from '../shared/errors.js';
import { relayedFrom, whileRelayed } from '../shared/relayed.js';
import { LagWindow, NoticeChannel } from './notice-channel.js';
import type { AgentHead, AgentRow, PgAgentDirectory } from '../agents/index.js';

/** How long a row this node wrote is left to the node's own registry update (its clock wrote `changed_at`). */
const OWN_CHANGE_GRACE_MS = 5_000;

/** The core NATS subject of a cluster's directory notices (one per schema: one per cluster). */
export const agentsSubject = (schema: string): string => `caxton.agents.${schema}`;

export interface DirectorySyncOptions {
  nc: NatsConnection;
  /** The subject notices travel on (agentsSubject(schema)). */
  subject: string;
  /** This node's name (its own notices are not applied again). */
  node: string;
  /** The cluster's agents in PostgreSQL. */
  directory: Pick<PgAgentDirectory, 'head' | 'heads' | 'rows' | 'adopt'>;
  registry: AgentRegistry;
  /** The text this node's copy of an API agent came from (written when the cluster has never seen the agent). */
  sourceOf?: (name: string) => string | undefined;
  /** How often the registry is compared with the table (default 15 s). */
  reconcileMs?: number;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  /** Told each time another node's change reached the registry, with its lag (ms). */
  onApplied?: (lagMs: number, key: string) => void;
}

/** One notice as it travels between nodes: which name changed, and the change's `seq`. */
interface AgentNoticeWire {
  node: string;
  key: string;
  seq: number;
}

export class DirectorySync {
  readonly #opts: DirectorySyncOptions;
  #channel!: NoticeChannel;
  #started = false;
  readonly #lags = new LagWindow();
  /** Per key, the newest `seq` this node's registry reflects. */
  readonly #seen = new Map<string, number>();
  /** Per key, this node's own changes whose `seq` is not read yet: rows of that key wait. */
  readonly #local = new Map<string, number>();
  /** Keys whose row was heard of (or read) while a change of this node was pending: read again once it is not. */
  readonly #recheck = new Set<string>();
  /** Per key, the `seq` of a row already warned about (a file agent here, a damaged row). */
  readonly #warned = new Map<string, number>();
  readonly #onChange = (e: RegistryEvent) => this.#changedHere(e);

  private constructor(opts: DirectorySyncOptions) {
    this.#opts = opts;
  }

  /**
   * Subscribes to the notices, starts announcing this node's changes, and reconciles once: the
   * registry holds the cluster's API agents when this resolves (unless PostgreSQL could not be
   * read, which is logged and tried again).
   */
  static async start(opts: DirectorySyncOptions): Promise<DirectorySync> {
    const s = new DirectorySync(opts);
    s.#channel = await NoticeChannel.open({
      nc: opts.nc,
      subject: opts.subject,
      ...(opts.reconcileMs !== undefined && { reconcileMs: opts.reconcileMs }),
      what: 'cluster directory',
      store: "the cluster's PostgreSQL",
      log: opts.log,
      // Before `open` returns there is no channel yet: such a notice is covered by the first reconciliation.
      onNotice: (text) => void (s.#channel && s.#onNotice(text)),
      compare: () => s.#compare(),
    });
    opts.registry.on('change', s.#onChange);
    await s.reconcile();
    s.#started = true;
    return s;
  }

  /** The lag of the last (up to 1,000) changes of other nodes applied here: p50, p99 and max, in ms. */
  lag(): { samples: number; p50_ms: number | null; p99_ms: number | null; max_ms: number | null } {
    return this.#lags.summary();
  }

  /** Compares every row's head with the registry and applies the rows that differ (see NoticeChannel.reconcile). */
  reconcile(): Promise<void> {
    return this.#channel.reconcile();
  }

  async stop(): Promise<void> {
    this.#opts.registry.off('change', this.#onChange);
    await this.#channel.stop();
  }

  /** One pass of the reconciliation: how many rows were applied here and how many agents of this node written there. */
  async #compare(): Promise<{ applied: number; adopted: number }> {
    const heads = await this.#opts.directory.heads();
    const known = new Set<string>();
    const differ: string[] = [];
    for (const h of heads) {
      known.add(h.key);
      if (this.#differs(h)) differ.push(h.key);
    }
    let adopted = 0;
    for (const a of this.#opts.registry.list({ limit: Number.MAX_SAFE_INTEGER }).agents) {
      const key = agentKey(a.definition.name);
      if (a.origin.kind !== 'api' || known.has(key) || this.#local.has(key)) continue;
      // An API agent the cluster has never seen: deployed on this node before its agents were shared.
      if (await this.#opts.directory.adopt(stored(a, this.#opts.sourceOf?.(a.definition.name) ?? ''))) adopted++;
      else differ.push(key);
    }
    let applied = 0;
    for (const row of await this.#opts.directory.rows(differ))
      if (this.#apply(row, this.#started ? Date.now() - row.changed_at : undefined)) applied++;
    return { applied, adopted };
  }

  /** Whether the registry here lacks what `h` says (a newer change than this node has seen). */
  #differs(h: AgentHead): boolean {
    if (h.seq <= (this.#seen.get(h.key) ?? -1)) return false;
    if (this.#local.has(h.key)) {
      this.#recheck.add(h.key);
      return false;
    }
    // This node's own change, committed, whose registry update has not run yet: it is pending
    // though `#local` does not know it before the update. Applied here it would reach the
    // registry twice. Past the grace (the update failed, or an earlier process of this node
    // wrote it) a reconciliation applies it like any other.
    if (this.#started && h.node === this.#opts.node && Date.now() - h.changed_at < OWN_CHANGE_GRACE_MS) return false;
    const here = this.#opts.registry.get(h.key);
    if (here?.origin.kind === 'file') return this.#warnFile(h);
    if (!this.#matches(h)) return true;
    this.#seen.set(h.key, h.seq);
    return false;
  }

  /** Whether the registry here holds what `h` says (the agent at that revision and content, or none for a removal). */
  #matches(h: AgentHead): boolean {
    const here = this.#opts.registry.get(h.key);
    if (h.deleted) return here === undefined || here.origin.kind !== 'api';
    return (
      here?.origin.kind === 'api' &&
      here.revision === h.revision &&
      here.updated_at === h.updated_at &&
      definitionHash(here.definition) === h.hash
    );
  }

  /** A row for a name this node has a file agent of: warned once per change. Always false (nothing to apply). */
  #warnFile(h: AgentHead): boolean {
    if (!h.deleted && this.#warned.get(h.key) !== h.seq) {
      this.#warned.set(h.key, h.seq);
      this.#opts.log?.warn(
        { agent: h.key, from: h.node },
        `agent "${h.key}" deployed on node ${h.node} is not applied here: this node has a file agent of that name (file agents stay per node)`,
      );
    }
    return false;
  }

  /** Applies a row read from the table, unless this node already has it or newer. Whether the registry changed. */
  #apply(row: AgentRow, lagMs: number | undefined): boolean {
    if (this.#channel.stopped || row.seq <= (this.#seen.get(row.key) ?? -1)) return false;
    if (this.#local.has(row.key)) {
      this.#recheck.add(row.key);
      return false;
    }
    const here = this.#opts.registry.get(row.key);
    if (here?.origin.kind === 'file') return this.#warnFile(row);
    if ('problem' in row) {
      if (this.#warned.get(row.key) !== row.seq) {
        this.#warned.set(row.key, row.seq);
        this.#opts.log?.warn(
          { key: row.key, from: row.node },
          `skipped cluster agent "${row.key}" written by node ${row.node}: ${row.problem}; redeploy it`,
        );
      }
      return false;
    }
    this.#seen.set(row.key, row.seq);
    if (row.deleted) {
      if (!here) return false;
      whileRelayed(here, row.node, () => this.#opts.registry.remove(row.key));
    } else {
      const a = row.agent;
      if (
        here &&
        here.revision === a.revision &&
        here.updated_at === a.updated_at &&
        definitionHash(here.definition) === row.hash
      )
        return false;
      const agent: DeployedAgent = {
        definition: a.definition,
        format: a.format,
        origin: { kind: 'api' },
        revision: a.revision,
        deployed_at: a.deployed_at,
        updated_at: a.updated_at,
      };
      // Marked while applied: the change event it causes is node row.node's, recorded there (the cluster's event store).
      whileRelayed(agent, row.node, () => this.#opts.registry.upsert(agent));
    }
    if (lagMs !== undefined) this.#sample(lagMs, row.key);
    return true;
  }

  /** A change made on this node (its row already committed): its `seq` is read, then the other nodes told. */
  #changedHere(e: RegistryEvent): void {
    const a = e.agent;
    if (this.#channel.stopped || relayedFrom(a) !== undefined || a.origin.kind !== 'api') return;
    const key = agentKey(a.definition.name);
    this.#local.set(key, (this.#local.get(key) ?? 0) + 1);
    /** Whether the row already holds another node's later change than this one (two nodes changed the agent at once). */
    let overtaken = false;
    this.#channel.track(
      this.#opts.directory
        .head(key)
        .then(
          (h) => {
            if (!h) return;
            // The row is this change only if it matches the registry; else it is a later commit of another node, applied below.
            if (this.#matches(h)) {
              if (h.seq > (this.#seen.get(key) ?? -1)) this.#seen.set(key, h.seq);
            } else {
              // The registry holds this change, not the row: what this node has seen of the name
              // no longer says what its registry holds, so the row read below is applied even if
              // it was seen (and applied) before this change replaced it here.
              this.#seen.delete(key);
              overtaken = true;
            }
            this.#publish({ key, seq: h.seq });
          },
          (err: unknown) => {
            // Its seq unknown: the next reconciliation compares the row with the registry again.
            this.#seen.delete(key);
            this.#opts.log?.warn(
              { agent: key, err: describeError(err) },
              'could not tell the other nodes about an agent change; they catch up within their reconciliation interval',
            );
          },
        )
        .finally(() => {
          const n = (this.#local.get(key) ?? 1) - 1;
          if (n > 0) this.#local.set(key, n);
          else this.#local.delete(key);
          // Another node's change committed after this one, or was heard of while this one was pending: the row is read again now.
          if (n <= 0 && (this.#recheck.delete(key) || overtaken)) this.#refresh(key);
        }),
    );
  }

  /** Reads one row and applies it (a notice, a change overtaken by another node's). */
  #refresh(key: string, lagFrom?: 'row'): void {
    this.#channel.track(
      this.#opts.directory.rows([key]).then(
        (rows) => {
          const row = rows[0];
          if (row) this.#apply(row, lagFrom === 'row' ? Date.now() - row.changed_at : undefined);
        },
        (e: unknown) => {
          this.#opts.log?.warn(
            { agent: key, err: describeError(e) },
            `agent "${key}" changed on another node but could not be read here; the next reconciliation tries again`,
          );
          this.#channel.reconcileSoon();
        },
      ),
    );
  }

  #publish(n: Pick<AgentNoticeWire, 'key' | 'seq'>): void {
    const wire: AgentNoticeWire = { node: this.#opts.node, ...n };
    if (!this.#channel.publish(wire))
      this.#opts.log?.warn(
        { agent: n.key },
        'could not tell the other nodes about an agent change; they catch up within their reconciliation interval',
      );
  }

  #onNotice(text: string): void {
    let w: AgentNoticeWire;
    try {
      w = JSON.parse(text) as AgentNoticeWire;
    } catch {
      return this.#opts.log?.warn(
        { subject: this.#opts.subject },
        `skipped a cluster directory notice on ${this.#opts.subject}: it is not JSON`,
      );
    }
    if (typeof w?.key !== 'string' || typeof w.node !== 'string' || typeof w.seq !== 'number') {
      return this.#opts.log?.warn(
        { subject: this.#opts.subject },
        `skipped a cluster directory notice on ${this.#opts.subject}: it names no agent and change`,
      );
    }
    if (w.node === this.#opts.node || w.seq <= (this.#seen.get(w.key) ?? -1)) return;
    this.#refresh(w.key, 'row');
  }

  #sample(lag: number, key: string): void {
    const v = this.#lags.add(lag);
    this.#opts.onApplied?.(v, key);
  }
}

const stored = (a: DeployedAgent, source: string): StoredAgent => ({
  definition: a.definition,
  format: a.format,
  source,
  revision: a.revision,
  deployed_at: a.deployed_at,
  updated_at: a.updated_at,
});
