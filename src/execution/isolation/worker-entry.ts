/**
 * Entry point of a pooled worker thread (compiled to dist/, loaded by WorkerMember).
 * Loads the task module, reports 'ready', then runs the jobs the parent sends, many at once
 * (job-host.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { JobHost } from './job-host.js';
import { loadTask } from './load-task.js';
import { Outbox, unpack } from './outbox.js';
import { isParentMessage, toWireError, type ChildMessage } from './protocol.js';
import { TaskCalls } from './task-calls.js';

const port = parentPort;
if (!port) throw new Error('worker-entry must run in a worker thread');
const { taskModule } = workerData as { taskModule: string };

const outbox = new Outbox<ChildMessage>((batch, done) => {
  port.postMessage(batch);
  done();
});

/** Sends a message with the others of this turn (outbox.ts); throws at once when it cannot be cloned. */
function post(message: ChildMessage, then?: () => void): void {
  outbox.send(message, then);
}

try {
  const run = await loadTask(taskModule);
  const host = new JobHost({ run, calls: new TaskCalls(post), send: post });
  port.on('message', (batch: unknown) => {
    for (const m of unpack(batch)) if (isParentMessage(m)) host.receive(m);
  });
  post({ type: 'ready' });
} catch (e) {
  post({ type: 'init-error', error: toWireError(e) });
}
