import { describe, expect, it } from 'vitest';
import { FUEL_EXPORT, instrument, START_EXPORT, WasmFormatError } from '../../../src/tools/servers/index.js';
import { WA } from '../../../src/tools/servers/wasm/webassembly.js';
import { wat } from './helpers.js';

describe('instrument', () => {
  it('meters function entries and loop iterations exactly', async () => {
    const bytes = await wat(`(module
      (func $inner)
      (func (export "count") (param $n i32) (local $i i32)
        (loop $l
          (call $inner)
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n))))))`);
    const r = instrument(bytes, { fuel: 1000, maxMemoryPages: 1 });
    expect(r).toMatchObject({ functions: 2, loops: 1, initialPages: [] });
    const inst = new WA.Instance(new WA.Module(r.bytes), {});
    const fuel = inst.exports[FUEL_EXPORT] as { value: number };
    fuel.value = 1000;
    (inst.exports.count as (n: number) => void)(10);
    // 1 entry + 10 loop iterations + 10 calls of $inner
    expect(1000 - fuel.value).toBe(21);
    fuel.value = 15;
    expect(() => (inst.exports.count as (n: number) => void)(10)).toThrow(/unreachable/);
    expect(fuel.value).toBe(-1);
  });

  it('caps memory, keeps a smaller declared maximum, and exports the start function', async () => {
    const bytes = await wat(`(module (memory (export "m") 2) (global $g (mut i32) (i32.const 0))
      (func $s (global.set $g (i32.const 7))) (start $s)
      (func (export "g") (result i32) (global.get $g)))`);
    const r = instrument(bytes, { fuel: 100, maxMemoryPages: 4 });
    const inst = new WA.Instance(new WA.Module(r.bytes), {});
    const mem = inst.exports.m as { grow(n: number): number; buffer: ArrayBuffer };
    expect((inst.exports.g as () => number)()).toBe(0); // start not run at instantiation
    (inst.exports[START_EXPORT] as () => void)();
    expect((inst.exports.g as () => number)()).toBe(7);
    expect(mem.grow(2)).toBe(2);
    expect(() => mem.grow(1)).toThrow();
    const small = instrument(await wat('(module (memory 1 2))'), { fuel: 1, maxMemoryPages: 100 });
    const m2 = new WA.Instance(new WA.Module(small.bytes), {});
    expect(Object.keys(m2.exports)).toEqual([FUEL_EXPORT]);
  });

  it('refuses what it cannot meter or cap', async () => {
    expect(() => instrument(new Uint8Array([1, 2, 3]), { fuel: 1, maxMemoryPages: 1 })).toThrow(WasmFormatError);
    expect(() =>
      instrument(Uint8Array.from([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]), { fuel: 1, maxMemoryPages: 1 }),
    ).toThrow(/only version 1 modules/);
    const big = await wat('(module (memory 8))');
    expect(() => instrument(big, { fuel: 1, maxMemoryPages: 4 })).toThrow(/starts at 8 pages/);
  });
});
