import { memoryApi } from '../../api/index.js';
import type { AgentRegistry } from '../../agents/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { ExecutionMemory } from '../../execution/index.js';
import { createMemory, type MemoryComponent as MemoryGraph } from '../../memory/index.js';
import type { Logger } from '../../observability/index.js';
import type { Db } from '../../storage/index.js';
import type { Component } from './component.js';
import {
  instrumentExecutionMemory,
  instrumentMemoryTools,
  type MemoryTelemetry,
} from './memory-telemetry-component.js';

export interface MemoryComponent extends Component {
  /** The knowledge graph (src/memory). */
  readonly graph: MemoryGraph;
  /** `{{memory_context}}` and auto_store, measured (for `Executor.memory`). */
  readonly execution: ExecutionMemory;
}

/**
 * Memory (src/memory): the knowledge graph in caxton.db or PostgreSQL; its nine tools
 * (create_entities...) as host tools; {{memory_context}} and auto_store through the executor; the
 * entity count as a metric; /api/v1/memory. The embedder loads on first use. Undefined with
 * `[memory] enabled = false`; throws 'invalid_config' on a bad `[memory]`.
 */
export async function startMemory(opts: {
  config: ServerConfig;
  db: Db;
  registry: AgentRegistry;
  logger: Logger;
  telemetry: MemoryTelemetry;
}): Promise<MemoryComponent | undefined> {
  const { config, telemetry } = opts;
  const graph = await createMemory({
    config: config.memory,
    dataDir: config.data_dir,
    db: opts.db,
    registry: opts.registry,
    log: opts.logger,
  });
  if (!graph) return undefined;
  return {
    name: 'memory',
    graph,
    execution: instrumentExecutionMemory(graph.execution, telemetry),
    hostTools: instrumentMemoryTools(graph.tools, telemetry),
    metrics: { memoryEntities: () => graph.store.countEntities() },
    routes: memoryApi({ store: graph.store }),
    ...(graph.ping && { readiness: [{ name: 'memory-postgresql', check: graph.ping }] }),
    close: () => graph.close(),
  };
}
