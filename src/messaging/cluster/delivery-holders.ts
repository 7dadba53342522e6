/**
 * Whether another node still holds a delivery, asked before a node runs one JetStream handed out
 * before (a redelivery, or a copy published again).
 *
 * Why: JetStream redelivers a delivery after an ack wait without the holder's `working()`, and it
 * cannot tell a dead holder from one too busy to say so (its event loop held for seconds on a
 * loaded machine, nats-server slow to process its progress acks). A message's first run writes
 * its row only after a while (ADR 0147), so a node taking such a redelivery found no run, started
 * one, and asked the model a second time while the first node's call was still going on.
 *
 * How: each node answers on a subject of its own (`<subject>_holding.<node>`) whether it holds a
 * delivery, by row id, and tells JetStream it is still working on it. The asker asks every node it
 * heard from lately (Membership.recent: a node too busy to beat has left the members list by then)
 * and waits for the answers, at most `timeoutMs`:
 *  - a node that holds it answers so, and the asker hands the delivery back for later;
 *  - a node that does not answers no; one that is gone has no subscription and NATS answers at once
 *    that no one listens (503);
 *  - a node that answers nothing within the wait (stopped, or its link cut without NATS noticing)
 *    cannot be told from a dead one: the asker runs the delivery.
 * A first hand-out asks nothing: nothing else can hold it.
 */
import { TimeoutError, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { describeError } from '../../shared/errors.js';

const YES = '1';
const NO = '0';
const utf8 = new TextDecoder();

export interface DeliveryHoldersOptions {
  nc: NatsConnection;
  /** `[cluster.delivery] subject`: the nodes answer on `<subject>_holding.<node>`. */
  subject: string;
  /** This node's name. */
  node: string;
  /** Whether this node holds the delivery of row `id` (and, when it does, tells JetStream it is still working on it). */
  holds(id: number): boolean;
  /** The other nodes to ask. */
  peers(): readonly string[];
  /** How long an asker waits for a node's answer. */
  timeoutMs: number;
  log: { warn(obj: object, msg: string): void };
}

/** How the questions this node asked ended, so far (metrics: caxton_cluster_redeliveries_asked_total). */
export interface HolderAnswers {
  /** Another node said it holds the delivery: handed back. */
  held: number;
  /** Every node asked said no, or was gone: run here. */
  free: number;
  /** No node said yes and at least one said nothing within the wait: run here. */
  unanswered: number;
}

export class DeliveryHolders {
  readonly #o: DeliveryHoldersOptions;
  readonly #sub: Subscription;
  readonly answers: HolderAnswers = { held: 0, free: 0, unanswered: 0 };

  constructor(o: DeliveryHoldersOptions) {
    this.#o = o;
    // Ends with the connection, or with stop().
    this.#sub = o.nc.subscribe(subjectOf(o.subject, o.node), {
      callback: (err, m) => {
        if (err) return;
        const id = Number(utf8.decode(m.data));
        // Answered once the deliveries read off the connection before the question are being taken:
        // a fetch hands them over through an async iterator, after this callback, and a node that
        // was stopped with them unread would otherwise say it holds none of them.
        setImmediate(() => {
          try {
            m.respond(Number.isSafeInteger(id) && o.holds(id) ? YES : NO);
          } catch {
            // The connection closed meanwhile (this node stopping): the asker's wait ends without it.
          }
        });
      },
    });
  }

  /**
   * The name of another node holding the delivery of row `id`, or undefined when none said so
   * within the wait (each node is asked at once; the first yes ends the wait).
   */
  holder(id: number): Promise<string | undefined> {
    const peers = this.#o.peers().filter((p) => p !== this.#o.node);
    if (peers.length === 0) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      let left = peers.length;
      let done = false;
      let silent = false;
      const end = (holder: string | undefined) => {
        if (done) return;
        done = true;
        if (holder !== undefined) this.answers.held++;
        else if (silent) this.answers.unanswered++;
        else this.answers.free++;
        resolve(holder);
      };
      for (const peer of peers)
        this.#o.nc
          .request(subjectOf(this.#o.subject, peer), String(id), { timeout: this.#o.timeoutMs })
          .then(
            (r) => {
              if (utf8.decode(r.data) === YES) end(peer);
            },
            (e: unknown) => {
              // No responders (the node is gone) or a closed connection: it holds nothing to wait for.
              if (e instanceof TimeoutError || (e as { cause?: unknown }).cause instanceof TimeoutError) {
                silent = true;
                this.#o.log.warn(
                  { node: peer, delivery: id, wait_ms: this.#o.timeoutMs, err: describeError(e) },
                  'a node did not say within the wait whether it still holds a redelivered delivery; it is run here',
                );
              }
            },
          )
          .finally(() => {
            if (--left === 0) end(undefined);
          });
    });
  }

  stop(): void {
    this.#sub.unsubscribe();
  }
}

function subjectOf(subject: string, node: string): string {
  return `${subject}_holding.${node}`;
}
