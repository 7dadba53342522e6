import { INVALID_SPAN_CONTEXT, ROOT_CONTEXT, trace, type Context, type ContextManager } from '@opentelemetry/api';

/** The key the OpenTelemetry API keeps the active span under in a `Context` (it does not export it). */
export const SPAN_KEY: symbol = (() => {
  let key: symbol | undefined;
  const probe: Context = {
    getValue: () => undefined,
    setValue: (k) => {
      key = k;
      return probe;
    },
    deleteValue: () => probe,
  };
  trace.setSpan(probe, trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
  return key!;
})();

/**
 * A context with one value more than its parent: one small object, where the API's own context
 * copies its parent's whole map on every `setValue` (a span made active per delivery and per
 * execution).
 */
export class ChildContext implements Context {
  constructor(
    readonly parent: Context,
    readonly key: symbol,
    readonly value: unknown,
  ) {}

  getValue(key: symbol): unknown {
    return key === this.key ? this.value : this.parent.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return new ChildContext(this, key, value);
  }

  deleteValue(key: symbol): Context {
    return new ChildContext(this, key, undefined);
  }
}

/**
 * The active context for the synchronous part of a call only (ADR 0065): `with` sets it, runs the
 * function and puts the previous one back. It installs no async hooks, so awaits cost what they
 * cost without tracing; what runs after an await no longer sees the span, which is why Caxton
 * hands its trace context on explicitly (a `traceparent` on executions, deliveries, messages,
 * tool and model calls; trace ids bound on a request's logger). The same design as the
 * OpenTelemetry web SDK's StackContextManager.
 */
export class SyncContextManager implements ContextManager {
  #current: Context = ROOT_CONTEXT;

  active(): Context {
    return this.#current;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    const previous = this.#current;
    this.#current = ctx;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.#current = previous;
    }
  }

  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const f = target as unknown as (...a: unknown[]) => unknown;
    return ((...a: unknown[]) => this.with(ctx, () => f(...a))) as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.#current = ROOT_CONTEXT;
    return this;
  }
}
