/**
 * Hostile modules: each fails cleanly with a clear outcome, the process stays up, another tool
 * server keeps answering, and the hostile server itself answers again (re-instantiated).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ToolRegistry } from '../../../src/tools/index.js';
import { WasmToolServer } from '../../../src/tools/servers/index.js';
import { MemoryToolAuditSink } from '../../../src/audit/index.js';
import { ctx, EXTISM_IMPORTS, manifest, OK_WAT, outputText, server, wat } from './helpers.js';

const HOSTILE_WAT = `(module ${EXTISM_IMPORTS}
  (memory (export "memory") 1)
  (func (export "ok") (result i32) (local $p i64)
    ${outputText('ok')}
    (i32.const 0))
  ;; an infinite loop
  (func (export "spin") (result i32)
    (loop $l (br $l))
    (i32.const 0))
  ;; grows linear memory until refused, then writes past the end
  (func (export "bomb") (result i32)
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (i32.store (i32.mul (memory.size) (i32.const 65536)) (i32.const 1))
    (i32.const 0))
  ;; asks the host for a terabyte of kernel memory
  (func (export "host_bomb") (result i32)
    (drop (call $alloc (i64.const 1099511627776)))
    (i32.const 0))
  ;; unbounded recursion
  (func $recurse (export "recurse") (result i32)
    (i32.add (call $recurse) (i32.const 1)))
  ;; 2 MiB of output, above max_output
  (func (export "big_output") (result i32) (local $p i64)
    (local.set $p (call $alloc (i64.const 2097152)))
    (call $output_set (local.get $p) (i64.const 2097152))
    (i32.const 0))
  (func (export "crash") (result i32)
    unreachable))`;

const TOOLS = ['ok', 'spin', 'bomb', 'host_bomb', 'recurse', 'big_output', 'crash'];
const LIMITS = `[limits]\nmemory = "4MiB"\nfuel = 20_000_000\ntimeout = "10s"\nmax_output = "1MiB"\n`;

describe('hostile modules', () => {
  let hostile: WasmToolServer;
  let bystander: WasmToolServer;
  const audit = new MemoryToolAuditSink();
  const registry = new ToolRegistry();

  beforeAll(async () => {
    hostile = await server('hostile', TOOLS, HOSTILE_WAT, LIMITS, { audit });
    bystander = await server('bystander', ['ok'], OK_WAT, '', { audit });
    hostile.register(registry);
    bystander.register(registry);
  });

  async function call(tool: string) {
    return registry.invoke(['hostile.*', 'bystander.*'], `hostile.${tool}`, {}, ctx());
  }

  /** After a failure: the other server and the hostile one (fresh instance) both answer. */
  async function stillHealthy() {
    const before = hostile.stats().instantiations;
    expect(hostile.sandbox.instantiated).toBe(false);
    expect(await registry.invoke(['bystander.*'], 'bystander.ok', {}, ctx())).toEqual({ content: 'ok' });
    expect(await call('ok')).toEqual({ content: 'ok' });
    expect(hostile.stats().instantiations).toBe(before + 1);
  }

  const lastAudit = () => audit.records.filter((r) => r.server === 'hostile').at(-1)!;

  it('infinite loop: stopped by fuel', async () => {
    const t0 = Date.now();
    const r = await call('spin');
    expect(r.is_error).toBe(true);
    expect(r.content).toMatch(
      /hostile\.spin" failed \(fuel_exhausted\): the call ran out of fuel \(limit 20000000 units/,
    );
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(lastAudit()).toMatchObject({ tool: 'hostile.spin', outcome: 'fuel_exhausted', fuel_used: 20_000_000 });
    await stillHealthy();
  });

  it('memory bomb (linear memory): capped at the limit', async () => {
    const r = await call('bomb');
    expect(r.is_error).toBe(true);
    expect(r.content).toMatch(/\(out_of_memory\): the module ran out of memory \(limit 4194304 bytes\)/);
    expect(lastAudit()).toMatchObject({ outcome: 'out_of_memory', memory_bytes: 4 * 1024 * 1024 });
    await stillHealthy();
  });

  it('memory bomb (host-side allocation): refused', async () => {
    const r = await call('host_bomb');
    expect(r.is_error).toBe(true);
    expect(r.content).toMatch(
      /\(out_of_memory\): the module asked for 1099511627776 bytes of host memory, beyond the limit of 4194304 bytes/,
    );
    await stillHealthy();
  });

  it('deep recursion: stack overflow or fuel, never a crash', async () => {
    const r = await call('recurse');
    expect(r.is_error).toBe(true);
    expect(r.content).toMatch(/\((stack_overflow|fuel_exhausted)\)/);
    await stillHealthy();
  });

  it('oversized output: refused', async () => {
    const r = await call('big_output');
    expect(r.is_error).toBe(true);
    expect(r.content).toMatch(/\(output_too_large\): the output is 2097152 bytes, above the limit of 1048576/);
    await stillHealthy();
  });

  it('a trap: reported with the engine message', async () => {
    const r = await call('crash');
    expect(r.content).toMatch(/\(trap\): the module trapped: unreachable/);
    await stillHealthy();
  });

  it('oversized input: refused before the module runs', async () => {
    const small = await server('small-input', ['ok'], OK_WAT, '[limits]\nmax_input = 16\n');
    const r = await small.tools[0]!.invoke({ text: 'x'.repeat(100) }, ctx());
    expect(r.content).toMatch(/\(input_too_large\): the input is 111 bytes, above the limit of 16/);
    expect(small.sandbox.stats.instantiations).toBe(1);
  });

  it('every failure was audited, and the sandbox still serves calls', async () => {
    const outcomes = audit.records.filter((r) => r.server === 'hostile' && r.outcome !== 'ok').map((r) => r.outcome);
    expect(outcomes).toEqual([
      'fuel_exhausted',
      'out_of_memory',
      'out_of_memory',
      expect.stringMatching(/stack_overflow|fuel_exhausted/),
      'output_too_large',
      'trap',
    ]);
    // After every kind of failure above, both servers still answer.
    expect(await registry.invoke(['bystander.*'], 'bystander.ok', {}, ctx())).toEqual({ content: 'ok' });
    expect(await call('ok')).toEqual({ content: 'ok' });
  });
});

