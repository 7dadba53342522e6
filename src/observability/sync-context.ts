import { ROOT_CONTEXT, type Context, type ContextManager } from '@opentelemetry/api';

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
