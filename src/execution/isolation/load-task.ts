import type { TaskFunction } from './types.js';

/** Imports a task module (by file: URL) and returns its `run` function. */
export async function loadTask(moduleUrl: string): Promise<TaskFunction> {
  const mod = (await import(moduleUrl)) as { run?: unknown; default?: unknown };
  const fromDefault = (mod.default as { run?: unknown } | undefined)?.run;
  const run = typeof mod.run === 'function' ? mod.run : fromDefault;
  if (typeof run !== 'function') {
    throw new Error(`the task module ${moduleUrl} does not export a run(payload, ctx) function`);
  }
  return run as TaskFunction;
}
