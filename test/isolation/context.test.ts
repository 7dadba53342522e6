import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIsolation, type Isolation } from '../../src/execution/isolation/index.js';
import { commonSuite } from './suites.js';
import { expectCaxtonError, fixture, OK_TIMEOUT, TASKS } from './helpers.js';

commonSuite('context');

describe('context isolation', () => {
  let iso: Isolation;
  beforeAll(() => {
    iso = createIsolation('context', { taskModule: TASKS });
  });
  afterAll(() => iso.close());

  it('times out a slow job and aborts ctx.signal', async () => {
    await expectCaxtonError(iso.run({ op: 'wait-signal' }, { timeoutMs: 200 }), 'timeout', /timed out after 200 ms/);
    await expect(iso.run({ op: 'echo' }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ op: 'echo' });
  });

  it('runs in this process', async () => {
    await expect(iso.run({ op: 'pid' }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ pid: process.pid });
  });

  it('reports a task module that fails to load', async () => {
    const broken = createIsolation('context', { taskModule: fixture('broken-module.mjs') });
    await expectCaxtonError(broken.warm(), 'isolation_failure', /broken on purpose/);
    await expectCaxtonError(broken.run({}, { timeoutMs: OK_TIMEOUT }), 'isolation_failure', /broken on purpose/);
  });

  it('accepts a file: URL and rejects a relative path', async () => {
    const byUrl = createIsolation('context', { taskModule: new URL(`file://${TASKS}`).href });
    await expect(byUrl.run({ op: 'echo' }, { timeoutMs: OK_TIMEOUT })).resolves.toEqual({ op: 'echo' });
    expect(() => createIsolation('context', { taskModule: './tasks.mjs' })).toThrow(/absolute path/);
  });
});
