/**
 * Other nodes' rollouts, followed by every node (docs/cluster.md "Agent versions"): a rollout runs
 * on the node that started it, but its candidate answers as NAME@VERSION on every node, so a
 * request or message addressed to it through any node (behind a load balancer), or delivered to
 * any node by the shared work queue, reaches the candidate.
 *
 * - A canary's share of new conversations applies on every node: its node writes the share into
 *   its mark when the canary's checks pass and at each stage, and every node places a conversation
 *   by its id (`canaryBucket`), so one conversation gets one version on every node. The other
 *   nodes' executions of its two versions are sent to its node (core NATS,
 *   `caxton.rollouts.<schema>.figures`, batched every 250 ms), whose judge counts them with its
 *   own. A canary whose node is down (left the membership) splits nothing elsewhere until it is back.
 * - A shadow rollout's live requests on every node are copied to its candidate there, and each
 *   comparison (or a copy skipped) is sent to its node's report, one message each (their texts
 *   cut to the report's 2,000 characters).
 * - A promotion or rollback asked through any node reaches the rollout's node: the node asked sends
 *   it (NATS request, `caxton.rollouts.<schema>.do.<node>`) and answers with that node's outcome
 *   or error, so a rollout is ended through the load balancer as through its node. The node that
 *   carries it out records the caller the first node authenticated (the cluster's NATS is trusted,
 *   as for deliveries).
 * - The table of marks (pg-rollout-marks.ts) is what counts; it holds one row per agent with a
 *   rollout, so each comparison reads it whole (`PgRolloutMarks.others`) and hands it to the
 *   service (`AgentService.followRollouts`), which reads each new candidate before it answers.
 * - After this node writes or deletes a mark, a notice `{node, agent}` goes out on core NATS
 *   (`caxton.rollouts.<schema>`); a node hearing another's notice compares again at once. A missed
 *   notice is caught up by the comparison after each reconnection to NATS and every `reconcileMs`
 *   (NoticeChannel).
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import type { CanaryFigure, RollbackOutcome, RolloutActionOptions, RolloutForwarder, RolloutHeld, RolloutOutcome, RolloutStatus, ShadowFigure } from '../agents/index.js';
import { CaxtonError, describeError, ERROR_CODES, type ErrorCode } from '../shared/errors.js';
import { NoticeChannel } from './notice-channel.js';

/** The core NATS subject of a cluster's rollout notices (one per schema: one per cluster). */
export const rolloutsSubject = (schema: string): string => `caxton.rollouts.${schema}`;

export interface RolloutSyncOptions {
  nc: NatsConnection;
  /** The subject notices travel on (rolloutsSubject(schema)). */
  subject: string;
  /** This node's name (its own notices are not followed). */
  node: string;
  /** The marks: read whole, and told to call back after this node changes one. */
  marks: { others(): Promise<RolloutHeld[]>; onChanged: ((agent: string) => void) | undefined };
  /** What follows them, and counts and makes the canaries' figures (AgentService). */
  agents: {
    followRollouts(held: readonly RolloutHeld[]): Promise<{ followed: number; ended: number }>;
    sendFigures(to: ((f: CanaryFigure) => void) | undefined): void;
    observeElsewhere(f: CanaryFigure): void;
    sendShadows(to: ((f: ShadowFigure) => void) | undefined): void;
    observeShadowElsewhere(f: ShadowFigure): void;
    forwardRolloutsTo(f: RolloutForwarder | undefined): void;
    promote(name: string, by: string | undefined, opts: RolloutActionOptions): Promise<RolloutOutcome>;
    rollback(name: string, to: number | undefined, by: string | undefined, opts: RolloutActionOptions): Promise<RollbackOutcome>;
    rolloutStatus(name: string): RolloutStatus;
  };
  /** How long a promotion or rollback sent to another node may take before it answers 503 (default 15 s). */
  forwardTimeoutMs?: number;
  /** How long figures wait to go out together (default 250 ms). */
  figuresMs?: number;
  /** How often the marks are read without a notice (default 15 s). */
  reconcileMs?: number;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

interface RolloutNoticeWire {
  node: string;
  agent: string;
}

interface FiguresWire {
  from: string;
  figures?: CanaryFigure[];
  shadow?: ShadowFigure;
}

/** A comparison's texts as they travel: the report keeps 2,000 characters of each. */
const SHADOW_TEXT = 2000;
const cutText = (t: string | undefined) => (t !== undefined && t.length > SHADOW_TEXT ? t.slice(0, SHADOW_TEXT) : t);

const shadowResultSchema = z.object({
  rollout_id: z.number().int(),
  request: z.string(),
  stable_answer: z.string(),
  candidate_answer: z.string().optional(),
  candidate_error: z.string().optional(),
  agree: z.boolean(),
  similarity: z.number().optional(),
  method: z.enum(['exact', 'similarity', 'judge']),
  stable_ms: z.number(),
  candidate_ms: z.number(),
  stable_tokens: z.number(),
  candidate_tokens: z.number(),
});
const shadowFigureSchema = z.object({ node: z.string(), agent: z.string(), rollout_id: z.number().int(), result: shadowResultSchema.optional() });

/** A promotion or rollback sent to the rollout's node. */
const actionSchema = z.strictObject({
  action: z.enum(['promote', 'rollback', 'status']),
  agent: z.string().min(1).max(256),
  by: z.string().max(512).optional(),
  to: z.number().int().positive().optional(),
});
type ActionWire = z.infer<typeof actionSchema>;

/** Its answer: the outcome, or the error as the API would have answered it there. */
type ActionReply = { ok: true; outcome: unknown } | { ok: false; error: { code: string; message: string; details?: unknown } };

/** Figures sent in one message at most (a batch is sent early once it has this many). */
const FIGURES_PER_MESSAGE = 1000;

const isFigure = (f: unknown): f is CanaryFigure => {
  const x = f as CanaryFigure | null;
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof x.node === 'string' &&
    typeof x.agent === 'string' &&
    Number.isSafeInteger(x.rollout_id) &&
    Number.isSafeInteger(x.share) &&
    Number.isSafeInteger(x.version) &&
    typeof x.ok === 'boolean' &&
    typeof x.ms === 'number' &&
    Number.isFinite(x.ms)
  );
};

