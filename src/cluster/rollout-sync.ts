/**
 * Other nodes' rollouts, followed by every node (docs/cluster.md "Agent versions"): a rollout runs
 * on the node that started it, but its candidate answers as NAME@VERSION on every node, so a
 * request or message addressed to it through any node (behind a load balancer), or delivered to
 * any node by the shared work queue, reaches the candidate.
 *
 * - A canary's share of new conversations applies on every node: its node writes the share into
 *   its mark when the canary's checks pass and at each stage, and every node places a conversation
 *   by its id (`canaryBucket`), so one conversation gets one version on every node. A canary whose
 *   node is down (left the membership) splits nothing elsewhere until it is back; neither is a
 *   shadow's live request copied.
 * - The other nodes' canary executions and shadow comparisons go to the rollout's node, sent
 *   again until it answers (rollout-figures.ts); promotions, rollbacks and status requests through any node are carried
 *   out there (rollout-actions.ts).
 * - The table of marks (pg-rollout-marks.ts) is what counts; it holds one row per agent with a
 *   rollout, so each comparison reads it whole (`PgRolloutMarks.others`) and hands it to the
 *   service (`AgentService.followRollouts`), which reads each new candidate before it answers.
 * - After this node writes or deletes a mark, a notice `{node, agent}` goes out on core NATS
 *   (`caxton.rollouts.<schema>`); a node hearing another's notice compares again at once. A missed
 *   notice is caught up by the comparison after each reconnection to NATS and every `reconcileMs`
 *   (NoticeChannel).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { RolloutForwarder, RolloutHeld } from '../agents/index.js';
import { NoticeChannel } from './notice-channel.js';
import { RolloutActions, type RolloutActionsHost } from './rollout-actions.js';
import { RolloutFigures, type RolloutFiguresHost } from './rollout-figures.js';

/** The core NATS subject of a cluster's rollout notices (one per schema: one per cluster). */
export const rolloutsSubject = (schema: string): string => `caxton.rollouts.${schema}`;

export interface RolloutSyncOptions {
  nc: NatsConnection;
  /** The subject notices travel on (rolloutsSubject(schema)); figures and actions on subjects under it. */
  subject: string;
  /** This node's name (its own notices are not followed). */
  node: string;
  /** The marks: read whole, and told to call back after this node changes one. */
  marks: { others(): Promise<RolloutHeld[]>; onChanged: ((agent: string) => void) | undefined };
  /** What follows them, counts and makes the figures, and carries out the actions (AgentService). */
  agents: RolloutActionsHost &
    RolloutFiguresHost & {
      followRollouts(held: readonly RolloutHeld[]): Promise<{ followed: number; ended: number }>;
      sendFigures(to: RolloutFigures['canary'] | undefined): void;
      sendShadows(to: RolloutFigures['shadow'] | undefined): void;
      forwardRolloutsTo(f: RolloutForwarder | undefined): void;
    };
  /** How long a promotion or rollback sent to another node may take before it answers 503 (default 15 s). */
  forwardTimeoutMs?: number;
  /** How long canary figures wait to go out together (default 250 ms). */
  figuresMs?: number;
  /** How soon figures a rollout's node did not answer are sent again (default 1 s). */
  figuresRetryMs?: number;
  /** How often the marks are read without a notice (default 15 s). */
  reconcileMs?: number;
  /** Figures dropped unsent (their node did not answer for 5 minutes, or too many waited): the server counts them in a metric. */
  onFiguresDropped?: (node: string, figures: number) => void;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

interface RolloutNoticeWire {
  node: string;
  agent: string;
}

export class RolloutSync {
  readonly #opts: RolloutSyncOptions;
  #channel!: NoticeChannel;
  readonly #figures: RolloutFigures;
  readonly #actions: RolloutActions;

  private constructor(opts: RolloutSyncOptions) {
    this.#opts = opts;
    this.#figures = new RolloutFigures({
      nc: opts.nc,
      subject: opts.subject,
      node: opts.node,
      batchMs: opts.figuresMs,
      retryMs: opts.figuresRetryMs,
      onDropped: (node, figures) => {
        opts.onFiguresDropped?.(node, figures);
        opts.log?.warn(
          { node, figures },
          `dropped ${figures} canary figures or shadow comparisons for node ${node}, which did not answer for 5 minutes: its judge or report misses them (caxton_cluster_records_dropped_total{store="rollout_figures"})`,
        );
      },
    });
    this.#actions = new RolloutActions({
      nc: opts.nc,
      subject: opts.subject,
      node: opts.node,
      timeoutMs: opts.forwardTimeoutMs,
      log: opts.log,
    });
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
      if (!s.#channel.publish(wire))
        opts.log?.warn(
          { agent },
          'could not tell the other nodes about a rollout; they catch up within their reconciliation interval',
        );
    };
    s.#figures.receive(opts.agents);
    opts.agents.sendFigures(s.#figures.canary);
    opts.agents.sendShadows(s.#figures.shadow);
    s.#actions.serve(opts.agents, (p) => s.#channel.track(p));
    opts.agents.forwardRolloutsTo(s.#actions.forwarder);
    await s.reconcile();
    return s;
  }

  /** Reads the marks and follows them (see NoticeChannel.reconcile: never rejects). */
  reconcile(): Promise<void> {
    return this.#channel.reconcile();
  }

  async stop(): Promise<void> {
    const { agents, marks } = this.#opts;
    marks.onChanged = undefined;
    agents.sendFigures(undefined);
    agents.sendShadows(undefined);
    agents.forwardRolloutsTo(undefined);
    this.#figures.stop();
    this.#actions.stop();
    await this.#channel.stop();
  }

  #onNotice(text: string): void {
    let w: RolloutNoticeWire;
    try {
      w = JSON.parse(text) as RolloutNoticeWire;
    } catch {
      return this.#opts.log?.warn(
        { subject: this.#opts.subject },
        `skipped a rollout notice on ${this.#opts.subject}: it is not JSON`,
      );
    }
    if (typeof w?.node !== 'string' || w.node === this.#opts.node) return;
    this.#channel.track(this.reconcile());
  }
}
