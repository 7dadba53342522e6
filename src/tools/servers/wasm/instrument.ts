/**
 * Rewrites a WebAssembly binary before it is compiled, so that the sandbox's limits hold inside
 * the module itself:
 *
 *  - **Fuel**: a new mutable i32 global (exported as `__caxton_fuel`) is decremented at every
 *    function entry and at the head of every loop iteration; when it goes below zero the module
 *    executes `unreachable` and traps. Every unbounded computation (a loop, recursion) passes one
 *    of those points, so no call can outlive its fuel. The host sets the budget before each call.
 *  - **Memory**: every memory the module defines gets a maximum of at most the limit; a module
 *    whose initial memory already exceeds it is refused. `memory.grow` beyond it returns -1.
 *
 * A one-pass decoder of the code section (MVP, sign extension, saturating conversions, bulk
 * memory, reference types, multi-value, SIMD, threads/atomics, exception handling, tail calls).
 * GC instructions and 64-bit memories are refused with a clear error. Branches in WebAssembly are
 * structural (label depths, not byte offsets), so inserting instructions never breaks them.
 */
import { MAX_FUEL } from '../../../shared/wasm-limits.js';

export class WasmFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WasmFormatError';
  }
}

export interface InstrumentOptions {
  /** Initial value of the fuel global (the sandbox sets the budget before every call). */
  fuel: number;
  /** Upper bound for each defined memory, in 64 KiB pages. */
  maxMemoryPages: number;
}

export interface InstrumentResult {
  bytes: Uint8Array;
  /** Name of the exported fuel global. */
  fuelExport: string;
  /** Initial pages of each defined memory. */
  initialPages: number[];
  /** Functions instrumented and loop heads found (for diagnostics). */
  functions: number;
  loops: number;
}

export const FUEL_EXPORT = '__caxton_fuel';
/** The module's start function, exported under this name instead (the sandbox runs it under fuel). */
export const START_EXPORT = '__caxton_start';
export { MAX_FUEL };

const enc = new TextEncoder();

function u32(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function s32(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

class Reader {
  constructor(
    readonly b: Uint8Array,
    public p: number,
    readonly end: number,
  ) {}

  byte(): number {
    if (this.p >= this.end) throw new WasmFormatError(`unexpected end of data at byte ${this.p}`);
    return this.b[this.p++]!;
  }

  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 35) throw new WasmFormatError(`malformed LEB128 at byte ${this.p}`);
    }
  }

  /** Skips a LEB128 number of any width (s33, s64, u64). */
  skipLeb(): void {
    for (let i = 0; i < 10; i++) if ((this.byte() & 0x80) === 0) return;
    throw new WasmFormatError(`malformed LEB128 at byte ${this.p}`);
  }

  skip(n: number): void {
    if (this.p + n > this.end) throw new WasmFormatError(`unexpected end of data at byte ${this.p}`);
    this.p += n;
  }

  name(): string {
    const n = this.u32();
    const start = this.p;
    this.skip(n);
    return new TextDecoder().decode(this.b.subarray(start, start + n));
  }

  /** A value type; reference types with a heap type (0x63 / 0x64) carry an s33 after the byte. */
  valtype(): void {
    const t = this.byte();
    if (t === 0x63 || t === 0x64) this.skipLeb();
  }

  blocktype(): void {
    const t = this.b[this.p];
    if (t === 0x63 || t === 0x64) {
      this.p++;
      this.skipLeb();
    } else if (t !== undefined && (t & 0x80) === 0 && t >= 0x40) this.p++;
    else this.skipLeb();
  }

  memarg(): void {
    const align = this.u32();
    if (align & 0x40) this.u32(); // multi-memory: memory index follows
    this.skipLeb(); // offset (u64 for memory64)
  }

  /** Limits; returns [flags, min, max | undefined]. */
  limits(): [number, number, number | undefined] {
    const flags = this.byte();
    if (flags & 0x04) throw new WasmFormatError('64-bit memories and tables are not supported');
    const min = this.u32();
    const max = flags & 0x01 ? this.u32() : undefined;
    return [flags, min, max];
  }
}

interface Section {
  id: number;
  /** Start of the section's contents (after id and size) and its end. */
  start: number;
  end: number;
  /** Start of the section including id and size. */
  headerStart: number;
}

/** Canonical order of the known sections (the tag section, 13, sits between memory and global). */
const ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
const rank = (id: number) => ORDER.indexOf(id);