export class RolloutSync {
  readonly #opts: RolloutSyncOptions;
  #channel!: NoticeChannel;
  #figuresSub: Subscription | undefined;
  #actionsSub: Subscription | undefined;
  #figures: CanaryFigure[] = [];
  #flush: NodeJS.Timeout | undefined;

  private constructor(opts: RolloutSyncOptions) {
    this.#opts = opts;
  }

  /** Subscribes, starts telling the other nodes of this node's marks, and follows the table once before it resolves. */
  static async start(opts: RolloutSyncOptions): Promise<RolloutSync> {
    const s = new RolloutSync(opts);
    s.#channel = await NoticeChannel.open({
      nc: opts.nc,
      subject: opts.subject,
      ...(opts.reconcileMs !== undefined && { reconcileMs: opts.reconcileMs }),
      what: 'rollouts of other nodes',
      store: 'the shared store',
      log: opts.log,
      onNotice: (text) => void (s.#channel && s.#onNotice(text)),
      compare: async () => {
        try {
          return await opts.agents.followRollouts(await opts.marks.others());
        } catch (e) {
          // A candidate (or the table) that could not be read: PostgreSQL may be back in a moment.
          s.#channel?.reconcileSoon();
          throw e;
        }
      },
    });
    opts.marks.onChanged = (agent) => {
      const wire: RolloutNoticeWire = { node: opts.node, agent };
      // The other nodes catch up at their next comparison.
      if (!s.#channel.publish(wire)) opts.log?.warn({ agent }, 'could not tell the other nodes about a rollout; they catch up within their reconciliation interval');
    };
    // Executions of this node's canaries on the other nodes, for its judge.
    s.#figuresSub = opts.nc.subscribe(s.#figuresSubject, { callback: (err, msg) => (err ? undefined : s.#onFigures(msg.string())) });
    opts.agents.sendFigures((f) => s.#queue(f));
    opts.agents.sendShadows((f) => s.#publishFigures({ from: opts.node, shadow: f.result ? { ...f, result: s.#cut(f.result) } : f }));
    // Promotions and rollbacks of this node's rollouts, asked through the other nodes.
    s.#actionsSub = opts.nc.subscribe(s.#actionsSubject(opts.node), { callback: (err, msg) => (err ? undefined : s.#channel.track(s.#carryOut(msg.string(), (r) => msg.respond(r)))) });
    opts.agents.forwardRolloutsTo({
      promote: (node, name, by) => s.#send<RolloutOutcome>(node, { action: 'promote', agent: name, ...(by !== undefined && { by }) }),
      rollback: (node, name, to, by) => s.#send<RollbackOutcome>(node, { action: 'rollback', agent: name, ...(to !== undefined && { to }), ...(by !== undefined && { by }) }),
      status: (node, name) => s.#send<RolloutStatus>(node, { action: 'status', agent: name }),
    });
    await s.reconcile();
    return s;
  }

  #actionsSubject(node: string): string {
    return `${this.#opts.subject}.do.${node}`;
  }

  /** Sends a promotion or rollback to `node` and answers with its outcome, or rethrows its error. */
  async #send<T>(node: string, action: ActionWire): Promise<T> {
    let text: string;
    try {
      text = (await this.#opts.nc.request(this.#actionsSubject(node), JSON.stringify(action), { timeout: this.#opts.forwardTimeoutMs ?? 15_000 })).string();
    } catch (e) {
      throw new CaxtonError(
        'not_ready',
        `node ${node} runs the rollout of "${action.agent}" but did not answer the ${action.action === 'promote' ? 'promotion' : action.action === 'rollback' ? 'rollback' : 'request for its status'} (${describeError(e)}); try again, or through that node`,
        { dependency: 'nats', node },
      );
    }
    let reply: ActionReply;
    try {
      reply = JSON.parse(text) as ActionReply;
    } catch {
      throw new CaxtonError('internal', `node ${node} answered the rollout action with something that is not JSON`);
    }
    if (reply.ok) return reply.outcome as T;
    const code = Object.hasOwn(ERROR_CODES, reply.error.code) ? (reply.error.code as ErrorCode) : 'internal';
    throw new CaxtonError(code, reply.error.message, reply.error.details);
  }

  /** Carries out a promotion or rollback another node sent; `respond` gets the outcome or the error. */
  async #carryOut(text: string, respond: (reply: string) => unknown): Promise<void> {
    let reply: ActionReply;
    try {
      const parsed = actionSchema.safeParse(JSON.parse(text));
      if (!parsed.success) throw new CaxtonError('invalid_request', `a rollout action from another node is not one: ${parsed.error.issues[0]?.message ?? 'bad shape'}`);
      const a = parsed.data;
      const agents = this.#opts.agents;
      const outcome =
        a.action === 'status'
          ? agents.rolloutStatus(a.agent)
          : a.action === 'promote'
            ? await agents.promote(a.agent, a.by, { forwarded: true })
            : await agents.rollback(a.agent, a.to, a.by, { forwarded: true });
      reply = { ok: true, outcome };
    } catch (e) {
      if (e instanceof CaxtonError) reply = { ok: false, error: { code: e.code, message: e.message, details: e.details } };
      else {
        this.#opts.log?.warn({ err: describeError(e) }, 'a rollout action sent by another node failed');
        reply = { ok: false, error: { code: 'internal', message: `node ${this.#opts.node} could not carry out the rollout action; see its log` } };
      }
    }
    try {
      respond(JSON.stringify(reply));
    } catch {
      // The asking node gave up (its timeout) or NATS is closed: it answered 503 already.
    }
  }

