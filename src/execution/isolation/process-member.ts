import { fork, type ChildProcess } from 'node:child_process';
import { CaxtonError, describeError } from '../../shared/errors.js';
import { track } from './child-registry.js';
import { entryScript } from './entry-script.js';
import { answerHostCall } from './job-control.js';
import type { JobHooks, MemberFate, PoolMember } from './pool-member.js';
import { isChildMessage, type ParentMessage, type WireError } from './protocol.js';
import { describeWire, taskErrorFromWire } from './task-error.js';

export interface ProcessMemberOptions {
  moduleUrl: string;
  maxOldGenerationSizeMb: number;
  execArgv: string[];
  env: Record<string, string> | undefined;
  output: 'inherit' | 'ignore';
  /** Jobs one process runs before it is replaced. */
  maxRequests: number;
}

interface PendingJob {
  id: number;
  hooks: JobHooks;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** How long a retiring child may take to exit by itself before it is SIGKILLed. */
const LINGER_MS = 1_000;
/** How long to wait, after 'exit', for IPC messages still in flight. */
const DRAIN_MS = 250;
const STDERR_TAIL = 8_192;
const OOM_PATTERN = /heap out of memory|Reached heap limit|Allocation failed/i;

/**
 * One pre-started child process running process-runner.js; runs jobs one at a time until it
 * has run `maxRequests`, or a job left process-wide state behind (the child says so in its
 * reply), or it dies or is killed (timeout, cancellation). Then it is `spent` and the pool
 * replaces it.
 */
export class ProcessMember implements PoolMember {
  readonly ready: Promise<void>;
  readonly gone: Promise<void>;
  #fate: MemberFate = 'alive';
  readonly #child: ChildProcess;
  readonly #limitMb: number;
  readonly #maxRequests: number;
  #served = 0;
  #retired: string | undefined;
  #job: PendingJob | undefined;
  #isReady = false;
  #initError: WireError | undefined;
  #fatal: WireError | undefined;
  #spawnError: Error | undefined;
  #stderrTail = '';
  #readyResolve!: () => void;
  #readyReject!: (e: Error) => void;
  #goneResolve!: () => void;
  #finalized = false;

