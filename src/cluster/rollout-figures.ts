/**
 * What the other nodes send the node that runs a rollout (docs/cluster.md "Agent versions"): each
 * execution of a canary's two versions, for its judge, and each shadow comparison or copy skipped,
 * for its report (texts cut to the report's 2,000 characters). Each is checked by its zod schema
 * on arrival; only those naming the receiving node are kept.
 *
 * Delivery is at least once, counted once: figures are batched per rollout node (every
 * `batchMs`, at most 1,000 executions and 20 comparisons a batch) and sent as a NATS request to
 * `<subject>.figures.<node>`; the rollout's node counts a batch, then answers. A batch not
 * answered (that node disconnected, restarting, or the reply lost) is sent again every
 * `retryMs`, in order, for up to `keepMs`; the receiver remembers the last 10,000 batch ids, so a
 * batch sent again after its answer was lost is not counted twice. Beyond `keepMs` or 100 batches
 * waiting for one node the oldest are dropped (`onDropped`): a canary's figures then only slow its
 * judge, and a figure of a stage already left is dropped on arrival anyway (AgentService).
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { canaryFigureSchema, shadowFigureSchema, type CanaryFigure, type ShadowFigure } from '../agents/index.js';
import { NODE_NAME } from '../config/index.js';

/** What counts the figures on the rollout's node (AgentService). */
export interface RolloutFiguresHost {
  observeElsewhere(f: CanaryFigure): void;
  observeShadowElsewhere(f: ShadowFigure): void;
}

interface FiguresWire {
  from: string;
  /** The batch's id (sender, its start, a number): a batch sent again is counted once. */
  id: string;
  figures?: unknown[];
  shadows?: unknown[];
}

interface Batch {
  wire: FiguresWire;
  /** When it was made (ms): kept for `keepMs`. */
  at: number;
  count: number;
}

/** Executions in one batch at most (a batch is made early once it has this many). */
const FIGURES_PER_BATCH = 1000;
/** Shadow comparisons in one batch at most (each up to ~8 KB of text). */
const SHADOWS_PER_BATCH = 20;
/** Batches waiting for one node at most. */
const WAITING_PER_NODE = 100;
/** Batch ids a receiver remembers. */
const SEEN_IDS = 10_000;

/** A comparison's texts as they travel: the report keeps 2,000 characters of each. */
const SHADOW_TEXT = 2000;
const cut = (t: string | undefined) => (t !== undefined && t.length > SHADOW_TEXT ? t.slice(0, SHADOW_TEXT) : t);

export interface RolloutFiguresOptions {
  nc: NatsConnection;
  /** The cluster's rollout subject; figures travel on `<subject>.figures.<node>`. */
  subject: string;
  node: string;
  /** How long figures wait to go out together (default 250 ms). */
  batchMs?: number | undefined;
  /** How long a send waits for its answer (default 2 s). */
  ackMs?: number | undefined;
  /** How soon a batch not answered is sent again (default 1 s). */
  retryMs?: number | undefined;
  /** How long a batch not answered is kept (default 5 min). */
  keepMs?: number | undefined;
  /** Figures dropped unsent (their node did not answer within `keepMs`, or too many waited). */
  onDropped?: ((node: string, figures: number) => void) | undefined;
}

export class RolloutFigures {
  readonly #nc: NatsConnection;
  readonly #base: string;
  readonly #node: string;
  readonly #o: RolloutFiguresOptions;
  readonly #epoch = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  #made = 0;
  #sub: Subscription | undefined;
  /** Figures not yet in a batch, by the node they go to. */
  readonly #queued = new Map<string, { figures: CanaryFigure[]; shadows: ShadowFigure[] }>();
  /** Batches not yet answered, by node, oldest first. */
  readonly #waiting = new Map<string, Batch[]>();
  /** Nodes a send is under way to (one at a time each, in order). */
  readonly #sending = new Set<string>();
  #flush: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Batch ids counted here, oldest first. */
  readonly #seen = new Set<string>();

  constructor(o: RolloutFiguresOptions) {
    this.#nc = o.nc;
    this.#base = `${o.subject}.figures`;
    this.#node = o.node;
    this.#o = o;
  }

