/**
 * Entry point of a pre-started child process (compiled to dist/, forked by ProcessMember).
 * Loads the task module named by argv[2], reports 'ready', runs exactly one job, replies and
 * exits. It also exits when the IPC channel closes (the parent went away).
 */
import { loadTask } from './load-task.js';
import { isParentMessage, toWireError, type ChildMessage } from './protocol.js';
import { jobEndedError, TaskCalls } from './task-calls.js';

function send(message: ChildMessage, then?: () => void): void {
  if (!process.send || !process.connected) {
    process.exit(0);
  }
  process.send(message, undefined, undefined, () => then?.());
}

function finish(message: ChildMessage): void {
  try {
    send(message, () => process.exit(0));
  } catch (e) {
    // Not serializable: report that instead (this one always is).
    const id = 'id' in message ? message.id : 0;
    send({ type: 'error', id, error: toWireError(new Error(`the task's result could not be sent back: ${(e as Error).message}`)) }, () => process.exit(0));
  }
}

function fatal(e: unknown): void {
  try {
    send({ type: 'fatal', error: toWireError(e) }, () => process.exit(70));
  } catch {
    process.exit(70);
  }
}

process.on('disconnect', () => process.exit(0));
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);

const taskModule = process.argv[2] ?? '';
try {
  const run = await loadTask(taskModule);
  const calls = new TaskCalls((message) => send(message));
  let taken = false;
  process.on('message', (m: unknown) => {
    if (!isParentMessage(m)) return;
    if (m.type !== 'run') {
      calls.answer(m);
      return;
    }
    if (taken) return;
    taken = true;
    const { id } = m;
    let done = false;
    const emit = (event: unknown): void => {
      if (!done) send({ type: 'event', id, event });
    };
    const call = (method: string, args: unknown): Promise<unknown> => (done ? Promise.reject(jobEndedError(method)) : calls.call(id, method, args));
    // Never aborted: on timeout/cancellation the parent kills the process.
    const signal = new AbortController().signal;
    (async () => run(m.payload, { emit, signal, call }))().then(
      (value) => {
        done = true;
        finish({ type: 'result', id, value });
      },
      (e: unknown) => {
        done = true;
        finish({ type: 'error', id, error: toWireError(e) });
      },
    );
  });
  send({ type: 'ready' });
} catch (e) {
  send({ type: 'init-error', error: toWireError(e) }, () => process.exit(1));
}
