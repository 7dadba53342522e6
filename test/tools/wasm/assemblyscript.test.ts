/**
 * Tools written in AssemblyScript with Extism's PDK: the example package (examples/tools/text)
 * and the template (templates/tool-assemblyscript), built by `npm run build:tools`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ToolRegistry } from '../../../src/tools/index.js';
import { WasmToolServer } from '../../../src/tools/servers/index.js';
import { MemoryToolAuditSink } from '../../../src/audit/index.js';
import { ctx, ensureToolsBuilt, EXAMPLE_DIR, TEMPLATE_DIR } from './helpers.js';

beforeAll(ensureToolsBuilt);

describe('example tool server "text"', () => {
  it('loads from its directory and registers server.tool names', async () => {
    const s = WasmToolServer.load(EXAMPLE_DIR);
    const registry = new ToolRegistry();
    s.register(registry);
    expect(registry.list().map((t) => t.name)).toEqual(['text.echo', 'text.read_file', 'text.stats']);
    expect(registry.specsFor(['text.*']).find((t) => t.name === 'text.stats')!.input_schema).toMatchObject({
      required: ['text'],
    });
    expect(await registry.invoke(['text.*'], 'text.echo', { a: [1, 'ü'] }, ctx())).toEqual({
      content: '{"a":[1,"ü"]}',
    });
    expect(await registry.invoke(['text.stats'], 'text.stats', { text: 'one two\nthree' }, ctx())).toEqual({
      content: '{"chars":13,"words":3,"lines":2}',
    });
    expect((await registry.invoke(['text.echo'], 'text.stats', { text: '' }, ctx())).content).toMatch(/not allowed/);
    expect((await registry.invoke(['text.*'], 'text.stats', { text: 3 }, ctx())).content).toMatch(
      /\(invalid_input\): .*\/text must be string/,
    );
    s.unregister(registry);
    expect(registry.list()).toEqual([]);
  });

  it('an AssemblyScript abort (malformed JSON) fails the call cleanly and the next call works', () => {
    const s = WasmToolServer.load(EXAMPLE_DIR);
    const r = s.callRaw('stats', new TextEncoder().encode('{"text": '));
    expect(r.outcome).toBe('trap');
    expect(r.error).toMatch(/^abort: JSON: unexpected end at .*caxton\.ts:\d+:\d+$/);
    expect(new TextDecoder().decode(s.callRaw('stats', new TextEncoder().encode('{"text":"a b"}')).output)).toBe(
      '{"chars":3,"words":2,"lines":1}',
    );
  });

  it('runs many calls on one instance without growing', () => {
    const s = WasmToolServer.load(EXAMPLE_DIR);
    const input = new TextEncoder().encode(JSON.stringify({ text: 'x '.repeat(500) }));
    for (let i = 0; i < 5000; i++) expect(s.callRaw('stats', input).outcome).toBe('ok');
    expect(s.stats().instantiations).toBe(1);
    expect(s.sandbox.memoryBytes).toBeLessThanOrEqual(4 * 1024 * 1024);
  });
});

describe('template "hello"', () => {
  it('greets, with the configured greeting, and validates its output schema', async () => {
    const audit = new MemoryToolAuditSink();
    const s = WasmToolServer.load(TEMPLATE_DIR, { grants: { config: { greeting: 'Ahoy' } }, audit });
    expect(s.tools.map((t) => t.name)).toEqual(['hello.greet']);
    expect(await s.tools[0]!.invoke({ name: 'Ada' }, ctx())).toEqual({ content: '{"greeting":"Ahoy, Ada!"}' });
    expect(await s.tools[0]!.invoke({ name: '' }, ctx())).toEqual({
      content: 'tool "hello.greet" failed (error): argument "name" must be a non-empty string',
      is_error: true,
    });
    const plain = WasmToolServer.load(TEMPLATE_DIR);
    expect(await plain.tools[0]!.invoke({ name: 'Bo "B"' }, ctx())).toEqual({
      content: '{"greeting":"Hello, Bo \\"B\\"!"}',
    });
    expect(audit.records.map((r) => r.outcome)).toEqual(['ok', 'error']);
  });

  it('operator limits lower the manifest limits', () => {
    const s = WasmToolServer.load(TEMPLATE_DIR, { grants: { limits: { fuel: 100, memory: 1024 * 1024 } } });
    expect(s.limits).toMatchObject({ fuel: 100, memory: 1024 * 1024, timeout_ms: 2000 });
    const r = s.callRaw('greet', new TextEncoder().encode('{"name":"x"}'));
    expect(r.outcome).toBe('fuel_exhausted');
  });
});
