import { setMaxListeners } from 'node:events';
import { agentKey } from '../agents/index.js';
import { Deque } from './deque.js';
import type { AclMessage } from './message.js';
import type { LoadView } from './strategy.js';

/** One message on its way to one receiver. `id` is the durable delivery's id (0: not persisted). */
export interface Delivery {
  readonly id: number;
  readonly message: AclMessage;
  receiver: string;
  attempts: number;
  /**
   * The delivery's first hand-out, no attempt before it (a cluster's queue: JetStream's delivery
   * count 1, none recorded on its row, and the row never published again): no run of its message
   * can exist yet.
   */
  readonly firstTry?: boolean;
}

export interface DispatcherOptions {
  /** Messages `agent` may handle at once. */
  concurrency(agent: string): number;
  /**
   * Hands one delivery to its receiver and finalizes it (acknowledged, scheduled again, or dead).
   * Must not reject; the dispatcher only counts the slot it used.
   */
  deliver(d: Delivery, signal: AbortSignal): Promise<void> | void;
}

interface Lane {
  readonly queue: Deque<Delivery>;
  running: number;
}

/**
 * Runs deliveries: one FIFO lane per receiver, at most `concurrency(agent)` running at a time, the
 * rest waiting (back-pressure is the caller's: it checks `size` before accepting). It holds no
 * durable state: the durable queue is in SQLite and the bus re-enqueues it after a restart.
 */
export class Dispatcher implements LoadView {
  readonly #lanes = new Map<string, Lane>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #abort = new AbortController();
  #size = 0;
  #running = 0;
  #stopped = false;
  #idle: (() => void)[] = [];

  constructor(private readonly opts: DispatcherOptions) {
    // Every running delivery listens on this one signal (the executor adds its own listener per run).
    setMaxListeners(0, this.#abort.signal);
  }

  /** Deliveries waiting or running (not counting those waiting for a retry). */
  get size(): number {
    return this.#size;
  }

  get running(): number {
    return this.#running;
  }

  get delayed(): number {
    return this.#timers.size;
  }

  load(agent: string): number {
    const lane = this.#lanes.get(agentKey(agent));
    return lane ? lane.queue.length + lane.running : 0;
  }

  /** Per-agent waiting and running counts. */
  lanes(): { agent: string; waiting: number; running: number }[] {
    return [...this.#lanes.entries()].map(([agent, l]) => ({ agent, waiting: l.queue.length, running: l.running }));
  }

  enqueue(d: Delivery): void {
    if (this.#stopped) return;
    const key = agentKey(d.receiver);
    let lane = this.#lanes.get(key);
    if (!lane) this.#lanes.set(key, (lane = { queue: new Deque(), running: 0 }));
    lane.queue.push(d);
    this.#size++;
    this.#pump(key, lane);
  }

  /** Enqueues `d` again after `delayMs` (a retry with backoff). */
  later(d: Delivery, delayMs: number): void {
    if (this.#stopped) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.enqueue(d);
    }, delayMs);
    t.unref();
    this.#timers.add(t);
  }

  /** Takes the waiting deliveries of `agent` out of its lane (to send them elsewhere). */
  drain(agent: string): Delivery[] {
    const lane = this.#lanes.get(agentKey(agent));
    if (!lane) return [];
    const out = lane.queue.remove(() => true);
    this.#size -= out.length;
    return out;
  }

  #pump(key: string, lane: Lane): void {
    const limit = this.opts.concurrency(key);
    while (lane.running < limit && lane.queue.length > 0 && !this.#stopped) {
      const d = lane.queue.shift()!;
      lane.running++;
      this.#running++;
      let r: Promise<void> | void;
      try {
        r = this.opts.deliver(d, this.#abort.signal);
      } catch {
        r = undefined;
      }
      if (r) {
        const done = () => this.#done(key, lane);
        r.then(done, done);
      } else this.#done(key, lane);
    }
  }

  #done(key: string, lane: Lane): void {
    lane.running--;
    this.#running--;
    this.#size--;
    if (lane.queue.length > 0) this.#pump(key, lane);
    else if (lane.running === 0) this.#lanes.delete(key);
    if (this.#running === 0 && this.#idle.length > 0) for (const r of this.#idle.splice(0)) r();
  }

  /** Resolves when nothing is running (waiting deliveries may remain). */
  whenIdle(): Promise<void> {
    if (this.#running === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /**
   * Stops taking deliveries and aborts the running ones. Their durable deliveries stay pending,
   * so they are delivered again after a restart (at-least-once).
   */
  async stop(graceMs = 0): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    if (graceMs > 0 && this.#running > 0)
      await Promise.race([this.whenIdle(), new Promise((r) => setTimeout(r, graceMs).unref())]);
    this.#abort.abort(new Error('the message bus is stopping'));
    await Promise.race([this.whenIdle(), new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}
