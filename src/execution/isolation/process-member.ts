import { fork, type ChildProcess } from 'node:child_process';
import { CaxtonError, describeError } from '../../shared/errors.js';
import { track } from './child-registry.js';
import { entryScript } from './entry-script.js';
import { MemberJobs } from './member-jobs.js';
import type { JobHooks, MemberFate, PoolMember } from './pool-member.js';
import { Outbox, unpack } from './outbox.js';
import { isChildMessage, type ParentMessage, type WireError } from './protocol.js';
import { describeWire } from './task-error.js';

export interface ProcessMemberOptions {
  moduleUrl: string;
  maxOldGenerationSizeMb: number;
  execArgv: string[];
  env: Record<string, string> | undefined;
  output: 'inherit' | 'ignore';
  /** How long a cancelled job may run on before the process is killed. */
  cancelGraceMs: number;
}

/** How long a retiring child may take to exit by itself before it is SIGKILLed. */
const LINGER_MS = 1_000;
/** How long to wait, after 'exit', for IPC messages still in flight. */
const DRAIN_MS = 250;
const STDERR_TAIL = 8_192;
const OOM_PATTERN = /heap out of memory|Reached heap limit|Allocation failed/i;

function ignore(): void {}

/**
 * One pre-started child process running process-runner.js; runs many jobs at once until the
 * pool drains it (it ran its share of jobs), the child asks to retire (its jobs left
 * process-wide state behind, or its heap is over the share), it dies, or it is killed (a
 * cancelled job ignored its cancellation). A draining process finishes its jobs, then exits and
 * is `spent`; the pool starts a replacement as soon as it stops taking jobs.
 */
export class ProcessMember implements PoolMember {
  readonly ready: Promise<void>;
  readonly gone: Promise<void>;
  #fate: MemberFate = 'alive';
  readonly #child: ChildProcess;
  readonly #limitMb: number;
  readonly #jobs: MemberJobs;
  #retired: string | undefined;
  #killedFor: string | undefined;
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
    // A send on a channel already closed is answered by the callback (dropped: the exit settles the jobs).
    const outbox = new Outbox<ParentMessage>((batch) => this.#child.send(batch, undefined, undefined, ignore));
    this.#jobs = new MemberJobs({
      send: (m) => outbox.send(m),
      usable: () => this.#usable() && this.#child.connected,
      cancelGraceMs: o.cancelGraceMs,
      onStuck: () => {
        this.#killedFor ??= `a cancelled job on it did not stop within ${o.cancelGraceMs} ms`;
        this.kill();
      },
      onEnded: () => this.#afterJob(),
      where: 'isolated process',
    });
    const inherit = o.output === 'inherit';
    this.#child.stderr?.on('data', (chunk: Buffer) => {
      if (inherit) process.stderr.write(chunk);
      this.#stderrTail = (this.#stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    this.#child.on('message', (batch: unknown) => {
      for (const m of unpack(batch)) this.#onMessage(m);
    });
    this.#child.on('error', (e) => {
      this.#spawnError ??= e;
      if (this.#child.pid === undefined) this.#finalize(); // spawn failed: no 'exit' will follow
    });
    this.#child.once('exit', () => {
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

  get cancelling(): number {
    return this.#jobs.cancelling;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Why the process retired (its jobs touched process-wide state, or its heap), if it did. */
  get retired(): string | undefined {
    return this.#retired;
  }

  execute(payload: unknown, hooks: JobHooks, signal: AbortSignal): Promise<unknown> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    // A draining process still takes a job the pool handed out before it stopped taking them.
    if (!this.#usable() || this.#finalized) return Promise.reject(this.#crashError());
    return this.#jobs.start(payload, hooks, signal);
  }

  drain(): void {
    if (this.#fate !== 'alive') return;
    this.#fate = 'draining';
    this.#afterJob();
  }

  #usable(): boolean {
    return this.#fate === 'alive' || this.#fate === 'draining';
  }

  /** After a job ended: a draining process with nothing left to run goes. */
  #afterJob(): void {
    if (this.#fate !== 'draining' || this.#jobs.size > 0) return;
    if (this.#retired !== undefined) {
      // The child exits by itself once its last reply is sent; make sure it does.
      setTimeout(() => this.kill(), LINGER_MS).unref();
      return;
    }
    this.#fate = 'spent';
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }

  kill(): void {
    if (this.#usable()) this.#fate = this.#fate === 'draining' && this.#jobs.size === 0 ? 'spent' : 'killed';
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
      default:
        if (m.type !== 'event' && m.type !== 'call' && m.retire !== undefined && this.#retired === undefined) {
          this.#retired = m.retire;
          if (this.#fate === 'alive') this.#fate = 'draining';
        }
        this.#jobs.receive(m);
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
    if (this.#fate === 'draining' && this.#jobs.size === 0) this.#fate = 'spent';
    else if (this.#usable()) this.#fate = 'crashed';
    this.#jobs.failAll(this.#crashError());
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
    if (this.#killedFor !== undefined) {
      return new CaxtonError(
        'isolation_failure',
        `the isolated process was killed during the request: ${this.#killedFor}`,
        {
          ...details,
          reason: 'killed',
        },
      );
    }
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
