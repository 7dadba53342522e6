import type { MetricSources } from '../../observability/index.js';
import type { Tool, ToolRegistry } from '../../tools/index.js';
import type { ApiRoutes, Readiness, ReadinessCheck } from '../../api/index.js';

/**
 * What one part of the server (agents, execution, messaging, memory, MCP, tools, audit, the HTTP
 * listener...) adds to the whole once it has started, and how it stops. Each is built by one
 * factory in this folder; the server starts them in order and closes them in reverse (ADR 0034).
 */
export interface Component {
  /** For the log line when closing it fails. */
  readonly name: string;
  /** Route plugins for the API, registered in start order (one way for every component). */
  readonly routes?: readonly ApiRoutes[];
  /** Tools run in the server process whatever the isolation mode (`Executor.hostTools`). */
  readonly hostTools?: readonly Tool[];
  /** Gauges read at scrape time (`Metrics.sources`). */
  readonly metrics?: Partial<MetricSources>;
  /** Outside dependencies GET /ready checks (a database, a message broker). */
  readonly readiness?: readonly ReadinessCheck[];
  /** Releases what the factory opened; called once, after every component started later is closed. */
  close?(): Promise<void> | void;
}

interface Sinks {
  metrics: { readonly sources: MetricSources };
  readiness?: Readiness;
  onCloseError: (component: string, err: unknown) => void;
}

/**
 * The started components, in start order. `add` applies a component's contributions and records
 * it for closing; `close` closes them in reverse, each once, and goes on past one that fails (the
 * failure is reported, the rest still close). A start that fails part-way calls `close` on what
 * had started, so nothing opened before the failure is left open.
 */
export class ComponentStack {
  readonly #started: Component[] = [];
  readonly #routes: ApiRoutes[] = [];
  readonly #pendingTools: Tool[] = [];
  #hostTools: ToolRegistry | undefined;
  #closing: Promise<void> | undefined;

  constructor(private readonly sinks: Sinks) {}

  /** Records `c` (its close runs in reverse order) and applies what it contributes; returns `c` for chaining. */
  add<C extends Component>(c: C): C {
    this.#started.push(c);
    this.#routes.push(...(c.routes ?? []));
    Object.assign(this.sinks.metrics.sources, c.metrics);
    for (const t of c.hostTools ?? []) this.#registerTool(t);
    for (const r of c.readiness ?? []) this.sinks.readiness?.add(r);
    return c;
  }

  /**
   * Host tools contributed before the executor existed are registered once it does (in the order
   * they were contributed); later ones as their component is added.
   */
  useHostTools(registry: ToolRegistry): void {
    this.#hostTools = registry;
    for (const t of this.#pendingTools.splice(0)) registry.register(t);
  }

  /** Every route contribution so far, in start order. */
  get routes(): readonly ApiRoutes[] {
    return this.#routes;
  }

  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      for (const c of this.#started.splice(0).reverse()) {
        try {
          await c.close?.();
        } catch (e) {
          this.sinks.onCloseError(c.name, e);
        }
      }
    })());
  }

  #registerTool(t: Tool): void {
    if (this.#hostTools) this.#hostTools.register(t);
    else this.#pendingTools.push(t);
  }
}