describe('invalid modules are refused at load with a clear error', () => {
  const m = manifest('bad', ['ok']);

  it('garbage bytes', () => {
    expect(
      () =>
        new WasmToolServer(m, new TextEncoder().encode('this is not wasm'), {}, 'bad/caxton-tool.toml', 'bad/bad.wasm'),
    ).toThrow(/bad\/bad\.wasm: not valid WebAssembly/);
  });

  it('a truncated module', async () => {
    const bytes = await wat(OK_WAT);
    expect(() => new WasmToolServer(m, bytes.subarray(0, bytes.length - 5), {}, 'x', 'bad.wasm')).toThrow(
      /bad\.wasm: not valid WebAssembly: .+/,
    );
  });

  it('a module with an import the sandbox does not provide (WASI)', async () => {
    const bytes =
      await wat(`(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1) (func (export "ok") (result i32) (i32.const 0)))`);
    expect(() => new WasmToolServer(m, bytes)).toThrow(
      /imports function "wasi_snapshot_preview1" "fd_write", which the sandbox does not provide/,
    );
  });

  it('a module that imports its memory', async () => {
    const bytes = await wat(
      `(module (import "env" "memory" (memory 1)) (func (export "ok") (result i32) (i32.const 0)))`,
    );
    expect(() => new WasmToolServer(m, bytes)).toThrow(/imports its memory/);
  });

  it('initial memory above the cap', async () => {
    const bytes = await wat(`(module (memory (export "memory") 100) (func (export "ok") (result i32) (i32.const 0)))`);
    expect(() => new WasmToolServer(manifest('big', ['ok'], '[limits]\nmemory = "1MiB"\n'), bytes)).toThrow(
      /memory starts at 100 pages \(6400 KiB\), above the limit of 16 pages/,
    );
  });

  it('a tool whose export is missing', async () => {
    const bytes = await wat(OK_WAT);
    expect(() => new WasmToolServer(manifest('miss', ['ok', 'nope']), bytes)).toThrow(
      /tool "nope" names export "nope", which the module does not export \(exports: ok\)/,
    );
  });

  it('a start function that never ends fails the load, not the process', async () => {
    const bytes = await wat(
      `(module (memory (export "memory") 1) (func $s (loop $l (br $l))) (start $s) (func (export "ok") (result i32) (i32.const 0)))`,
    );
    expect(() => new WasmToolServer(manifest('start', ['ok'], '[limits]\nfuel = 1000000\n'), bytes)).toThrow(
      /the module failed to start: the call ran out of fuel/,
    );
  });
});
