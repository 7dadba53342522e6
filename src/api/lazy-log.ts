import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions } from 'pino';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type Args = Parameters<FastifyBaseLogger['info']>;

/**
 * A request's logger with more bindings (its trace and span, the client's request id), made into
 * pino's child only when a line of an enabled level is logged. pino serializes a child's bindings
 * when the child is made, which costs more than everything else tracing adds to a request, and
 * most requests log nothing.
 */
export function lazyChild(parent: FastifyBaseLogger, bindings: Bindings): FastifyBaseLogger {
  return new LazyChild(parent, bindings) as unknown as FastifyBaseLogger;
}

class LazyChild {
  readonly #parent: FastifyBaseLogger;
  #bindings: Bindings;
  #real: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings) {
    this.#parent = parent;
    this.#bindings = bindings;
  }

  #logger(): FastifyBaseLogger {
    return (this.#real ??= this.#parent.child(this.#bindings));
  }

  /** pino's own test, on the logger the lines would go to (true when it has none). */
  isLevelEnabled(level: string): boolean {
    const enabled = (this.#real ?? this.#parent) as FastifyBaseLogger & { isLevelEnabled?: (l: string) => boolean };
    return enabled.isLevelEnabled === undefined || enabled.isLevelEnabled(level);
  }

  #log(level: Level, args: Args): void {
    if (!this.isLevelEnabled(level)) return;
    (this.#logger()[level] as (...a: Args) => void)(...args);
  }

  get level(): string {
    return (this.#real ?? this.#parent).level;
  }

  set level(level: string) {
    this.#logger().level = level;
  }

  /** A further child of this one: its bindings join these, still made on first use. */
  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    if (this.#real !== undefined || options !== undefined) return this.#logger().child(bindings, options);
    return new LazyChild(this.#parent, { ...this.#bindings, ...bindings }) as unknown as FastifyBaseLogger;
  }

  fatal(...args: Args): void {
    this.#log('fatal', args);
  }
  error(...args: Args): void {
    this.#log('error', args);
  }
  warn(...args: Args): void {
    this.#log('warn', args);
  }
  info(...args: Args): void {
    this.#log('info', args);
  }
  debug(...args: Args): void {
    this.#log('debug', args);
  }
  trace(...args: Args): void {
    this.#log('trace', args);
  }
  silent(): void {}
}
