/**
 * The pipeline's isolation stage: which isolation an execution runs in, and the server-wide pools
 * of the pooled modes (src/execution/isolation), made on first use.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentDefinition, IsolationMode } from '../../agents/index.js';
import type { ServerConfig } from '../../config/index.js';
import { createIsolation, type Isolation, type PooledIsolationMode } from '../isolation/index.js';

/**
 * The agent's isolation mode, else the server's. A shadow run stays in the server thread, where
 * its tools can be swapped for refusals; a WebAssembly agent's module runs in its own sandbox,
 * called from the server thread; a remote agent's run is a call from the server thread.
 */
export function chooseIsolation(
  def: AgentDefinition,
  shadow: boolean,
  remote: boolean,
  serverMode: IsolationMode,
): IsolationMode {
  return shadow || def.wasm !== undefined || remote ? 'context' : (def.execution.isolation ?? serverMode);
}

/** The compiled task module (workers and child processes load JavaScript, never the .ts sources). */
function taskModulePath(): string {
  const js = join(dirname(dirname(fileURLToPath(import.meta.url))), 'task.js');
  if (existsSync(js)) return js;
  return js.replace(/([\\/])src([\\/])execution([\\/])task\.js$/, '$1dist$2execution$3task.js');
}

export class IsolationPools {
  readonly #pools = new Map<IsolationMode, Isolation>();

  constructor(private readonly execution: ServerConfig['execution']) {}

  get(mode: PooledIsolationMode): Isolation {
    let pool = this.#pools.get(mode);
    if (!pool) {
      const execution = this.execution;
      pool = createIsolation(mode, {
        taskModule: taskModulePath(),
        maxOldGenerationSizeMb: execution.max_memory_mb,
        ...(execution.pool_size !== undefined && { poolSize: execution.pool_size }),
        ...(execution.process_max_requests !== undefined && {
          maxRequestsPerProcess: execution.process_max_requests,
        }),
        ...(execution.runs_per_member !== undefined && {
          memberConcurrency: execution.runs_per_member,
        }),
      });
      this.#pools.set(mode, pool);
    }
    return pool;
  }

  stats() {
    return [...this.#pools.values()].map((p) => p.stats());
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((p) => p.close()));
    this.#pools.clear();
  }
}