  constructor(o: ProcessMemberOptions) {
    this.#limitMb = o.maxOldGenerationSizeMb;
    this.#maxRequests = o.maxRequests;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#readyResolve = resolve;
      this.#readyReject = reject;
    });
    this.ready.catch(() => {}); // observed by the pool; avoid unhandled rejections
    this.gone = new Promise<void>((resolve) => {
      this.#goneResolve = resolve;
    });
    this.#child = fork(entryScript('process-runner'), [o.moduleUrl, String(o.maxOldGenerationSizeMb)], {
      execArgv: [`--max-old-space-size=${o.maxOldGenerationSizeMb}`, ...o.execArgv],
      env: o.env ? { ...process.env, ...o.env } : process.env,
      stdio: ['ignore', o.output, 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    track(this.#child);
    const inherit = o.output === 'inherit';
    this.#child.stderr?.on('data', (chunk: Buffer) => {
      if (inherit) process.stderr.write(chunk);
      this.#stderrTail = (this.#stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    this.#child.on('message', (m: unknown) => this.#onMessage(m));
    this.#child.on('error', (e) => {
      this.#spawnError ??= e;
      if (this.#child.pid === undefined) this.#finalize(); // spawn failed: no 'exit' will follow
    });
    this.#child.once('exit', () => {
      if (this.#fate === 'alive' && !this.#job) this.#fate = 'crashed'; // died while idle
      // Messages sent just before exiting may still be queued: wait for the channel to drain.
      if (!this.#child.connected) this.#finalize();
      else {
        this.#child.once('disconnect', () => this.#finalize());
        setTimeout(() => this.#finalize(), DRAIN_MS).unref();
      }
    });
  }

  get fate(): MemberFate {
    return this.#fate;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Why the process retired after its last job (it touched process-wide state), if it did. */
  get retired(): string | undefined {
    return this.#retired;
  }

  execute(payload: unknown, hooks: JobHooks, signal: AbortSignal): Promise<unknown> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    if (this.#fate !== 'alive' || this.#finalized) return Promise.reject(this.#crashError());
    const id = ++this.#served;
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = (): void => {
        this.#fate = 'killed';
        settle(() => reject(signal.reason));
        this.#child.kill('SIGKILL');
      };
      const settle = (then: () => void): void => {
        signal.removeEventListener('abort', onAbort);
        this.#job = undefined;
        then();
      };
      this.#job = { id, hooks, resolve: (v) => settle(() => resolve(v)), reject: (e) => settle(() => reject(e)) };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        this.#child.send({ type: 'run', id, payload } satisfies ParentMessage);
      } catch (e) {
        this.#fate = 'killed';
        this.#child.kill('SIGKILL');
        settle(() =>
          reject(
            new CaxtonError(
              'invalid_request',
              `the payload cannot be sent to the isolated process: ${describeError(e)}`,
              undefined,
              { cause: e },
            ),
          ),
        );
      }
    });
  }

  /** After a reply: the process retires when the child asked to or when it has run its share of jobs. */
  #afterJob(retire: string | undefined): void {
    if (retire !== undefined) {
      this.#retired = retire;
      this.#fate = 'spent';
      // It exits by itself once the reply is sent; make sure it does.
      setTimeout(() => this.kill(), LINGER_MS).unref();
    } else if (this.#served >= this.#maxRequests) {
      this.#fate = 'spent';
      this.kill();
    }
  }

  kill(): void {
    if (this.#fate === 'alive') this.#fate = 'killed';
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }

  setActive(active: boolean): void {
    const { channel, stderr } = this.#child;
    if (active) {
      this.#child.ref();
      channel?.ref();
      (stderr as { ref?: () => void } | null)?.ref?.();
    } else {
      this.#child.unref();
      channel?.unref();
      (stderr as { unref?: () => void } | null)?.unref?.();
    }
  }

  #onMessage(m: unknown): void {
    if (!isChildMessage(m)) return;
    switch (m.type) {
      case 'ready':
        this.#isReady = true;
        this.#readyResolve();
        return;
      case 'init-error':
        this.#initError = m.error;
        return;
      case 'fatal':
        this.#fatal = m.error;
        return;
      case 'event':
        if (this.#job?.id === m.id) this.#job.hooks.onEvent(m.event);
        return;
      case 'call': {
        const job = this.#job;
        if (!job || job.id !== m.id) return;
        const current = (): boolean => this.#job === job && this.#fate === 'alive' && this.#child.connected;
        answerHostCall(m, job.hooks, current, (r) => this.#child.send(r), 'isolated process');
        return;
      }
      case 'result':
      case 'error': {
        const job = this.#job;
        if (!job || job.id !== m.id) return;
        this.#afterJob(m.retire);
        if (m.type === 'result') job.resolve(m.value);
        else job.reject(taskErrorFromWire(m.error));
      }
    }
  }

  /** The process is gone and its channel drained: settle whatever still waits on it. */
  #finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    if (!this.#isReady) {
      const why = this.#initError
        ? describeWire(this.#initError)
        : this.#spawnError
          ? describeError(this.#spawnError)
          : `${this.#exitDescription()}${this.#stderrHint()}`;
      this.#readyReject(
        new CaxtonError('isolation_failure', `an isolated process could not load the task module: ${why}`),
      );
    }
    if (this.#fate === 'alive') this.#fate = 'crashed';
    this.#job?.reject(this.#crashError());
    this.#goneResolve();
  }

  #exitDescription(): string {
    const { signalCode, exitCode } = this.#child;
    return signalCode ? `exited with signal ${signalCode}` : `exited with code ${exitCode ?? 'unknown'}`;
  }

  #stderrHint(): string {
    const lines = this.#stderrTail.trim().split('\n').filter(Boolean);
    const last = lines.at(-1);
    return last ? ` (${last.slice(0, 300)})` : '';
  }

  #crashError(): CaxtonError {
    const { signalCode, exitCode } = this.#child;
    const details = { signal: signalCode ?? undefined, exitCode: exitCode ?? undefined, pid: this.#child.pid };
    if (OOM_PATTERN.test(this.#stderrTail)) {
      return new CaxtonError(
        'isolation_failure',
        `the isolated process ran out of memory (heap limit ${this.#limitMb} MB) during the request`,
        {
          ...details,
          reason: 'out_of_memory',
          limitMb: this.#limitMb,
        },
      );
    }
    if (this.#fatal) {
      return new CaxtonError(
        'isolation_failure',
        `the isolated process crashed during the request: ${describeWire(this.#fatal)}`,
        {
          ...details,
          reason: 'crash',
        },
      );
    }
    return new CaxtonError('isolation_failure', `the isolated process ${this.#exitDescription()} during the request`, {
      ...details,
      reason: 'exit',
    });
  }
}
