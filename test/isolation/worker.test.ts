import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIsolation, type Isolation } from '../../src/execution/isolation/index.js';
import { commonSuite, pooledSuite } from './suites.js';
import { ensureBuilt, OK_TIMEOUT, TASKS } from './helpers.js';

commonSuite('worker', { output: 'ignore' });
pooledSuite('worker');

describe('worker isolation', () => {
  let iso: Isolation;
  beforeAll(async () => {
    await ensureBuilt();
    iso = createIsolation('worker', { taskModule: TASKS, poolSize: 2 });
    await iso.warm();
  }, 120_000);
  afterAll(() => iso.close());

  it('reuses its warm workers across jobs', async () => {
    for (let i = 0; i < 10; i++) await iso.run({ op: 'echo', i }, { timeoutMs: OK_TIMEOUT });
    expect(iso.stats()).toMatchObject({ size: 2, ready: 2, busy: 0, started: 2, crashed: 0, completed: 10 });
  });

  it('runs in this process, off the main thread', async () => {
    await expect(iso.run({ op: 'pid' }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ pid: process.pid });
  });
});