  /** Counts, through `host`, what the other nodes send for this node's rollouts, and answers each batch. */
  receive(host: RolloutFiguresHost): void {
    this.#sub = this.#nc.subscribe(`${this.#base}.${this.#node}`, {
      callback: (err, msg) => {
        if (err) return;
        this.#onBatch(host, msg.string());
        // Answered once counted (or found malformed, or seen before): the sender forgets it.
        if (msg.reply) msg.respond('ok');
      },
    });
  }

  /** Queues an execution of another node's canary (AgentService.sendFigures). */
  readonly canary = (f: CanaryFigure): void => {
    const q = this.#queue(f.node);
    if (!q) return;
    q.figures.push(f);
    if (q.figures.length >= FIGURES_PER_BATCH) this.#batch();
    else this.#later();
  };

  /** Queues a comparison (or a skip) for another node's shadow rollout (AgentService.sendShadows). */
  readonly shadow = (f: ShadowFigure): void => {
    const q = this.#queue(f.node);
    if (!q) return;
    const r = f.result;
    q.shadows.push(
      r
        ? {
            ...f,
            result: {
              ...r,
              request: cut(r.request)!,
              stable_answer: cut(r.stable_answer)!,
              candidate_answer: cut(r.candidate_answer),
              candidate_error: cut(r.candidate_error),
            },
          }
        : f,
    );
    if (q.shadows.length >= SHADOWS_PER_BATCH) this.#batch();
    else this.#later();
  };

  /** Sends what is queued once more (not waiting for answers) and stops listening and sending. */
  stop(): void {
    this.#batch();
    this.#stopped = true;
    clearTimeout(this.#retry);
    for (const [node, batches] of this.#waiting) for (const b of batches) this.#publish(node, b.wire);
    this.#waiting.clear();
    try {
      this.#sub?.unsubscribe();
    } catch {
      // the connection is already closed
    }
  }

  /** The queue for `node`; none for a name that is not one subject token (config: letters, digits, - and _). */
  #queue(node: string): { figures: CanaryFigure[]; shadows: ShadowFigure[] } | undefined {
    if (!NODE_NAME.test(node)) return undefined;
    let q = this.#queued.get(node);
    if (!q) this.#queued.set(node, (q = { figures: [], shadows: [] }));
    return q;
  }

  #later(): void {
    if (this.#flush) return;
    this.#flush = setTimeout(() => this.#batch(), this.#o.batchMs ?? 250);
    this.#flush.unref();
  }

  /** Turns what is queued into batches, one per node, and sends them. */
  #batch(): void {
    clearTimeout(this.#flush);
    this.#flush = undefined;
    if (this.#stopped) return;
    for (const [node, q] of this.#queued) {
      if (q.figures.length === 0 && q.shadows.length === 0) continue;
      const wire: FiguresWire = { from: this.#node, id: `${this.#node}.${this.#epoch}.${++this.#made}` };
      if (q.figures.length > 0) wire.figures = q.figures;
      if (q.shadows.length > 0) wire.shadows = q.shadows;
      const waiting = this.#waiting.get(node) ?? [];
      waiting.push({ wire, at: Date.now(), count: q.figures.length + q.shadows.length });
      this.#waiting.set(node, waiting);
      this.#drop(node, waiting);
      void this.#send(node);
    }
    this.#queued.clear();
  }

  /** Drops what waited too long for `node`, or beyond the bound. */
  #drop(node: string, waiting: Batch[]): void {
    const old = Date.now() - (this.#o.keepMs ?? 300_000);
    let dropped = 0;
    while (waiting.length > 0 && (waiting.length > WAITING_PER_NODE || waiting[0]!.at < old))
      dropped += waiting.shift()!.count;
    if (dropped > 0) this.#o.onDropped?.(node, dropped);
  }

  /** Sends `node`'s waiting batches one after another until one is not answered (then later again). */
  async #send(node: string): Promise<void> {
    if (this.#sending.has(node)) return;
    this.#sending.add(node);
    try {
      for (;;) {
        const waiting = this.#waiting.get(node);
        if (!waiting || waiting.length === 0) {
          this.#waiting.delete(node);
          return;
        }
        if (this.#stopped || this.#nc.isClosed()) return;
        const b = waiting[0]!;
        try {
          await this.#nc.request(`${this.#base}.${node}`, JSON.stringify(b.wire), { timeout: this.#o.ackMs ?? 2000 });
        } catch {
          // Not answered (no one listening, a timeout, NATS away): again in a moment.
          this.#retryLater();
          return;
        }
        // Answered: forgotten (unless dropped meanwhile).
        const i = waiting.indexOf(b);
        if (i >= 0) waiting.splice(i, 1);
      }
    } finally {
      this.#sending.delete(node);
    }
  }

  #retryLater(): void {
    if (this.#retry || this.#stopped) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      for (const [node, waiting] of this.#waiting) {
        this.#drop(node, waiting);
        void this.#send(node);
      }
    }, this.#o.retryMs ?? 1000);
    this.#retry.unref();
  }

  #publish(node: string, wire: FiguresWire): void {
    try {
      if (!this.#nc.isClosed()) this.#nc.publish(`${this.#base}.${node}`, JSON.stringify(wire));
    } catch {
      // NATS closed: the rollout's node judges and reports on the rest.
    }
  }

  #onBatch(host: RolloutFiguresHost, text: string): void {
    let w: FiguresWire;
    try {
      w = JSON.parse(text) as FiguresWire;
    } catch {
      return;
    }
    if (typeof w !== 'object' || w === null || w.from === this.#node || typeof w.id !== 'string') return;
    if (this.#seen.has(w.id)) return;
    this.#seen.add(w.id);
    if (this.#seen.size > SEEN_IDS) this.#seen.delete(this.#seen.values().next().value!);
    if (Array.isArray(w.figures))
      for (const raw of w.figures.slice(0, FIGURES_PER_BATCH)) {
        const f = canaryFigureSchema.safeParse(raw);
        if (f.success && f.data.node === this.#node) host.observeElsewhere(f.data);
      }
    if (Array.isArray(w.shadows))
      for (const raw of w.shadows.slice(0, SHADOWS_PER_BATCH)) {
        const f = shadowFigureSchema.safeParse(raw);
        if (f.success && f.data.node === this.#node) host.observeShadowElsewhere(f.data);
      }
  }
}
