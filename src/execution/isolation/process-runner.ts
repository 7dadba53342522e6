/**
 * Entry point of a pooled child process (compiled to dist/, forked by ProcessMember).
 * Loads the task module named by argv[2], reports 'ready', then runs jobs one at a time as the
 * parent sends them. After each job it checks what the job left behind (process-state.ts) and
 * says in its reply whether the process must retire; a retiring process exits right after
 * replying, and the parent never sends it another job. It also exits when the IPC channel
 * closes (the parent went away).
 */
import { loadTask } from './load-task.js';
import { ProcessStateWatch } from './process-state.js';
import { isParentMessage, toWireError, type ChildMessage } from './protocol.js';
import { jobEndedError, TaskCalls } from './task-calls.js';
import type { TaskFunction } from './types.js';

/** A job that leaves more than this share of the heap cap in use retires its process. */
const HEAP_RETIRE_SHARE = 0.5;

function send(message: ChildMessage, then?: () => void): void {
  if (!process.send || !process.connected) {
    process.exit(0);
  }
  process.send(message, undefined, undefined, () => then?.());
}

/** Sends a job's reply; `exit` when the process retires with it. */
function reply(message: Extract<ChildMessage, { type: 'result' | 'error' }>, exit: boolean): void {
  const then = exit ? () => process.exit(0) : undefined;
  try {
    send(message, then);
  } catch (e) {
    // Not serializable: report that instead (this one always is).
    const error = toWireError(new Error(`the task's result could not be sent back: ${(e as Error).message}`));
    send(
      { type: 'error', id: message.id, error, ...(message.retire !== undefined && { retire: message.retire }) },
      then,
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
const heapCapMb = Number(process.argv[3]) || 512;

async function runJob(
  run: TaskFunction,
  calls: TaskCalls,
  watch: ProcessStateWatch,
  id: number,
  payload: unknown,
): Promise<void> {
  let done = false;
  const emit = (event: unknown): void => {
    if (!done) send({ type: 'event', id, event });
  };
  const call = (method: string, args: unknown): Promise<unknown> =>
    done ? Promise.reject(jobEndedError(method)) : calls.call(id, method, args);
  // Never aborted: on timeout/cancellation the parent kills the process.
  const signal = new AbortController().signal;
  let outcome: { type: 'result'; value: unknown } | { type: 'error'; error: ReturnType<typeof toWireError> };
  try {
    outcome = { type: 'result', value: await run(payload, { emit, signal, call }) };
  } catch (e) {
    outcome = { type: 'error', error: toWireError(e) };
  }
  done = true;
  calls.endJob(id);
  const retire = watch.check();
  reply({ ...outcome, id, ...(retire !== undefined && { retire }) }, retire !== undefined);
}

try {
  const run = await loadTask(taskModule);
  const calls = new TaskCalls((message) => send(message));
  let watch: ProcessStateWatch | undefined;
  let busy = false;
  process.on('message', (m: unknown) => {
    if (!isParentMessage(m)) return;
    if (m.type !== 'run') {
      calls.answer(m);
      return;
    }
    if (busy) return; // the parent sends one job at a time
    busy = true;
    // The baseline is taken as late as possible: after the runner's own listeners and timers.
    watch ??= new ProcessStateWatch(heapCapMb * 2 ** 20 * HEAP_RETIRE_SHARE);
    void runJob(run, calls, watch, m.id, m.payload).finally(() => {
      busy = false;
    });
  });
  send({ type: 'ready' });
} catch (e) {
  send({ type: 'init-error', error: toWireError(e) }, () => process.exit(1));
}
