import { CaxtonError, describeError } from '../../shared/errors.js';
import { hostCaller, startJobControl } from './job-control.js';
import type { PoolMember } from './pool-member.js';
import { closedError, type WarmPool } from './warm-pool.js';
import type { Isolation, IsolationStats, PooledIsolationMode, RunOptions } from './types.js';

/** `worker` and `process` modes: jobs run on members of a WarmPool. */
export class PooledIsolation<M extends PoolMember> implements Isolation {
  #completed = 0;
  #failed = 0;

  constructor(
    readonly mode: PooledIsolationMode,
    private readonly pool: WarmPool<M>,
    private readonly label: string,
  ) {}

  async run(payload: unknown, opts: RunOptions): Promise<unknown> {
    if (this.pool.closed) throw closedError();
    const control = startJobControl(opts, this.label);
    let member: M | undefined;
    try {
      member = await this.pool.acquire(control.signal);
      control.phase = 'running';
      const { onEvent } = opts;
      const forward = (event: unknown): void => {
        if (!onEvent || control.signal.aborted) return;
        try {
          onEvent(event);
        } catch (e) {
          control.fail(
            new CaxtonError('internal', `the onEvent callback threw: ${describeError(e)}`, undefined, { cause: e }),
          );
        }
      };
      const value = await member.execute(
        payload,
        { onEvent: forward, onCall: hostCaller(opts, control.signal), ...(opts.sticky && { sticky: opts.sticky }) },
        control.signal,
      );
      this.#completed++;
      return value;
    } catch (e) {
      this.#failed++;
      if (member && this.pool.closed && !control.signal.aborted) {
        throw new CaxtonError('not_ready', 'the isolation pool was closed while the job was running', undefined, {
          cause: e,
        });
      }
      throw e;
    } finally {
      control.done();
      if (member) this.pool.release(member);
    }
  }

  warm(): Promise<void> {
    return this.pool.warm();
  }

  stats(): IsolationStats {
    return {
      mode: this.mode,
      size: this.pool.size,
      ...this.pool.sizes(),
      ...this.pool.counts,
      completed: this.#completed,
      failed: this.#failed,
    };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
