import { describe, expect, it } from 'vitest';
import type { AgentDefinition } from '../../src/agents/index.js';
import { AgentNamePool } from '../../src/agents/name-pool.js';

/** Strings built at run time, so equal names are distinct copies until the pool shares them. */
const fresh = (s: string) => [...s].join('');
const def = (caps: string[], tools: string[]) =>
  ({ capabilities: caps.map(fresh), tools: tools.map(fresh) }) as unknown as AgentDefinition;

describe('AgentNamePool', () => {
  it('gives agents naming the same capabilities and tools one shared list of tools, frozen', () => {
    const pool = new AgentNamePool();
    const a = def(['search', 'summarize'], ['calculator', 'current_time']);
    const b = def(['search'], ['calculator', 'current_time']);
    pool.share(a);
    pool.share(b);
    expect(b.tools).toBe(a.tools);
    expect(Object.isFrozen(a.tools)).toBe(true);
    expect(b.capabilities).toEqual(['search']);
    expect(pool.size).toBe(4);
  });

  it('drops a name once no agent holds it, so names that come and go do not pile up', () => {
    const pool = new AgentNamePool();
    const a = def(['one'], ['calculator']);
    const b = def(['one', 'two'], []);
    pool.share(a);
    pool.share(b);
    expect(pool.size).toBe(3);
    pool.release(a);
    expect(pool.size).toBe(2);
    pool.release(b);
    expect(pool.size).toBe(0);
  });

  it('an agent shared twice (re-deployed as it was) is counted twice and released twice', () => {
    const pool = new AgentNamePool();
    const a = def(['x'], ['calculator']);
    pool.share(a);
    pool.share(a);
    pool.release(a);
    expect(pool.size).toBe(2);
    pool.release(a);
    expect(pool.size).toBe(0);
  });
});
