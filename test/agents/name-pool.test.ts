import { describe, expect, it } from 'vitest';
import type { AgentDefinition } from '../../src/agents/index.js';
import { AgentNamePool } from '../../src/agents/name-pool.js';

/** Strings built at run time, so equal names are distinct copies until the pool shares them. */
const fresh = (s: string) => [...s].join('');
const def = (caps: string[], tools: string[]) =>
  ({ version: fresh('1.0.0'), capabilities: caps.map(fresh), tools: tools.map(fresh) }) as unknown as AgentDefinition;

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
    expect(pool.size).toBe(5); // four names and the version
  });

  it('drops a name once no agent holds it, so names that come and go do not pile up', () => {
    const pool = new AgentNamePool();
    const a = def(['one'], ['calculator']);
    const b = def(['one', 'two'], []);
    pool.share(a);
    pool.share(b);
    expect(pool.size).toBe(4);
    pool.release(a);
    expect(pool.size).toBe(3);
    pool.release(b);
    expect(pool.size).toBe(0);
  });

  it('an agent shared twice (re-deployed as it was) is counted twice and released twice', () => {
    const pool = new AgentNamePool();
    const a = def(['x'], ['calculator']);
    pool.share(a);
    pool.share(a);
    pool.release(a);
    expect(pool.size).toBe(3);
    pool.release(a);
    expect(pool.size).toBe(0);
  });

  it('gives agents with equal settings tables one frozen copy, counted, and tells apart different ones', () => {
    const pool = new AgentNamePool();
    const withTables = (model: string) =>
      ({
        ...def(['x'], []),
        version: fresh('1.0.0'),
        llm: { model: fresh(model), temperature: 0.2 },
        memory: { enabled: true, scope: fresh('agent') },
      }) as unknown as AgentDefinition;
    const a = withTables('gpt-4o-mini');
    const b = withTables('gpt-4o-mini');
    const c = withTables('claude-haiku-4-5');
    for (const d of [a, b, c]) pool.share(d);
    expect(b.llm).toBe(a.llm);
    expect(b.memory).toBe(a.memory);
    expect(b.version).toBe(a.version);
    expect(c.llm).not.toBe(a.llm);
    expect(c.memory).toBe(a.memory);
    expect(Object.isFrozen(a.llm)).toBe(true);
    expect(pool.tables).toBe(3);
    pool.release(a);
    pool.release(c);
    expect(pool.tables).toBe(2);
    pool.release(b);
    expect(pool.tables).toBe(0);
    expect(pool.size).toBe(0);
  });
});
