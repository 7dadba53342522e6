/**
 * Every built-in package: its manifest parses, its module is built and exports each tool, its
 * schemas are strict objects, and it imports only the host functions it needs (least authority).
 */
import { describe, expect, it } from 'vitest';
import { WasmSandbox } from '../../../src/tools/servers/index.js';
import { builtinPackages, loadBuiltin } from './helpers.js';

const EXPECTED: Record<string, { tools: string[]; needs: string[] }> = {
  chart_generator: { tools: ['render'], needs: [] },
  csv_parser: { tools: ['parse'], needs: [] },
  filesystem: {
    tools: ['read', 'write', 'list'],
    needs: ['caxton_file_read', 'caxton_file_write', 'caxton_file_list'],
  },
  http_client: { tools: ['request', 'get'], needs: ['http_request'] },
  json_query: { tools: ['query'], needs: [] },
  sqlite_query: { tools: ['query', 'tables'], needs: ['caxton_sqlite_query'] },
};
const AUTHORITY = ['http_request', 'caxton_file_read', 'caxton_file_write', 'caxton_file_list', 'caxton_sqlite_query'];

describe('built-in packages', () => {
  it('are the six built-in tool servers', () => {
    expect(builtinPackages()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const [name, want] of Object.entries(EXPECTED)) {
    it(`${name}: loads, declares ${want.tools.join(', ')} with strict schemas, imports only what it needs`, () => {
      const { server } = loadBuiltin(name);
      const m = server.manifest;
      expect(m.name).toBe(name);
      expect(m.module).toBe(`build/${name}.wasm`);
      expect(m.tools.map((t) => t.name)).toEqual(want.tools);
      for (const t of m.tools) {
        expect(t.export).toBe(t.name);
        expect(t.description.length).toBeGreaterThan(20);
        expect(t.input_schema).toMatchObject({ type: 'object', additionalProperties: false });
        const props = t.input_schema.properties as Record<string, { description?: string }>;
        for (const req of (t.input_schema.required as string[] | undefined) ?? [])
          expect(props[req], `${name}.${t.name} requires "${req}"`).toBeDefined();
        if (t.output_schema) expect(t.output_schema).toMatchObject({ type: 'object', additionalProperties: false });
      }
      expect(m.limits.timeout_ms).toBeLessThanOrEqual(10_000);
      expect(server.sandbox).toBeInstanceOf(WasmSandbox);
      const imported = (server.sandbox as WasmSandbox).prepared.imports
        .map((i) => i.name)
        .filter((n) => AUTHORITY.includes(n))
        .sort();
      expect(imported).toEqual([...want.needs].sort());
    });
  }
});