  get #figuresSubject(): string {
    return `${this.#opts.subject}.figures`;
  }

  /** Reads the marks and follows them (see NoticeChannel.reconcile: never rejects). */
  reconcile(): Promise<void> {
    return this.#channel.reconcile();
  }

  async stop(): Promise<void> {
    this.#opts.marks.onChanged = undefined;
    this.#opts.agents.sendFigures(undefined);
    this.#opts.agents.sendShadows(undefined);
    this.#opts.agents.forwardRolloutsTo(undefined);
    this.#sendFigures();
    try {
      this.#figuresSub?.unsubscribe();
      this.#actionsSub?.unsubscribe();
    } catch {
      // the connection is already closed
    }
    await this.#channel.stop();
  }

  #queue(f: CanaryFigure): void {
    this.#figures.push(f);
    if (this.#figures.length >= FIGURES_PER_MESSAGE) this.#sendFigures();
    else if (!this.#flush) {
      this.#flush = setTimeout(() => this.#sendFigures(), this.#opts.figuresMs ?? 250);
      this.#flush.unref();
    }
  }

  /** Sends the figures queued (at most once: figures lost with NATS down only slow the judge). */
  #sendFigures(): void {
    clearTimeout(this.#flush);
    this.#flush = undefined;
    if (this.#figures.length === 0) return;
    const wire: FiguresWire = { from: this.#opts.node, figures: this.#figures };
    this.#figures = [];
    this.#publishFigures(wire);
  }

  #publishFigures(wire: FiguresWire): void {
    try {
      if (!this.#opts.nc.isClosed()) this.#opts.nc.publish(this.#figuresSubject, JSON.stringify(wire));
    } catch {
      // NATS closed or reconnecting beyond its buffer: the rollout's node judges and reports on the rest.
    }
  }

  #cut<T extends { request: string; stable_answer: string; candidate_answer?: string | undefined; candidate_error?: string | undefined }>(r: T): T {
    return { ...r, request: cutText(r.request)!, stable_answer: cutText(r.stable_answer)!, candidate_answer: cutText(r.candidate_answer), candidate_error: cutText(r.candidate_error) };
  }

  #onFigures(text: string): void {
    let w: FiguresWire;
    try {
      w = JSON.parse(text) as FiguresWire;
    } catch {
      return;
    }
    if (w?.from === this.#opts.node) return;
    if (Array.isArray(w.figures)) for (const f of w.figures.slice(0, FIGURES_PER_MESSAGE)) if (isFigure(f) && f.node === this.#opts.node) this.#opts.agents.observeElsewhere(f);
    if (w.shadow !== undefined) {
      const shadow = shadowFigureSchema.safeParse(w.shadow);
      if (shadow.success && shadow.data.node === this.#opts.node) this.#opts.agents.observeShadowElsewhere(shadow.data);
    }
  }

  #onNotice(text: string): void {
    let w: RolloutNoticeWire;
    try {
      w = JSON.parse(text) as RolloutNoticeWire;
    } catch {
      return this.#opts.log?.warn({ subject: this.#opts.subject }, `skipped a rollout notice on ${this.#opts.subject}: it is not JSON`);
    }
    if (typeof w?.node !== 'string' || w.node === this.#opts.node) return;
    this.#channel.track(this.reconcile());
  }
}
