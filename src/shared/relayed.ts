/**
 * A mark on an object another node produced and this node only relays: a bus event heard over
 * NATS, a registry change applied from the cluster's directory. Listeners that write to state the
 * nodes share (the cluster's event store in PostgreSQL) skip what is marked, so each event is
 * written once, by the node where it happened. A symbol, not a field: it never reaches JSON.
 */
const RELAYED_FROM = Symbol('caxton.relayed_from');

/** Marks `x` as relayed from `node` (returns `x`). */
export function markRelayed<T extends object>(x: T, node: string): T {
  Object.defineProperty(x, RELAYED_FROM, { value: node, enumerable: false, configurable: true });
  return x;
}

/** The node `x` was relayed from; undefined for what happened here. */
export function relayedFrom(x: object): string | undefined {
  return (x as { [RELAYED_FROM]?: string })[RELAYED_FROM];
}

/** Runs `fn` with `x` marked as relayed from `node`, then removes the mark (for synchronous emitters: the registry's change event). */
export function whileRelayed<T>(x: object, node: string, fn: () => T): T {
  markRelayed(x, node);
  try {
    return fn();
  } finally {
    delete (x as { [RELAYED_FROM]?: string })[RELAYED_FROM];
  }
}

const LOCAL_ONLY = Symbol('caxton.local_only');

/**
 * Marks `listener` as one that skips whatever is relayed (returns it): an emitter that relays from
 * other nodes need not hear them for it (the shared event store's recorder of message.sent).
 */
export function hearsOnlyLocal<T extends object>(listener: T): T {
  Object.defineProperty(listener, LOCAL_ONLY, { value: true, enumerable: false });
  return listener;
}

/** Whether `listener` would use what is relayed from other nodes (every listener not marked by hearsOnlyLocal). */
export function wantsRelayed(listener: unknown): boolean {
  return !(typeof listener === 'function' && (listener as { [LOCAL_ONLY]?: boolean })[LOCAL_ONLY] === true);
}
