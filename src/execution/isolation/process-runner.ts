/**
 * Entry point of a pooled child process (compiled to dist/, forked by ProcessMember).
 * Loads the task module named by argv[2], reports 'ready', then runs the jobs the parent sends,
 * many at once (job-host.ts). After each job it checks the heap, and whenever no job is left
 * running it checks what the jobs left behind (process-state.ts); either finding goes in the
 * reply as `retire`: the parent sends no further job, and the process exits once its last
 * running job has replied. It also exits when the IPC channel closes (the parent went away).
 */
import { loadTask } from './load-task.js';
import { JobHost } from './job-host.js';
import { ProcessStateWatch } from './process-state.js';
import { Outbox, unpack } from './outbox.js';
import { isParentMessage, toWireError, type ChildMessage } from './protocol.js';
import { TaskCalls } from './task-calls.js';

/** More than this share of the heap cap in use after a job retires the process. */
const HEAP_RETIRE_SHARE = 0.5;

const outbox = new Outbox<ChildMessage>((batch, done) => {
  if (!process.send || !process.connected) process.exit(0);
  process.send(batch, undefined, undefined, done);
});

/** Sends a message with the others of this turn (outbox.ts); throws at once when it cannot be cloned. */
function send(message: ChildMessage, then?: () => void): void {
  outbox.send(message, then);
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
const heapCapMb = Number(process.argv[3]) || 512;

try {
  const run = await loadTask(taskModule);
  const calls = new TaskCalls((message) => send(message));
  let watch: ProcessStateWatch | undefined;
  const host = new JobHost({
    run,
    calls,
    send,
    retireCheck: (idle) => (idle ? watch?.check() : watch?.checkHeap()),
    onRetiredIdle: () => process.exit(0),
  });
  process.on('message', (batch: unknown) => {
    for (const m of unpack(batch)) {
      if (!isParentMessage(m)) continue;
      // The baseline is taken as late as possible: after the runner's own listeners and timers,
      // and while no job runs.
      if (m.type === 'run' && host.active === 0)
        watch ??= new ProcessStateWatch(heapCapMb * 2 ** 20 * HEAP_RETIRE_SHARE);
      host.receive(m);
    }
  });
  send({ type: 'ready' });
} catch (e) {
  send({ type: 'init-error', error: toWireError(e) }, () => process.exit(1));
}
