/**
 * Promotions, rollbacks and status requests of a rollout asked through another node
 * (docs/cluster.md "Agent versions", ADR 0047): the node asked sends them to the rollout's node as
 * a NATS request on `<subject>.do.<node>`, and answers with that node's outcome or its error
 * (code, message and details, as the API would have answered there). The node that carries one
 * out marks it forwarded, so it is never sent on, and records the caller the first node
 * authenticated (the cluster's NATS is trusted, as for deliveries). A node that does not listen
 * (stopping, gone) answers at once: 503 `not_ready` naming it.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { z } from 'zod';
import type {
  RollbackOutcome,
  RolloutActionOptions,
  RolloutForwarder,
  RolloutOutcome,
  RolloutStatus,
} from '../agents/index.js';
import { CaxtonError, describeError, ERROR_CODES, type ErrorCode } from '../shared/errors.js';

/** What carries the actions out on the rollout's node (AgentService). */
export interface RolloutActionsHost {
  promote(name: string, by: string | undefined, opts: RolloutActionOptions): Promise<RolloutOutcome>;
  rollback(
    name: string,
    to: number | undefined,
    by: string | undefined,
    opts: RolloutActionOptions,
  ): Promise<RollbackOutcome>;
  rolloutStatus(name: string): RolloutStatus;
}

/** An action as it travels. */
const actionSchema = z.strictObject({
  action: z.enum(['promote', 'rollback', 'status']),
  agent: z.string().min(1).max(256),
  by: z.string().max(512).optional(),
  to: z.number().int().positive().optional(),
});
type ActionWire = z.infer<typeof actionSchema>;

/** Its answer: the outcome, or the error as the API would have answered it there. */
type ActionReply =
  { ok: true; outcome: unknown } | { ok: false; error: { code: string; message: string; details?: unknown } };

const WHAT: Record<ActionWire['action'], string> = {
  promote: 'promotion',
  rollback: 'rollback',
  status: 'request for its status',
};

export class RolloutActions {
  readonly #nc: NatsConnection;
  readonly #subject: string;
  readonly #node: string;
  readonly #timeoutMs: number;
  readonly #log: { warn(obj: object, msg: string): void } | undefined;
  #sub: Subscription | undefined;

  /** `subject`: the cluster's rollout subject; this node serves `<subject>.do.<node>`. */
  constructor(o: {
    nc: NatsConnection;
    subject: string;
    node: string;
    timeoutMs?: number | undefined;
    log?: { warn(obj: object, msg: string): void } | undefined;
  }) {
    this.#nc = o.nc;
    this.#subject = o.subject;
    this.#node = o.node;
    this.#timeoutMs = o.timeoutMs ?? 15_000;
    this.#log = o.log;
  }

  /** Serves the actions the other nodes send this node; `track` is given each one under way (stop waits for them). */
  serve(host: RolloutActionsHost, track: (p: Promise<unknown>) => void): void {
    this.#sub = this.#nc.subscribe(this.#subjectOf(this.#node), {
      callback: (err, msg) => (err ? undefined : track(this.#carryOut(host, msg.string(), (r) => msg.respond(r)))),
    });
  }

  /** What the service sends through (AgentService.forwardRolloutsTo). */
  readonly forwarder: RolloutForwarder = {
    promote: (node, name, by) =>
      this.#send<RolloutOutcome>(node, { action: 'promote', agent: name, ...(by !== undefined && { by }) }),
    rollback: (node, name, to, by) =>
      this.#send<RollbackOutcome>(node, {
        action: 'rollback',
        agent: name,
        ...(to !== undefined && { to }),
        ...(by !== undefined && { by }),
      }),
    status: (node, name) => this.#send<RolloutStatus>(node, { action: 'status', agent: name }),
  };

  stop(): void {
    try {
      this.#sub?.unsubscribe();
    } catch {
      // the connection is already closed
    }
  }

  #subjectOf(node: string): string {
    return `${this.#subject}.do.${node}`;
  }

  /** Sends an action to `node` and answers with its outcome, or rethrows its error. */
  async #send<T>(node: string, action: ActionWire): Promise<T> {
    let text: string;
    try {
      text = (
        await this.#nc.request(this.#subjectOf(node), JSON.stringify(action), { timeout: this.#timeoutMs })
      ).string();
    } catch (e) {
      throw new CaxtonError(
        'not_ready',
        `node ${node} runs the rollout of "${action.agent}" but did not answer the ${WHAT[action.action]} (${describeError(e)}); try again, or through that node`,
        {
          dependency: 'nats',
          node,
        },
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

  /** Carries out an action another node sent; `respond` gets the outcome or the error. */
  async #carryOut(host: RolloutActionsHost, text: string, respond: (reply: string) => unknown): Promise<void> {
    let reply: ActionReply;
    try {
      const parsed = actionSchema.safeParse(JSON.parse(text));
      if (!parsed.success)
        throw new CaxtonError(
          'invalid_request',
          `a rollout action from another node is not one: ${parsed.error.issues[0]?.message ?? 'bad shape'}`,
        );
      const a = parsed.data;
      const outcome =
        a.action === 'status'
          ? host.rolloutStatus(a.agent)
          : a.action === 'promote'
            ? await host.promote(a.agent, a.by, { forwarded: true })
            : await host.rollback(a.agent, a.to, a.by, { forwarded: true });
      reply = { ok: true, outcome };
    } catch (e) {
      if (e instanceof CaxtonError)
        reply = { ok: false, error: { code: e.code, message: e.message, details: e.details } };
      else {
        this.#log?.warn({ err: describeError(e) }, 'a rollout action sent by another node failed');
        reply = {
          ok: false,
          error: {
            code: 'internal',
            message: `node ${this.#node} could not carry out the rollout action; see its log`,
          },
        };
      }
    }
    try {
      respond(JSON.stringify(reply));
    } catch {
      // The asking node gave up (its timeout) or NATS is closed: it answered 503 already.
    }
  }
}
