import type { AgentRegistry } from '../../agents/index.js';
import { underApi } from '../../api/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { ChatThreads, Executor } from '../../execution/index.js';
import { CaxtonError } from '../../shared/errors.js';
import type { Component } from './component.js';

/**
 * Agent2Agent (src/a2a, docs/a2a.md): the exposed agents' cards and JSON-RPC endpoints. The
 * module and the A2A SDK are loaded only when `[a2a] expose` names agents: a server that serves
 * none never loads them.
 */
export async function startA2a(opts: {
  config: ServerConfig;
  executor: Executor;
  threads: ChatThreads;
  registry: AgentRegistry;
}): Promise<Component> {
  const { config, executor } = opts;
  if (config.a2a.expose.length === 0) return { name: 'a2a' };
  if (!executor.runs)
    throw new CaxtonError(
      'invalid_config',
      '[a2a] expose needs durable runs (an A2A task is a run): remove [execution] durable_runs = false, or [a2a] expose',
      { field: 'a2a.expose' },
    );
  const { a2aPlugins } = await import('../../a2a/index.js');
  const plugins = a2aPlugins({
    executor,
    threads: opts.threads,
    registry: opts.registry,
    config: { a2a: config.a2a, auth: config.auth },
  });
  return { name: 'a2a', routes: underApi(plugins) };
}
