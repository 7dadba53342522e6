/**
 * ComponentStack (src/server/components/component.ts, ADR 0034): contributions are applied as
 * components are added, and close() closes them in reverse, each once, past one that fails.
 */
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/index.js';
import { ComponentStack, type Component } from '../../src/server/components/index.js';
import { ToolRegistry, type Tool } from '../../src/tools/index.js';

function tool(name: string): Tool {
  return { name, description: name, input_schema: { type: 'object' }, invoke: async () => ({ content: name }) };
}

function stackWithLog() {
  const failures: string[] = [];
  const metrics = new Metrics();
  const stack = new ComponentStack({
    metrics,
    onCloseError: (name, err) => failures.push(`${name}: ${(err as Error).message}`),
  });
  return { stack, failures, metrics };
}

describe('ComponentStack', () => {
  it('closes in reverse order of adding, each component once, even when close() is called again', async () => {
    const { stack } = stackWithLog();
    const closed: string[] = [];
    for (const name of ['storage', 'agents', 'execution', 'http'])
      stack.add({ name, close: () => void closed.push(name) });
    stack.add({ name: 'no close' });
    const first = stack.close();
    expect(stack.close()).toBe(first);
    await first;
    await stack.close();
    expect(closed).toEqual(['http', 'execution', 'agents', 'storage']);
  });

  it('waits for each asynchronous close before the next', async () => {
    const { stack } = stackWithLog();
    const events: string[] = [];
    stack.add({ name: 'db', close: () => void events.push('db closed') });
    stack.add({
      name: 'bus',
      close: async () => {
        events.push('bus closing');
        await new Promise((r) => setImmediate(r));
        events.push('bus closed');
      },
    });
    await stack.close();
    expect(events).toEqual(['bus closing', 'bus closed', 'db closed']);
  });

  it('a close that throws (or rejects) is reported and the components below still close', async () => {
    const { stack, failures } = stackWithLog();
    const closed: string[] = [];
    stack.add({ name: 'storage', close: () => void closed.push('storage') });
    stack.add({
      name: 'memory',
      close: () => {
        throw new Error('index file locked');
      },
    });
    stack.add({ name: 'mcp', close: () => Promise.reject(new Error('server gone')) });
    stack.add({ name: 'http', close: () => void closed.push('http') });
    await stack.close();
    expect(closed).toEqual(['http', 'storage']);
    expect(failures).toEqual(['mcp: server gone', 'memory: index file locked']);
  });

  it('routes are collected in the order components were added', () => {
    const { stack } = stackWithLog();
    const plugin = async () => {};
    const a = { plugin };
    const b = { plugin, root: true };
    const c = { plugin };
    stack.add({ name: 'agents', routes: [a, b] });
    stack.add({ name: 'storage' });
    stack.add({ name: 'tools', routes: [c] });
    expect(stack.routes).toEqual([a, b, c]);
    expect(stack.routes[0]).toBe(a);
    expect(stack.routes[2]).toBe(c);
  });

  it('host tools contributed before the registry exists are registered once it does, later ones at once', () => {
    const { stack } = stackWithLog();
    stack.add({ name: 'memory', hostTools: [tool('create_entities'), tool('read_graph')] });
    const registry = new ToolRegistry();
    stack.useHostTools(registry);
    expect(registry.list().map((t) => t.name)).toEqual(['create_entities', 'read_graph']);
    stack.add({ name: 'messaging', hostTools: [tool('send_message')] });
    expect(registry.list().map((t) => t.name)).toEqual(['create_entities', 'read_graph', 'send_message']);
    // A name taken twice is refused as the registry refuses it.
    expect(() => stack.add({ name: 'again', hostTools: [tool('send_message')] })).toThrow(/send_message/);
  });

  it('metric sources are set on the metrics the server scrapes', async () => {
    const { stack, metrics } = stackWithLog();
    const c: Component = { name: 'memory', metrics: { memoryEntities: () => 42 } };
    stack.add(c);
    expect(await metrics.sources.memoryEntities?.()).toBe(42);
    expect(await metrics.registry.metrics()).toMatch(/^caxton_memory_entities(\{[^}]*\})? 42$/m);
  });
});
