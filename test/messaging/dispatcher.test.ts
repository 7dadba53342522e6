/**
 * Dispatcher unit tests: the real Dispatcher with a recording `deliver` whose deliveries the test
 * finishes by hand, so lanes, limits and load are observed at each step (no timers to wait on).
 */
import { describe, expect, it } from 'vitest';
import { Dispatcher, type Delivery } from '../../src/messaging/dispatcher.js';
import { aclMessage } from './helpers.js';

const MESSAGE = aclMessage();

function delivery(receiver: string, id: number): Delivery {
  return { id, message: MESSAGE, receiver, attempts: 0 };
}

/** A dispatcher whose deliveries stay running until the test finishes them. */
function harness(limits: Record<string, number> = {}, fallback = 1) {
  const started: { d: Delivery; signal: AbortSignal; finish: () => void; fail: () => void }[] = [];
  const asked: string[] = [];
  const dispatcher = new Dispatcher({
    concurrency: (agent) => {
      asked.push(agent);
      return limits[agent] ?? fallback;
    },
    deliver: (d, signal) =>
      new Promise<void>((resolve, reject) => {
        started.push({ d, signal, finish: resolve, fail: () => reject(new Error('boom')) });
      }),
  });
  const ids = (agent?: string) =>
    started.filter((s) => agent === undefined || s.d.receiver === agent).map((s) => s.d.id);
  const finish = async (id: number) => {
    const s = started.find((x) => x.d.id === id);
    if (!s) throw new Error(`delivery ${id} has not started`);
    s.finish();
    await flush();
  };
  return { dispatcher, started, ids, finish, asked };
}

