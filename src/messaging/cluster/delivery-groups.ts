/**
 * Several deliveries in one JetStream message (ADR 0158). Each stream message costs a publish, a
 * PubAck, a hand-out and an acknowledgement on every process it crosses, whatever it carries, and
 * one per delivery was the floor of a node's CPU per message (docs/benchmarks.md, "Cluster"). The
 * first hand-outs a node publishes in one turn of its event loop (the steps one transaction
 * committed) go out as one message per receiver's subject; the consumer takes each delivery in it
 * as it took a single one, through a `HandOut` that settles the shared message once every delivery
 * in it is settled.
 */
import type { JsMsg } from '@nats-io/jetstream';

/** What the queue does with the JetStream message of one delivery: a whole message, or one delivery in a group. */
export interface HandOut {
  /** The stream sequence of the message carrying it (a redelivery of the same message keeps it). */
  readonly seq: number;
  readonly info: { readonly deliveryCount: number };
  ack(): void;
  /** Handed out again after `delayMs` (at once without one). */
  nak(delayMs?: number): void;
  /** Never handed out again (its row is dead). */
  term(reason?: string): void;
  /** Still being worked on: the ack wait starts again. */
  working(): void;
}

/** A group on the wire: the deliveries' own wires, in the order published. */
export interface GroupWire<W> {
  g: W[];
}

export const isGroupWire = <W>(w: unknown): w is GroupWire<W> =>
  typeof w === 'object' && w !== null && Array.isArray((w as { g?: unknown }).g);

/** The least time between two progress acks of one group message (many of its deliveries say it). */
const WORKING_EVERY_MS = 200;

/**
 * The hand-outs of the `count` deliveries in group message `m`. The message is acknowledged once
 * each of them is acked or terminated; when any of them was given back (a retry, a delivery held
 * by another node, a node stopping), it is given back whole once the last one settles, after the
 * shortest delay asked: its deliveries already done are then dropped by their rows' state.
 */
export function groupHandOuts(m: JsMsg, count: number): HandOut[] {
  let left = count;
  let again: number | undefined;
  let workedAt = 0;
  const settle = (delayMs: number | undefined, back: boolean): void => {
    if (back) again = Math.min(again ?? Infinity, delayMs ?? 0);
    if (--left > 0) return;
    try {
      if (again === undefined) m.ack();
      else if (again > 0) m.nak(again);
      else m.nak();
    } catch {
      // The connection closed meanwhile (a node stopping): JetStream hands the message out again
      // after the ack wait, and its deliveries already done are dropped by their rows' state. The
      // last delivery may settle in a callback, where a throw would be an unhandled rejection.
    }
  };
  const one = (): HandOut => {
    let settled = false;
    const once = (delayMs: number | undefined, back: boolean): void => {
      if (settled) return;
      settled = true;
      settle(delayMs, back);
    };
    return {
      seq: m.seq,
      info: m.info,
      ack: () => once(undefined, false),
      nak: (delayMs) => once(delayMs, true),
      term: () => once(undefined, false),
      working: () => {
        if (settled) return;
        const now = Date.now();
        if (now - workedAt < WORKING_EVERY_MS) return;
        workedAt = now;
        m.working();
      },
    };
  };
  return Array.from({ length: count }, one);
}

interface OpenGroup {
  ids: number[];
  wires: string[];
  chars: number;
  waiters: { res(): void; rej(e: unknown): void }[];
}

export interface PublishGroupsOptions {
  /** Publishes one stream message and resolves at its PubAck. */
  send(subject: string, payload: string, msgId: string): Promise<void>;
  /** Most deliveries in one message (1: every delivery its own message). */
  maxCount: number;
  /** Most characters of wire in one message (NATS's max_payload, with room for multi-byte characters). */
  maxChars(): number;
}

/**
 * First hand-outs gathered per subject until the event loop's turn ends, then published as one
 * message each. A single delivery goes out as its own wire, as without grouping.
 */
export class PublishGroups {
  readonly #o: PublishGroupsOptions;
  readonly #open = new Map<string, OpenGroup>();
  #scheduled = false;
  /** Deliveries per message this node published lately: what a stream message waiting stands for. */
  perMessage = 1;

  constructor(opts: PublishGroupsOptions) {
    this.#o = opts;
  }

  /** Resolves at the PubAck of the message carrying delivery `id`; rejects when that publish fails. */
  add(subject: string, id: number, wire: string): Promise<void> {
    return new Promise((res, rej) => {
      let g = this.#open.get(subject);
      if (g && (g.ids.length >= this.#o.maxCount || g.chars + wire.length > this.#o.maxChars())) {
        this.#send(subject, g);
        g = undefined;
      }
      if (!g) {
        g = { ids: [], wires: [], chars: 8, waiters: [] };
        this.#open.set(subject, g);
      }
      g.ids.push(id);
      g.wires.push(wire);
      g.chars += wire.length + 1;
      g.waiters.push({ res, rej });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // After this turn's I/O callbacks: the steps one commit finished publish in the same turn.
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    for (const [subject, g] of this.#open) this.#send(subject, g);
  }

  #send(subject: string, g: OpenGroup): void {
    this.#open.delete(subject);
    this.perMessage += (g.ids.length - this.perMessage) / 16;
    const single = g.ids.length === 1;
    // A group's id is its first delivery's: a row is the first of one first hand-out only.
    const payload = single ? g.wires[0]! : `{"g":[${g.wires.join(',')}]}`;
    const msgId = single ? `d${g.ids[0]}` : `g${g.ids[0]}`;
    let sent: Promise<void>;
    try {
      sent = this.#o.send(subject, payload, msgId);
    } catch (e) {
      sent = Promise.reject(e);
    }
    sent.then(
      () => {
        for (const w of g.waiters) w.res();
      },
      (e: unknown) => {
        for (const w of g.waiters) w.rej(e);
      },
    );
  }
}
