import type { EventEmitter } from 'node:events';

/**
 * Something held open only while anything wants it: a node's subscription to the events other
 * nodes publish, kept while a listener on this node would hear them. With nobody listening, each
 * of those publications would wake this process for nothing.
 *
 * Opened at the first want once started; closed `lingerMs` after the last want ends, so callers
 * that come and go one after another (an SSE stream, a wait per request) reuse it; closed for good
 * by `close`.
 */
export class WhileWanted {
  readonly #open: () => () => void;
  readonly #lingerMs: number;
  #wants = 0;
  #state: 'new' | 'running' | 'closed' = 'new';
  #shut: (() => void) | undefined;
  #linger: NodeJS.Timeout | undefined;

  /** `open` opens the resource and answers how to close it. */
  constructor(open: () => () => void, lingerMs: number) {
    this.#open = open;
    this.#lingerMs = lingerMs;
  }

  /** How many wants are held now. */
  get wanted(): number {
    return this.#wants;
  }

  /** Whether the resource is open now. */
  get isOpen(): boolean {
    return this.#shut !== undefined;
  }

  want(): void {
    this.#wants++;
    if (this.#linger !== undefined) {
      clearTimeout(this.#linger);
      this.#linger = undefined;
    }
    this.#sync();
  }

  unwant(): void {
    if (this.#wants === 0) return;
    this.#wants--;
    if (this.#wants > 0 || this.#shut === undefined || this.#linger !== undefined) return;
    this.#linger = setTimeout(() => {
      this.#linger = undefined;
      if (this.#wants === 0) this.#close();
    }, this.#lingerMs);
    this.#linger.unref();
  }

  /** Opens it if wanted; until this is called, wants are only counted. */
  start(): void {
    if (this.#state !== 'new') return;
    this.#state = 'running';
    this.#sync();
  }

  close(): void {
    this.#state = 'closed';
    if (this.#linger !== undefined) clearTimeout(this.#linger);
    this.#linger = undefined;
    this.#close();
  }

  #sync(): void {
    if (this.#state === 'running' && this.#wants > 0 && this.#shut === undefined) this.#shut = this.#open();
  }

  #close(): void {
    const shut = this.#shut;
    this.#shut = undefined;
    shut?.();
  }
}

/** The longest a listener waits for a subscription it opened to be confirmed (`settledWithin`). */
export const CONFIRM_WAIT_MS = 2_000;

/**
 * Makes each listener of `event` on `emitter` a want of `wanted` (those `counts` accepts, all by
 * default), the ones already attached included. Returns the detach.
 */
export function wantedByListeners(
  wanted: WhileWanted,
  emitter: EventEmitter,
  event: string,
  counts: (listener: unknown) => boolean = () => true,
): () => void {
  const on = (name: string | symbol, f: unknown): void => {
    if (name === event && counts(f)) wanted.want();
  };
  const off = (name: string | symbol, f: unknown): void => {
    if (name === event && counts(f)) wanted.unwant();
  };
  for (const f of emitter.listeners(event)) if (counts(f)) wanted.want();
  emitter.on('newListener', on);
  emitter.on('removeListener', off);
  return () => {
    emitter.off('newListener', on);
    emitter.off('removeListener', off);
  };
}

/**
 * `p`, or nothing once `ms` have passed: a wait that must not outlast a link that is down (a
 * subscription's confirmation while NATS reconnects).
 */
export function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    p.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}
