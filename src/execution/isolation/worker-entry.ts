/**
 * Entry point of a pooled worker thread (compiled to dist/, loaded by WorkerMember).
 * Loads the task module, reports 'ready', then runs jobs one at a time as the parent sends them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadTask } from './load-task.js';
import { isParentMessage, toWireError, type ChildMessage } from './protocol.js';
import { jobEndedError, TaskCalls } from './task-calls.js';
import type { TaskFunction } from './types.js';

const port = parentPort;
if (!port) throw new Error('worker-entry must run in a worker thread');
const { taskModule } = workerData as { taskModule: string };

function post(message: ChildMessage): void {
  port?.postMessage(message);
}

const calls = new TaskCalls(post);

async function runJob(run: TaskFunction, id: number, payload: unknown): Promise<void> {
  // Never aborted: on timeout/cancellation the parent terminates the whole thread.
  const signal = new AbortController().signal;
  let done = false;
  const emit = (event: unknown): void => {
    if (!done) post({ type: 'event', id, event });
  };
  const call = (method: string, args: unknown): Promise<unknown> =>
    done ? Promise.reject(jobEndedError(method)) : calls.call(id, method, args);
  try {
    const value = await run(payload, { emit, signal, call });
    done = true;
    try {
      post({ type: 'result', id, value });
    } catch (e) {
      post({
        type: 'error',
        id,
        error: toWireError(new Error(`the task's result could not be sent back: ${(e as Error).message}`)),
      });
    }
  } catch (e) {
    done = true;
    post({ type: 'error', id, error: toWireError(e) });
  } finally {
    calls.endJob(id);
  }
}

try {
  const run = await loadTask(taskModule);
  port.on('message', (m: unknown) => {
    if (!isParentMessage(m)) return;
    if (m.type === 'run') void runJob(run, m.id, m.payload);
    else calls.answer(m);
  });
  post({ type: 'ready' });
} catch (e) {
  post({ type: 'init-error', error: toWireError(e) });
}
