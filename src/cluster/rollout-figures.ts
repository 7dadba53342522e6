/**
 * What the other nodes send the node that runs a rollout (docs/cluster.md "Agent versions"): each
 * execution of a canary's two versions, for its judge (batched every `figuresMs`, at most 1,000
 * a message), and each shadow comparison or copy skipped, for its report (one a message, texts cut
 * to the report's 2,000 characters). Core NATS on `<subject>.figures`, at most once: figures lost
 * while NATS is down only slow the judge. Each is checked by its zod schema on arrival; only those
 * naming this node are kept.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { canaryFigureSchema, shadowFigureSchema, type CanaryFigure, type ShadowFigure } from '../agents/index.js';

/** What counts the figures on the rollout's node (AgentService). */
export interface RolloutFiguresHost {
  observeElsewhere(f: CanaryFigure): void;
  observeShadowElsewhere(f: ShadowFigure): void;
}

interface FiguresWire {
  from: string;
  figures?: unknown[];
  shadow?: unknown;
}

/** Figures sent in one message at most (a batch is sent early once it has this many). */
const FIGURES_PER_MESSAGE = 1000;

/** A comparison's texts as they travel: the report keeps 2,000 characters of each. */
const SHADOW_TEXT = 2000;
const cut = (t: string | undefined) => (t !== undefined && t.length > SHADOW_TEXT ? t.slice(0, SHADOW_TEXT) : t);

export class RolloutFigures {
  readonly #nc: NatsConnection;
  readonly #subject: string;
  readonly #node: string;
  readonly #batchMs: number;
  #sub: Subscription | undefined;
  #queued: CanaryFigure[] = [];
  #flush: NodeJS.Timeout | undefined;

  /** `subject`: the cluster's rollout subject; figures travel on `<subject>.figures`. */
  constructor(o: { nc: NatsConnection; subject: string; node: string; batchMs?: number | undefined }) {
    this.#nc = o.nc;
    this.#subject = `${o.subject}.figures`;
    this.#node = o.node;
    this.#batchMs = o.batchMs ?? 250;
  }

  /** Counts, through `host`, what the other nodes send for this node's rollouts. */
  receive(host: RolloutFiguresHost): void {
    this.#sub = this.#nc.subscribe(this.#subject, { callback: (err, msg) => (err ? undefined : this.#onMessage(host, msg.string())) });
  }

  /** Queues an execution of another node's canary (AgentService.sendFigures). */
  readonly canary = (f: CanaryFigure): void => {
    this.#queued.push(f);
    if (this.#queued.length >= FIGURES_PER_MESSAGE) this.#send();
    else if (!this.#flush) {
      this.#flush = setTimeout(() => this.#send(), this.#batchMs);
      this.#flush.unref();
    }
  };

  /** Sends a comparison (or a skip) for another node's shadow rollout (AgentService.sendShadows). */
  readonly shadow = (f: ShadowFigure): void => {
    const r = f.result;
    const shadow = r
      ? { ...f, result: { ...r, request: cut(r.request)!, stable_answer: cut(r.stable_answer)!, candidate_answer: cut(r.candidate_answer), candidate_error: cut(r.candidate_error) } }
      : f;
    this.#publish({ from: this.#node, shadow });
  };

  /** Sends what is queued and stops listening. */
  stop(): void {
    this.#send();
    try {
      this.#sub?.unsubscribe();
    } catch {
      // the connection is already closed
    }
  }

  #send(): void {
    clearTimeout(this.#flush);
    this.#flush = undefined;
    if (this.#queued.length === 0) return;
    const figures = this.#queued;
    this.#queued = [];
    this.#publish({ from: this.#node, figures });
  }

  #publish(wire: FiguresWire): void {
    try {
      if (!this.#nc.isClosed()) this.#nc.publish(this.#subject, JSON.stringify(wire));
    } catch {
      // NATS closed or reconnecting beyond its buffer: the rollout's node judges and reports on the rest.
    }
  }

  #onMessage(host: RolloutFiguresHost, text: string): void {
    let w: FiguresWire;
    try {
      w = JSON.parse(text) as FiguresWire;
    } catch {
      return;
    }
    if (typeof w !== 'object' || w === null || w.from === this.#node) return;
    if (Array.isArray(w.figures))
      for (const raw of w.figures.slice(0, FIGURES_PER_MESSAGE)) {
        const f = canaryFigureSchema.safeParse(raw);
        if (f.success && f.data.node === this.#node) host.observeElsewhere(f.data);
      }
    if (w.shadow !== undefined) {
      const f = shadowFigureSchema.safeParse(w.shadow);
      if (f.success && f.data.node === this.#node) host.observeShadowElsewhere(f.data);
    }
  }
}