/** Lets settled promise callbacks run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

describe('Dispatcher: lanes', () => {
  it('one agent with concurrency 1 handles its deliveries one at a time, in FIFO order', async () => {
    const h = harness({ a: 1 });
    for (let i = 1; i <= 4; i++) h.dispatcher.enqueue(delivery('a', i));
    expect(h.ids()).toEqual([1]);
    expect(h.dispatcher.size).toBe(4);
    expect(h.dispatcher.running).toBe(1);
    await h.finish(1);
    expect(h.ids()).toEqual([1, 2]);
    await h.finish(2);
    await h.finish(3);
    expect(h.ids()).toEqual([1, 2, 3, 4]);
    await h.finish(4);
    expect(h.dispatcher.size).toBe(0);
    expect(h.dispatcher.running).toBe(0);
  });

  it('never runs more than max_concurrency for an agent, and starts the next as soon as a slot frees', async () => {
    let now = 0;
    let peak = 0;
    const order: number[] = [];
    const pending: (() => void)[] = [];
    const dispatcher = new Dispatcher({
      concurrency: () => 3,
      deliver: (d) => {
        now++;
        peak = Math.max(peak, now);
        order.push(d.id);
        return new Promise<void>((r) =>
          pending.push(() => {
            now--;
            r();
          }),
        );
      },
    });
    for (let i = 1; i <= 10; i++) dispatcher.enqueue(delivery('worker', i));
    expect(now).toBe(3);
    expect(dispatcher.running).toBe(3);
    expect(dispatcher.size).toBe(10);
    while (pending.length > 0) {
      pending.shift()!();
      await flush();
      expect(now).toBeLessThanOrEqual(3);
    }
    expect(peak).toBe(3);
    expect(order).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(dispatcher.size).toBe(0);
  });

  it('concurrency 2 runs exactly two at once (not one, not three)', () => {
    const h = harness({ a: 2 });
    for (let i = 1; i <= 5; i++) h.dispatcher.enqueue(delivery('a', i));
    expect(h.ids()).toEqual([1, 2]);
    expect(h.dispatcher.lanes()).toEqual([{ agent: 'a', waiting: 3, running: 2 }]);
  });

  it('lanes of different agents run independently: a blocked agent does not hold another back', async () => {
    const h = harness({ slow: 1, fast: 1 });
    h.dispatcher.enqueue(delivery('slow', 1));
    h.dispatcher.enqueue(delivery('slow', 2));
    h.dispatcher.enqueue(delivery('fast', 3));
    h.dispatcher.enqueue(delivery('fast', 4));
    expect(h.ids()).toEqual([1, 3]);
    await h.finish(3);
    expect(h.ids('fast')).toEqual([3, 4]);
    expect(h.ids('slow')).toEqual([1]);
    expect(h.dispatcher.running).toBe(2);
  });

  it('each agent gets its own limit, asked by lower-case key', () => {
    const h = harness({ a: 1, b: 3 });
    for (let i = 1; i <= 4; i++) h.dispatcher.enqueue(delivery('A', i));
    for (let i = 5; i <= 8; i++) h.dispatcher.enqueue(delivery('b', i));
    expect(h.ids()).toEqual([1, 5, 6, 7]);
    expect(h.asked).toContain('a');
    expect(h.asked).not.toContain('A');
  });

  it('agent names share a lane regardless of case', () => {
    const h = harness({ bob: 1 });
    h.dispatcher.enqueue(delivery('Bob', 1));
    h.dispatcher.enqueue(delivery('BOB', 2));
    h.dispatcher.enqueue(delivery('bob', 3));
    expect(h.ids()).toEqual([1]);
    expect(h.dispatcher.lanes()).toEqual([{ agent: 'bob', waiting: 2, running: 1 }]);
  });

  it('a delivery that rejects or throws frees its slot like one that succeeds', async () => {
    const h = harness({ a: 1 });
    h.dispatcher.enqueue(delivery('a', 1));
    h.dispatcher.enqueue(delivery('a', 2));
    h.started[0]!.fail();
    await flush();
    expect(h.ids()).toEqual([1, 2]);
    expect(h.dispatcher.size).toBe(1);

    let calls = 0;
    const throwing = new Dispatcher({
      concurrency: () => 1,
      deliver: () => {
        calls++;
        throw new Error('sync');
      },
    });
    throwing.enqueue(delivery('a', 1));
    throwing.enqueue(delivery('a', 2));
    expect(calls).toBe(2);
    expect(throwing.size).toBe(0);
    expect(throwing.running).toBe(0);
    expect(throwing.lanes()).toEqual([]);
  });

  it('a synchronous deliver (returning nothing) finishes at once and the lane goes away', () => {
    const seen: number[] = [];
    const d = new Dispatcher({ concurrency: () => 1, deliver: (x) => void seen.push(x.id) });
    for (let i = 1; i <= 3; i++) d.enqueue(delivery('a', i));
    expect(seen).toEqual([1, 2, 3]);
    expect(d.size).toBe(0);
    expect(d.running).toBe(0);
    expect(d.load('a')).toBe(0);
    expect(d.lanes()).toEqual([]);
  });
});

describe('Dispatcher: load and counts', () => {
  it('load(agent) is waiting plus running, per agent, case-insensitive; 0 for an unknown agent', async () => {
    const h = harness({ a: 2, b: 1 });
    for (let i = 1; i <= 5; i++) h.dispatcher.enqueue(delivery('a', i));
    h.dispatcher.enqueue(delivery('b', 6));
    expect(h.dispatcher.load('a')).toBe(5);
    expect(h.dispatcher.load('A')).toBe(5);
    expect(h.dispatcher.load('b')).toBe(1);
    expect(h.dispatcher.load('nobody')).toBe(0);
    await h.finish(1);
    expect(h.dispatcher.load('a')).toBe(4);
    expect(h.dispatcher.lanes()).toEqual([
      { agent: 'a', waiting: 2, running: 2 },
      { agent: 'b', waiting: 0, running: 1 },
    ]);
    expect(h.dispatcher.size).toBe(5);
    expect(h.dispatcher.running).toBe(3);
  });

  it('a lane whose queue empties while deliveries still run is kept, so its limit still holds', async () => {
    const h = harness({ a: 2 });
    h.dispatcher.enqueue(delivery('a', 1));
    h.dispatcher.enqueue(delivery('a', 2));
    await h.finish(1);
    expect(h.dispatcher.lanes()).toEqual([{ agent: 'a', waiting: 0, running: 1 }]);
    expect(h.dispatcher.load('a')).toBe(1);
    h.dispatcher.enqueue(delivery('a', 3));
    h.dispatcher.enqueue(delivery('a', 4));
    expect(h.ids()).toEqual([1, 2, 3]);
    expect(h.dispatcher.lanes()).toEqual([{ agent: 'a', waiting: 1, running: 2 }]);
  });

  it('a lane is removed once it is empty and idle', async () => {
    const h = harness();
    h.dispatcher.enqueue(delivery('a', 1));
    expect(h.dispatcher.lanes()).toEqual([{ agent: 'a', waiting: 0, running: 1 }]);
    await h.finish(1);
    expect(h.dispatcher.lanes()).toEqual([]);
  });

  it('drain takes the waiting deliveries (not the running one) out, in order, and lowers size', async () => {
    const h = harness({ a: 1 });
    for (let i = 1; i <= 4; i++) h.dispatcher.enqueue(delivery('a', i));
    const out = h.dispatcher.drain('A');
    expect(out.map((d) => d.id)).toEqual([2, 3, 4]);
    expect(h.dispatcher.size).toBe(1);
    expect(h.dispatcher.load('a')).toBe(1);
    expect(h.dispatcher.drain('nobody')).toEqual([]);
    await h.finish(1);
    expect(h.ids()).toEqual([1]);
    expect(h.dispatcher.size).toBe(0);
    expect(h.dispatcher.lanes()).toEqual([]);
  });

  it('later() counts as delayed (not in size) until its timer enqueues it', async () => {
    const h = harness();
    h.dispatcher.later(delivery('a', 1), 5);
    expect(h.dispatcher.delayed).toBe(1);
    expect(h.dispatcher.size).toBe(0);
    expect(h.ids()).toEqual([]);
    await new Promise((r) => setTimeout(r, 30));
    expect(h.dispatcher.delayed).toBe(0);
    expect(h.ids()).toEqual([1]);
    expect(h.dispatcher.size).toBe(1);
  });

  it('whenIdle resolves at once when nothing runs, else when the last running delivery ends', async () => {
    const h = harness({ a: 1 });
    await h.dispatcher.whenIdle();
    h.dispatcher.enqueue(delivery('a', 1));
    h.dispatcher.enqueue(delivery('b', 2));
    let idle = false;
    void h.dispatcher.whenIdle().then(() => (idle = true));
    await h.finish(1);
    expect(idle).toBe(false);
    await h.finish(2);
    expect(idle).toBe(true);
  });
});

describe('Dispatcher: stop', () => {
  it('aborts the signal of running deliveries and ignores later enqueues and retries', async () => {
    const h = harness({ a: 1 });
    h.dispatcher.enqueue(delivery('a', 1));
    h.dispatcher.enqueue(delivery('a', 2));
    h.dispatcher.later(delivery('a', 3), 10);
    const signal = h.started[0]!.signal;
    expect(signal.aborted).toBe(false);
    h.started[0]!.signal.addEventListener('abort', () => h.started[0]!.finish());
    await h.dispatcher.stop();
    expect(signal.aborted).toBe(true);
    expect((signal.reason as Error).message).toBe('the message bus is stopping');
    expect(h.dispatcher.delayed).toBe(0);
    // The waiting delivery was not started after the running one finished.
    expect(h.ids()).toEqual([1]);
    // Delivery 2 is still counted as waiting (it stays pending in SQLite); nothing is added.
    expect(h.dispatcher.size).toBe(1);
    h.dispatcher.enqueue(delivery('a', 4));
    expect(h.dispatcher.size).toBe(1);
    expect(h.dispatcher.load('a')).toBe(1);
    h.dispatcher.later(delivery('a', 5), 1);
    expect(h.dispatcher.delayed).toBe(0);
    await new Promise((r) => setTimeout(r, 15));
    expect(h.ids()).toEqual([1]);
  });

  it('without a grace period, the signal aborts at once, before stop() settles', async () => {
    const h = harness({ a: 1 });
    h.dispatcher.enqueue(delivery('a', 1));
    const signal = h.started[0]!.signal;
    signal.addEventListener('abort', () => h.started[0]!.finish());
    const stopping = h.dispatcher.stop();
    expect(signal.aborted).toBe(true);
    await stopping;
    expect(h.dispatcher.running).toBe(0);
  });

  it('with a grace period but nothing running, the signal aborts at once (no wait for the grace)', async () => {
    const signals: AbortSignal[] = [];
    const d = new Dispatcher({ concurrency: () => 1, deliver: (_, signal) => void signals.push(signal) });
    d.enqueue(delivery('a', 1));
    expect(d.running).toBe(0);
    const stopping = d.stop(60_000);
    expect(signals[0]!.aborted).toBe(true);
    await stopping;
  });

  it('when the grace period ends first, running deliveries are aborted and stop() settles once they end', async () => {
    const h = harness({ a: 2 });
    h.dispatcher.enqueue(delivery('a', 1));
    h.dispatcher.enqueue(delivery('a', 2));
    for (const s of h.started) s.signal.addEventListener('abort', () => s.finish());
    await h.dispatcher.stop(5);
    expect(h.started.every((s) => s.signal.aborted)).toBe(true);
    expect(h.dispatcher.running).toBe(0);
    expect(h.dispatcher.size).toBe(0);
  });

  it('with a grace period, running deliveries may finish before the signal aborts', async () => {
    const h = harness({ a: 1 });
    h.dispatcher.enqueue(delivery('a', 1));
    const signal = h.started[0]!.signal;
    let abortedWhenFinished: boolean | undefined;
    setTimeout(() => {
      abortedWhenFinished = signal.aborted;
      h.started[0]!.finish();
    }, 5);
    await h.dispatcher.stop(1000);
    expect(abortedWhenFinished).toBe(false);
    expect(signal.aborted).toBe(true);
    expect(h.dispatcher.running).toBe(0);
  });
});