function readSections(b: Uint8Array): Section[] {
  if (b.length < 8 || b[0] !== 0x00 || b[1] !== 0x61 || b[2] !== 0x73 || b[3] !== 0x6d) {
    throw new WasmFormatError('not a WebAssembly binary (the magic number \\0asm is missing)');
  }
  if (b[4] !== 1 || b[5] !== 0 || b[6] !== 0 || b[7] !== 0) {
    throw new WasmFormatError(
      'unsupported WebAssembly binary version (only version 1 modules are accepted; components are not)',
    );
  }
  const sections: Section[] = [];
  const r = new Reader(b, 8, b.length);
  while (r.p < b.length) {
    const headerStart = r.p;
    const id = r.byte();
    const size = r.u32();
    const start = r.p;
    r.skip(size);
    sections.push({ id, start, end: start + size, headerStart });
  }
  return sections;
}

function section(id: number, content: number[] | Uint8Array): Uint8Array {
  const head = [id, ...u32(content.length)];
  const out = new Uint8Array(head.length + content.length);
  out.set(head, 0);
  out.set(content, head.length);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function fuelCheck(globalIndex: number): Uint8Array {
  const g = u32(globalIndex);
  // global.get g; i32.const 1; i32.sub; global.set g; global.get g; i32.const 0; i32.lt_s; if; unreachable; end
  return Uint8Array.from([
    0x23,
    ...g,
    0x41,
    0x01,
    0x6b,
    0x24,
    ...g,
    0x23,
    ...g,
    0x41,
    0x00,
    0x48,
    0x04,
    0x40,
    0x00,
    0x0b,
  ]);
}

/**
 * Walks one function body (`r` at the first instruction) and returns the byte offsets right after
 * each `loop` header, where the fuel check goes.
 */
function loopHeads(r: Reader): number[] {
  const heads: number[] = [];
  let depth = 1;
  while (depth > 0) {
    const op = r.byte();
    switch (op) {
      case 0x02: // block
      case 0x04: // if
      case 0x06: // try (legacy exceptions)
        r.blocktype();
        depth++;
        break;
      case 0x03: // loop
        r.blocktype();
        heads.push(r.p);
        depth++;
        break;
      case 0x1f: {
        // try_table
        r.blocktype();
        const n = r.u32();
        for (let i = 0; i < n; i++) {
          const kind = r.byte();
          if (kind === 0 || kind === 1) r.u32();
          r.u32();
        }
        depth++;
        break;
      }
      case 0x0b: // end
        depth--;
        break;
      case 0x00:
      case 0x01:
      case 0x05:
      case 0x0a:
      case 0x0f:
      case 0x19:
      case 0x1a:
      case 0x1b:
      case 0xd1:
      case 0xd3:
      case 0xd4:
        break;
      case 0x07:
      case 0x08:
      case 0x09:
      case 0x0c:
      case 0x0d:
      case 0x10:
      case 0x12:
      case 0x14:
      case 0x15:
      case 0x18:
      case 0x20:
      case 0x21:
      case 0x22:
      case 0x23:
      case 0x24:
      case 0x25:
      case 0x26:
      case 0xd2:
      case 0xd5:
      case 0xd6:
        r.u32();
        break;
      case 0x11:
      case 0x13: // call_indirect, return_call_indirect
        r.u32();
        r.u32();
        break;
      case 0x0e: {
        // br_table
        const n = r.u32();
        for (let i = 0; i <= n; i++) r.u32();
        break;
      }
      case 0x1c: {
        // select t*
        const n = r.u32();
        for (let i = 0; i < n; i++) r.valtype();
        break;
      }
      case 0x3f:
      case 0x40: // memory.size / memory.grow
        r.u32();
        break;
      case 0x41:
      case 0x42: // i32.const, i64.const
        r.skipLeb();
        break;
      case 0x43:
        r.skip(4);
        break;
      case 0x44:
        r.skip(8);
        break;
      case 0xd0: // ref.null heaptype
        r.skipLeb();
        break;
      case 0xfc:
        prefixFC(r);
        break;
      case 0xfd:
        prefixFD(r);
        break;
      case 0xfe:
        prefixFE(r);
        break;
      case 0xfb:
        throw new WasmFormatError('the module uses GC instructions (0xfb prefix), which the sandbox does not support');
      default:
        if (op >= 0x28 && op <= 0x3e) r.memarg();
        else if (op >= 0x45 && op <= 0xc4) break;
        else throw new WasmFormatError(`unknown opcode 0x${op.toString(16)} at byte ${r.p - 1}`);
    }
  }
  return heads;
}

function prefixFC(r: Reader): void {
  const sub = r.u32();
  if (sub <= 7) return; // saturating truncations
  switch (sub) {
    case 8:
    case 10:
    case 12:
    case 14: // memory.init, memory.copy, table.init, table.copy
      r.u32();
      r.u32();
      return;
    case 9:
    case 11:
    case 13:
    case 15:
    case 16:
    case 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
      r.u32();
      return;
    default:
      throw new WasmFormatError(`unsupported instruction 0xfc ${sub}`);
  }
}

function prefixFD(r: Reader): void {
  const sub = r.u32();
  if (sub <= 11 || sub === 92 || sub === 93) r.memarg();
  else if (sub === 12 || sub === 13) r.skip(16);
  else if (sub >= 21 && sub <= 34) r.skip(1);
  else if (sub >= 84 && sub <= 91) {
    r.memarg();
    r.skip(1);
  }
  // everything else (arithmetic, relaxed SIMD) has no immediates
}

function prefixFE(r: Reader): void {
  const sub = r.u32();
  if (sub === 3)
    r.skip(1); // atomic.fence
  else r.memarg();
}

/** Adds fuel metering and memory caps to `bytes` (a valid module: validate it first). */
export function instrument(bytes: Uint8Array, opts: InstrumentOptions): InstrumentResult {
  const fuel = Math.min(MAX_FUEL, Math.max(0, Math.floor(opts.fuel)));
  const sections = readSections(bytes);
  const find = (id: number) => sections.find((s) => s.id === id);
  const importedGlobals = countImportedGlobals(bytes, find(2));

  const replaced = new Map<number, Uint8Array>();
  const initialPages: number[] = [];

  // Memory: cap every memory's maximum.
  const mem = find(5);
  if (mem) replaced.set(5, capMemories(bytes, mem, opts.maxMemoryPages, initialPages));

  // Global: append the fuel global.
  const glob = find(6);
  let definedGlobals = 0;
  let globalRest: Uint8Array = new Uint8Array(0);
  if (glob) {
    const r = new Reader(bytes, glob.start, glob.end);
    definedGlobals = r.u32();
    globalRest = bytes.subarray(r.p, glob.end);
  }
  const fuelIndex = importedGlobals + definedGlobals;
  // (global (mut i32) (i32.const fuel))
  replaced.set(6, section(6, [...u32(definedGlobals + 1), ...globalRest, 0x7f, 0x01, 0x41, ...s32(fuel), 0x0b]));

  // Start: the start function becomes an export, run by the sandbox once the fuel is set (so
  // its failure is classified like any call's).
  const start = find(8);
  let startIndex: number | undefined;
  if (start) startIndex = new Reader(bytes, start.start, start.end).u32();
  replaced.set(7, exportSection(bytes, find(7), fuelIndex, startIndex));

  // Code: a fuel check at every function entry and loop head.
  let functions = 0;
  let loops = 0;
  const code = find(10);
  if (code) {
    const metered = meterCode(bytes, code, fuelCheck(fuelIndex));
    replaced.set(10, metered.section);
    functions = metered.functions;
    loops = metered.loops;
  }

  return { bytes: reassemble(bytes, sections, replaced), fuelExport: FUEL_EXPORT, initialPages, functions, loops };
}

/** Counts the imported globals (they come before the defined ones in the index space); an imported memory cannot be capped here. */
function countImportedGlobals(bytes: Uint8Array, imp: Section | undefined): number {
  let importedGlobals = 0;
  if (!imp) return importedGlobals;
  const r = new Reader(bytes, imp.start, imp.end);
  const n = r.u32();
  for (let i = 0; i < n; i++) {
    const mod = r.name();
    const field = r.name();
    const kind = r.byte();
    if (kind === 0x00) r.u32();
    else if (kind === 0x01) {
      r.valtype();
      r.limits();
    } else if (kind === 0x02)
      throw new WasmFormatError(
        `the module imports its memory ("${mod}" "${field}"); a tool module must define and export its own memory`,
      );
    else if (kind === 0x03) {
      r.valtype();
      r.byte();
      importedGlobals++;
    } else if (kind === 0x04) {
      r.byte();
      r.u32();
    } else throw new WasmFormatError(`unknown import kind ${kind}`);
  }
  return importedGlobals;
}

/** The memory section with every memory's maximum capped at `maxPages`; each initial size goes to `initialPages`. */
function capMemories(bytes: Uint8Array, mem: Section, maxPages: number, initialPages: number[]): Uint8Array {
  const r = new Reader(bytes, mem.start, mem.end);
  const n = r.u32();
  const out: number[] = [...u32(n)];
  for (let i = 0; i < n; i++) {
    const [flags, min, max] = r.limits();
    if (min > maxPages) {
      throw new WasmFormatError(
        `the module's memory starts at ${min} pages (${min * 64} KiB), above the limit of ${maxPages} pages (${maxPages * 64} KiB)`,
      );
    }
    initialPages.push(min);
    const cap = max === undefined ? maxPages : Math.min(max, maxPages);
    out.push(flags | 0x01, ...u32(min), ...u32(cap));
  }
  return section(5, out);
}

/** The export section with the fuel global (and the start function) exported under the sandbox's reserved names. */
function exportSection(
  bytes: Uint8Array,
  exp: Section | undefined,
  fuelIndex: number,
  startIndex: number | undefined,
): Uint8Array {
  let exportCount = 0;
  let exportRest: Uint8Array = new Uint8Array(0);
  if (exp) {
    const r = new Reader(bytes, exp.start, exp.end);
    exportCount = r.u32();
    const restStart = r.p;
    for (let i = 0; i < exportCount; i++) {
      const n = r.name();
      if (n === FUEL_EXPORT || n === START_EXPORT)
        throw new WasmFormatError(`the module already exports "${n}", a name the sandbox reserves`);
      r.byte();
      r.u32();
    }
    exportRest = bytes.subarray(restStart, exp.end);
  }
  const nameBytes = enc.encode(FUEL_EXPORT);
  const added = [...u32(nameBytes.length), ...nameBytes, 0x03, ...u32(fuelIndex)];
  if (startIndex !== undefined) {
    const startName = enc.encode(START_EXPORT);
    added.push(...u32(startName.length), ...startName, 0x00, ...u32(startIndex));
  }
  return section(7, [...u32(exportCount + (startIndex === undefined ? 1 : 2)), ...exportRest, ...added]);
}

/** The code section with `check` inserted at every function entry and loop head. */
function meterCode(
  bytes: Uint8Array,
  code: Section,
  check: Uint8Array,
): { section: Uint8Array; functions: number; loops: number } {
  let functions = 0;
  let loops = 0;
  const r = new Reader(bytes, code.start, code.end);
  const n = r.u32();
  const parts: Uint8Array[] = [Uint8Array.from(u32(n))];
  for (let i = 0; i < n; i++) {
    const size = r.u32();
    const bodyStart = r.p;
    const bodyEnd = bodyStart + size;
    const br = new Reader(bytes, bodyStart, bodyEnd);
    const groups = br.u32();
    for (let g = 0; g < groups; g++) {
      br.u32();
      br.valtype();
    }
    const exprStart = br.p;
    const heads = loopHeads(br);
    if (br.p !== bodyEnd) throw new WasmFormatError(`function ${i}: body ends at byte ${br.p}, expected ${bodyEnd}`);
    const body: Uint8Array[] = [bytes.subarray(bodyStart, exprStart), check];
    let from = exprStart;
    for (const h of heads) {
      body.push(bytes.subarray(from, h), check);
      from = h;
    }
    body.push(bytes.subarray(from, bodyEnd));
    const joined = concat(body);
    parts.push(Uint8Array.from(u32(joined.length)), joined);
    r.p = bodyEnd;
    functions++;
    loops += heads.length;
  }
  return { section: section(10, concat(parts)), functions, loops };
}

/** The module with `replaced` sections, the global and export sections inserted where it had none, the start section dropped. */
function reassemble(bytes: Uint8Array, sections: Section[], replaced: Map<number, Uint8Array>): Uint8Array {
  const out: Uint8Array[] = [bytes.subarray(0, 8)];
  const pending = new Set([6, 7].filter((id) => !sections.some((s) => s.id === id)));
  const flushPending = (beforeRank: number) => {
    for (const id of [6, 7]) {
      if (pending.has(id) && rank(id) < beforeRank) {
        out.push(replaced.get(id)!);
        pending.delete(id);
      }
    }
  };
  for (const s of sections) {
    if (s.id !== 0) flushPending(rank(s.id));
    if (s.id === 8) continue; // the start section, now an export
    out.push(replaced.get(s.id) ?? bytes.subarray(s.headerStart, s.end));
  }
  flushPending(Infinity);
  return concat(out);
}
