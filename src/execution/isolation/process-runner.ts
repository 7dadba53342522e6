/**
 * Entry point of a pre-started child process (compiled to dist/, forked by ProcessMember).
 * Loads the task module named by argv[2], reports 'ready', runs exactly one job, replies and
 * exits. It also exits when the IPC channel closes (the parent went away).
 */
import { loadTask } from './load-task.js';
import { toWireError, type ChildMessage, type ParentMessage } from './protocol.js';

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
    send({ type: 'error', id, error: toWireError(new Error(`the task's result could not be sent back: ${(e as Error).message}`)) }, () =>
      process.exit(0),
    );
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
  let taken = false;
  process.on('message', (m: ParentMessage) => {
    if (m.type !== 'run' || taken) return;
    taken = true;
    const { id } = m;
    let done = false;
    const emit = (event: unknown): void => {
      if (!done) send({ type: 'event', id, event });
    };
    // Never aborted: on timeout/cancellation the parent kills the process.
    const signal = new AbortController().signal;
    (async () => run(m.payload, { emit, signal }))().then(
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
