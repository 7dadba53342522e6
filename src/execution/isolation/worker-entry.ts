/**
 * Entry point of a pooled worker thread (compiled to dist/, loaded by WorkerMember).
 * Loads the task module, reports 'ready', then runs the jobs the parent sends, many at once
 * (job-host.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { JobHost } from './job-host.js';
import { loadTask } from './load-task.js';
import { isParentMessage, toWireError, type ChildMessage } from './protocol.js';
import { TaskCalls } from './task-calls.js';

const port = parentPort;
if (!port) throw new Error('worker-entry must run in a worker thread');
const { taskModule } = workerData as { taskModule: string };

function post(message: ChildMessage, then?: () => void): void {
  port?.postMessage(message);
  then?.();
}

try {
  const run = await loadTask(taskModule);
  const host = new JobHost({ run, calls: new TaskCalls(post), send: post });
  port.on('message', (m: unknown) => {
    if (isParentMessage(m)) host.receive(m);
  });
  post({ type: 'ready' });
} catch (e) {
  post({ type: 'init-error', error: toWireError(e) });
}
