/**
 * One sandboxed instance of a tool module, run in the calling thread, speaking Extism's kernel ABI
 * (`extism:host/env`: input, output, errors, memory blocks, config, vars, logging, HTTP) so that
 * modules built with Extism's plugin development kits run unchanged — under Caxton's limits:
 *
 *  - CPU: fuel injected into the module (see instrument.ts); the budget is reset before each call.
 *    Every host call is charged fuel too (meter.ts), so a loop of host calls is bounded like any.
 *  - Wall clock: every host call checks the deadline; HTTP waits at most until it; a call that
 *    returns after its deadline is reported as `timeout` and its output dropped.
 *  - Log lines and bytes per call (meter.ts): the excess is dropped, counted and noted once.
 *  - Memory: the module's memories are capped when it is prepared; host-side blocks (the "kernel
 *    memory": input copies, output, config values, HTTP bodies) have the same cap of their own.
 *  - Input and output size, key-value state size.
 *  - Authority: only the host functions listed in HOST_IMPORTS exist; HTTP and files refuse what
 *    the grants do not allow. A module importing anything else is refused when it loads.
 *
 * A call that traps, runs out of fuel or memory, or overflows the stack fails with a clear outcome;
 * the instance is then dropped and the next call gets a fresh one (state kept in vars survives).
 */
import { createHash } from 'node:crypto';
import { CaxtonError } from '../../../shared/errors.js';
import { HostTrap, type CallOutcome } from '../errors.js';
import type { HostGrant } from '../../../shared/host-grants.js';
import type { FileAccess } from '../fs-access.js';
import { checkHttpRequest, type SyncHttpClient } from '../host-http.js';
import type { SqliteAccess } from '../sqlite-access.js';
import { instrument, START_EXPORT, WasmFormatError } from './instrument.js';
import { GuestLog, HOST_BYTES_PER_FUEL, hostCallFuel, LOG_LINE_MAX } from '../meter.js';
import {
  PAGE,
  WA,
  type WasmGlobal,
  type WasmImportDescriptor,
  type WasmInstance,
  type WasmMemory,
  type WasmModule,
} from './webassembly.js';

export interface SandboxLimits {
  /** Cap of the module's linear memory, and separately of the host-side kernel memory. */
  memoryBytes: number;
  /** Fuel per call: one unit per function entry and loop iteration. */
  fuel: number;
  /** Wall-clock limit of one call. */
  timeoutMs: number;
  maxInputBytes: number;
  maxOutputBytes: number;
  /** Total bytes of key-value state (vars) kept between calls. */
  maxStateBytes: number;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

export interface SandboxGrants {
  /**
   * The hosts HTTP may reach by name: every list must allow a request (the manifest's, then the
   * operator's). The operator's, the last, alone decides internal addresses (src/shared/host-grants.ts).
   */
  hosts: readonly (readonly HostGrant[])[];
  /** Whether any host at all is granted (for the error message). */
  httpGranted: boolean;
  files: FileAccess;
  /** Read-only SQLite databases (`caxton_sqlite_query`); absent = none granted. */
  databases?: SqliteAccess;
  config: ReadonlyMap<string, string>;
}

export interface SandboxHooks {
  log?(level: LogLevel, message: string): void;
  http?: SyncHttpClient;
}

export interface CallResult {
  outcome: CallOutcome;
  /** The output bytes (on success, or what the tool set before failing). */
  output?: Uint8Array;
  /** Why the call failed, for people. */
  error?: string;
  fuel_used: number;
  /** Linear memory plus the kernel memory's high-water mark, in bytes. */
  memory_bytes: number;
  duration_us: number;
}

/** Host functions a module may import, by module name. Anything else is refused at load. */
export const HOST_IMPORTS: Readonly<Record<string, readonly string[]>> = {
  'extism:host/env': [
    'alloc',
    'free',
    'length',
    'length_unsafe',
    'load_u8',
    'load_u64',
    'store_u8',
    'store_u64',
    'input_offset',
    'input_length',
    'input_load_u8',
    'input_load_u64',
    'output_set',
    'error_set',
    'error_get',
    'reset',
    'config_get',
    'var_get',
    'var_set',
    'http_request',
    'http_status_code',
    'http_headers',
    'log_trace',
    'log_debug',
    'log_info',
    'log_warn',
    'log_error',
    'get_log_level',
  ],
  'extism:host/user': ['caxton_file_read', 'caxton_file_write', 'caxton_file_list', 'caxton_sqlite_query'],
  env: ['abort'],
};

/** A module prepared (instrumented, capped, compiled) once and shared by every instance of it. */
export interface PreparedModule {
  module: WasmModule;
  digest: string;
  exports: ReadonlySet<string>;
  imports: readonly WasmImportDescriptor[];
  fuelExport: string;
  initialPages: number[];
  bytes: number;
}

const prepared = new Map<string, PreparedModule>();

/**
 * Validates, instruments and compiles `bytes`, caching by content and limits. Throws a
 * CaxtonError('validation_failed') naming the problem: invalid WebAssembly, a 64-bit or imported
 * memory, initial memory above the cap, or an import the sandbox does not provide.
 */
export function prepareModule(
  bytes: Uint8Array,
  limits: Pick<SandboxLimits, 'fuel' | 'memoryBytes'>,
  file = 'module',
): PreparedModule {
  const digest = createHash('sha256').update(bytes).digest('hex');
  const maxPages = Math.max(1, Math.floor(limits.memoryBytes / PAGE));
  const key = `${digest}:${limits.fuel}:${maxPages}`;
  const hit = prepared.get(key);
  if (hit) return hit;
  const invalid = (msg: string) => new CaxtonError('validation_failed', `${file}: ${msg}`, { file });
  if (!WA.validate(bytes)) {
    let reason = 'not valid WebAssembly';
    try {
      new WA.Module(bytes);
    } catch (e) {
      reason = `not valid WebAssembly: ${(e as Error).message.replace(/^WebAssembly\.Module\(\): /, '')}`;
    }
    throw invalid(reason);
  }
  let result;
  try {
    result = instrument(bytes, { fuel: limits.fuel, maxMemoryPages: maxPages });
  } catch (e) {
    if (e instanceof WasmFormatError) throw invalid(e.message);
    throw e;
  }
  let module: WasmModule;
  try {
    module = new WA.Module(result.bytes);
  } catch (e) {
    throw invalid(`could not be compiled after instrumentation: ${(e as Error).message}`);
  }
  const imports = WA.Module.imports(module);
  for (const i of imports) {
    const allowed = HOST_IMPORTS[i.module];
    if (i.kind !== 'function' || !allowed?.includes(i.name)) {
      throw invalid(
        `imports ${i.kind} "${i.module}" "${i.name}", which the sandbox does not provide; tool modules may import only Extism's kernel functions ("extism:host/env"), ` +
          `Caxton's functions ("extism:host/user" caxton_file_*, caxton_sqlite_query) and "env" "abort" (WASI is not offered)`,
      );
    }
  }
  const exports = new Set(
    WA.Module.exports(module)
      .filter((e) => e.kind === 'function')
      .map((e) => e.name),
  );
  const p: PreparedModule = {
    module,
    digest,
    exports,
    imports,
    fuelExport: result.fuelExport,
    initialPages: result.initialPages,
    bytes: bytes.length,
  };
  prepared.set(key, p);
  return p;
}

/** Forgets prepared modules (tests, hot reload). */
export function clearPreparedModules(): void {
  prepared.clear();
}

const dec = new TextDecoder();
const ARENA_START = 8;
const HTTP_MAX_BYTES = 64 * 1024 * 1024;

export class WasmSandbox {
  readonly prepared: PreparedModule;
  readonly limits: SandboxLimits;
  readonly #grants: SandboxGrants;
  readonly #hooks: SandboxHooks;
  readonly #logs: GuestLog;
  readonly #imports: Record<string, Record<string, unknown>>;

  #instance: WasmInstance | undefined;
  #memory: WasmMemory | undefined;
  #fuel: WasmGlobal | undefined;

  // Kernel memory: one growable arena, bump-allocated and reset at every call.
  #arena = new Uint8Array(0);
  #view = new DataView(this.#arena.buffer);
  #top = ARENA_START;
  #high = ARENA_START;
  readonly #blocks = new Map<number, number>();

  // The current call.
  #input: Uint8Array = new Uint8Array(0);
  #inputView = new DataView(this.#input.buffer);
  #inputAddr = 0;
  #output: Uint8Array | undefined;
  #error: string | undefined;
  #abort: string | undefined;
  #httpStatus = 0;
  #httpHeaders: Record<string, string> | undefined;
  #deadline = Infinity;
  #traceparent: string | undefined;

  readonly #vars = new Map<string, Uint8Array>();
  #varBytes = 0;
  /** Bumped by every var_set: a worker sends the state back only when it changed (off-thread.ts). */
  varsVersion = 0;

  /** Counters since the sandbox was created. */
  readonly stats = { calls: 0, failures: 0, instantiations: 0 };

  constructor(prepared: PreparedModule, limits: SandboxLimits, grants: SandboxGrants, hooks: SandboxHooks = {}) {
    this.prepared = prepared;
    this.limits = limits;
    this.#grants = grants;
    this.#hooks = hooks;
    this.#logs = new GuestLog(hooks.log);
    this.#imports = this.#buildImports();
  }

  /** Whether a live instance is loaded (false after a failed call until the next one). */
  get instantiated(): boolean {
    return this.#instance !== undefined;
  }

  /** Bytes of linear memory of the live instance (0 when none). */
  get memoryBytes(): number {
    return this.#memory?.buffer.byteLength ?? 0;
  }

  /** Bytes of the host-side kernel memory kept between calls. */
  get kernelBytes(): number {
    return this.#arena.byteLength;
  }

  /**
   * Instantiates the module if no instance is live: runs its start function and `_initialize`
   * (if exported) under the fuel budget. Returns a failure result, or undefined when ready.
   */
  instantiate(): CallResult | undefined {
    if (this.#instance) return undefined;
    try {
      return this.#instantiate();
    } finally {
      this.#logs.end();
    }
  }

  #instantiate(): CallResult | undefined {
    const t0 = performance.now();
    this.#begin(new Uint8Array(0), t0 + this.limits.timeoutMs);
    try {
      const instance = new WA.Instance(this.prepared.module, this.#imports);
      this.stats.instantiations++;
      this.#instance = instance;
      const mem = instance.exports.memory;
      this.#memory =
        mem !== undefined && typeof (mem as WasmMemory).grow === 'function' ? (mem as WasmMemory) : undefined;
      this.#fuel = instance.exports[this.prepared.fuelExport] as WasmGlobal;
      for (const name of [START_EXPORT, '_initialize']) {
        const init = instance.exports[name];
        if (typeof init !== 'function') continue;
        this.#fuel.value = this.limits.fuel;
        (init as () => void)();
      }
      return undefined;
    } catch (e) {
      const r = this.#failure(e, t0);
      r.error = `the module failed to start: ${r.error}`;
      return r;
    }
  }

  /** Runs export `name` with `input`. Never throws for anything the guest does. */
  /**
   * Runs export `name` on `input`. `traceparent` (the calling execution's W3C trace context) is
   * sent with the module's HTTP requests unless the module sets its own.
   */
  call(name: string, input: Uint8Array, deadline = Infinity, traceparent?: string): CallResult {
    try {
      return this.#call(name, input, deadline, traceparent);
    } finally {
      this.#logs.end();
    }
  }

  #call(name: string, input: Uint8Array, deadline: number, traceparent: string | undefined): CallResult {
    this.stats.calls++;
    this.#traceparent = traceparent;
    const t0 = performance.now();
    if (input.byteLength > this.limits.maxInputBytes) {
      this.stats.failures++;
      return {
        outcome: 'input_too_large',
        error: `the input is ${input.byteLength} bytes, above the limit of ${this.limits.maxInputBytes}`,
        fuel_used: 0,
        memory_bytes: 0,
        duration_us: 0,
      };
    }
    if (!this.prepared.exports.has(name)) {
      this.stats.failures++;
      return {
        outcome: 'trap',
        error: `the module exports no function "${name}"`,
        fuel_used: 0,
        memory_bytes: 0,
        duration_us: 0,
      };
    }
    const failedStart = this.instantiate();
    if (failedStart) {
      this.stats.failures++;
      return failedStart;
    }
    // A deadline given in epoch ms (ToolContext.deadline) becomes a performance.now() instant.
    const until = Math.min(t0 + this.limits.timeoutMs, deadline === Infinity ? Infinity : t0 + (deadline - Date.now()));
    this.#begin(input, until);
    const fuel = this.#fuel!;
    fuel.value = this.limits.fuel;
    let rc: unknown;
    try {
      rc = (this.#instance!.exports[name] as () => unknown)();
    } catch (e) {
      this.stats.failures++;
      return this.#failure(e, t0);
    }
    const elapsed = performance.now() - t0;
    const result: CallResult = {
      outcome: 'ok',
      fuel_used: this.limits.fuel - (fuel.value as number),
      memory_bytes: this.#memoryUsed(),
      duration_us: Math.round(elapsed * 1000),
    };
    if (this.#output) result.output = this.#output;
    if (performance.now() > this.#deadline) {
      this.stats.failures++;
      this.#drop();
      return {
        ...result,
        output: undefined,
        outcome: 'timeout',
        error: `the call exceeded its deadline (${Math.round(elapsed)} ms; limit ${this.limits.timeoutMs} ms)`,
      } as CallResult;
    }
    const code = typeof rc === 'number' ? rc : typeof rc === 'bigint' ? Number(rc) : 0;
    if (code !== 0 || this.#error !== undefined) {
      this.stats.failures++;
      result.outcome = 'error';
      result.error = this.#error ?? `the tool returned ${code}`;
    }
    return result;
  }

  /** The key-value state (vars), to carry it into a replacement sandbox. */
  exportVars(): [string, Uint8Array][] {
    return [...this.#vars];
  }

  /** Restores state exported by exportVars (a new worker taking over a server). */
  importVars(vars: readonly [string, Uint8Array | string][]): void {
    this.#vars.clear();
    this.#varBytes = 0;
    for (const [k, v] of vars) {
      const bytes = typeof v === 'string' ? new TextEncoder().encode(v) : v;
      this.#vars.set(k, bytes);
      this.#varBytes += bytes.byteLength + k.length;
    }
  }

  /** Drops the instance (its memory goes with it); the next call instantiates afresh. */
  reset(): void {
    this.#drop();
  }

  #drop(): void {
    this.#instance = undefined;
    this.#memory = undefined;
    this.#fuel = undefined;
  }

  #memoryUsed(): number {
    return (this.#memory?.buffer.byteLength ?? 0) + (this.#high - ARENA_START);
  }

  #begin(input: Uint8Array, deadline: number): void {
    this.#top = ARENA_START;
    this.#high = ARENA_START;
    if (this.#blocks.size > 0) this.#blocks.clear();
    this.#input = input;
    this.#inputView = new DataView(input.buffer, input.byteOffset, input.byteLength);
    this.#inputAddr = 0;
    this.#output = undefined;
    this.#error = undefined;
    this.#abort = undefined;
    this.#httpStatus = 0;
    this.#httpHeaders = undefined;
    this.#deadline = deadline;
  }

  #failure(e: unknown, t0: number): CallResult {
    const fuelLeft = this.#fuel ? (this.#fuel.value as number) : 0;
    const fuelUsed = this.#fuel ? Math.min(this.limits.fuel, this.limits.fuel - fuelLeft) : 0;
    const memory = this.#memoryUsed();
    const atCap = this.#memory !== undefined && this.#memory.buffer.byteLength + PAGE > this.limits.memoryBytes;
    let outcome: CallOutcome;
    let error: string;
    const msg = e instanceof Error ? e.message : String(e);
    if (e instanceof HostTrap) {
      outcome = e.kind;
      error = e.message;
    } else if (this.#fuel && fuelLeft < 0) {
      outcome = 'fuel_exhausted';
      error = this.#outOfFuel();
    } else if (e instanceof RangeError && /call stack/i.test(msg)) {
      outcome = 'stack_overflow';
      error = 'the call overflowed the stack (recursion too deep)';
    } else if (atCap && (this.#abort !== undefined || e instanceof WA.RuntimeError)) {
      outcome = 'out_of_memory';
      error = `the module ran out of memory (limit ${this.limits.memoryBytes} bytes)${this.#abort ? `: ${this.#abort}` : ''}`;
    } else if (this.#abort !== undefined) {
      outcome = 'trap';
      error = this.#abort;
    } else if (this.#error !== undefined) {
      outcome = 'error';
      error = this.#error;
    } else if (e instanceof WA.RuntimeError) {
      outcome = 'trap';
      error = `the module trapped: ${msg}`;
    } else {
      outcome = 'trap';
      error = `the call failed: ${msg}`;
    }
    this.#drop();
    return {
      outcome,
      error,
      fuel_used: fuelUsed,
      memory_bytes: memory,
      duration_us: Math.round((performance.now() - t0) * 1000),
    };
  }

  #outOfFuel(): string {
    return `the call ran out of fuel (limit ${this.limits.fuel} units: a loop or recursion that does not end?)`;
  }

  #checkDeadline(): void {
    if (performance.now() > this.#deadline)
      throw new HostTrap('timeout', `the call exceeded its deadline (limit ${this.limits.timeoutMs} ms)`);
  }

  /** Takes `units` of the call's fuel (a host call's cost); ends the call when it runs out. */
  #charge(units: number): void {
    const fuel = this.#fuel;
    if (!fuel || units <= 0) return;
    const left = (fuel.value as number) - units;
    fuel.value = Math.max(left, -1);
    if (left < 0) throw new HostTrap('fuel_exhausted', this.#outOfFuel());
  }

  /**
   * The one entry of every host function: charges its fuel and checks the call's deadline before
   * it runs, so a guest looping on host calls ends at its fuel or its time limit like any loop.
   */
  #metered<T extends Record<string, (...args: never[]) => unknown>>(fns: T): T {
    const out: Record<string, unknown> = {};
    for (const [name, fn] of Object.entries(fns)) {
      const cost = hostCallFuel(name);
      const f = fn as (...args: unknown[]) => unknown;
      out[name] = (...args: unknown[]): unknown => {
        this.#charge(cost);
        this.#checkDeadline();
        return f(...args);
      };
    }
    return out as T;
  }

  // ── kernel memory ──────────────────────────────────────────────────────────

  #alloc(n: number): number {
    const addr = (this.#top + 7) & ~7;
    // An empty block still takes a byte, so the next block cannot share its offset (and length).
    const end = addr + Math.max(n, 1);
    if (end > this.limits.memoryBytes)
      throw new HostTrap(
        'out_of_memory',
        `the module asked for ${n} bytes of host memory, beyond the limit of ${this.limits.memoryBytes} bytes`,
      );
    if (end > this.#arena.byteLength) {
      let size = Math.max(4096, this.#arena.byteLength * 2);
      while (size < end) size *= 2;
      const next = new Uint8Array(Math.min(size, Math.max(end, this.limits.memoryBytes)));
      next.set(this.#arena.subarray(0, this.#top));
      this.#arena = next;
      this.#view = new DataView(next.buffer);
    }
    this.#blocks.set(addr, n);
    this.#top = end;
    if (end > this.#high) this.#high = end;
    return addr;
  }

  #allocBytes(data: Uint8Array): number {
    this.#charge(Math.floor(data.byteLength / HOST_BYTES_PER_FUEL));
    const addr = this.#alloc(data.byteLength);
    this.#arena.set(data, addr);
    return addr;
  }

  #block(addr: number): Uint8Array {
    const len = this.#blocks.get(addr);
    if (len === undefined) throw new HostTrap('trap', `invalid kernel memory offset ${addr}`);
    this.#charge(Math.floor(len / HOST_BYTES_PER_FUEL));
    return this.#arena.subarray(addr, addr + len);
  }

  #string(addr: number): string {
    return dec.decode(this.#block(addr));
  }

  #bounds(addr: number, n: number): void {
    if (addr < ARENA_START || addr + n > this.#top)
      throw new HostTrap('trap', `kernel memory access out of bounds at offset ${addr}`);
  }

  /** An AssemblyScript string in linear memory (UTF-16, byte length at ptr - 4). */
  #asString(ptr: number): string {
    if (!this.#memory || ptr === 0) return '';
    const buf = this.#memory.buffer;
    if (ptr < 4 || ptr > buf.byteLength) return '';
    const len = new DataView(buf).getUint32(ptr - 4, true);
    if (ptr + len > buf.byteLength) return '';
    return Buffer.from(buf, ptr, Math.min(len, LOG_LINE_MAX * 2)).toString('utf16le');
  }

  #log(level: LogLevel, addr: bigint): void {
    const a = Number(addr);
    const len = this.#blocks.get(a);
    if (len === undefined) throw new HostTrap('trap', `invalid kernel memory offset ${a}`);
    if (!this.#logs.accepts(len)) return;
    // A UTF-8 character takes at most 4 bytes: decode no more than the line can keep.
    const bytes = this.#block(a);
    this.#logs.write(level, dec.decode(bytes.subarray(0, LOG_LINE_MAX * 4)) + (len > LOG_LINE_MAX * 4 ? '…' : ''));
  }

  #buildImports(): Record<string, Record<string, unknown>> {
    const env = {
      alloc: (n: bigint): bigint => {
        return BigInt(this.#alloc(Number(n)));
      },
      free: (a: bigint): void => {
        const addr = Number(a);
        const len = this.#blocks.get(addr);
        if (len === undefined) return;
        this.#blocks.delete(addr);
        if (addr + len === this.#top) this.#top = addr;
      },
      length: (a: bigint): bigint => BigInt(this.#blocks.get(Number(a)) ?? 0),
      length_unsafe: (a: bigint): bigint => BigInt(this.#blocks.get(Number(a)) ?? 0),
      load_u8: (a: bigint): number => {
        const addr = Number(a);
        this.#bounds(addr, 1);
        return this.#arena[addr]!;
      },
      load_u64: (a: bigint): bigint => {
        const addr = Number(a);
        this.#bounds(addr, 8);
        return this.#view.getBigUint64(addr, true);
      },
      store_u8: (a: bigint, v: number): void => {
        const addr = Number(a);
        this.#bounds(addr, 1);
        this.#arena[addr] = v;
      },
      store_u64: (a: bigint, v: bigint): void => {
        const addr = Number(a);
        this.#bounds(addr, 8);
        this.#view.setBigUint64(addr, v, true);
      },
      input_length: (): bigint => BigInt(this.#input.byteLength),
      input_offset: (): bigint => {
        if (this.#inputAddr === 0) this.#inputAddr = this.#allocBytes(this.#input);
        return BigInt(this.#inputAddr);
      },
      input_load_u8: (o: bigint): number => {
        const off = Number(o);
        if (off >= this.#input.byteLength) throw new HostTrap('trap', `input read out of bounds at ${off}`);
        return this.#input[off]!;
      },
      input_load_u64: (o: bigint): bigint => {
        const off = Number(o);
        if (off + 8 > this.#input.byteLength) throw new HostTrap('trap', `input read out of bounds at ${off}`);
        return this.#inputView.getBigUint64(off, true);
      },
      output_set: (a: bigint, n: bigint): void => {
        const addr = Number(a);
        const len = Number(n);
        if (len > this.limits.maxOutputBytes)
          throw new HostTrap(
            'output_too_large',
            `the output is ${len} bytes, above the limit of ${this.limits.maxOutputBytes}`,
          );
        this.#bounds(addr, len);
        this.#output = this.#arena.slice(addr, addr + len);
      },
      error_set: (a: bigint): void => {
        const addr = Number(a);
        this.#error = addr === 0 ? undefined : this.#string(addr).slice(0, LOG_LINE_MAX);
      },
      error_get: (): bigint =>
        this.#error === undefined ? 0n : BigInt(this.#allocBytes(new TextEncoder().encode(this.#error))),
      reset: (): void => {
        this.#top = ARENA_START;
        this.#blocks.clear();
      },
      config_get: (k: bigint): bigint => {
        const v = this.#grants.config.get(this.#string(Number(k)));
        return v === undefined ? 0n : BigInt(this.#allocBytes(new TextEncoder().encode(v)));
      },
      var_get: (k: bigint): bigint => {
        const v = this.#vars.get(this.#string(Number(k)));
        return v === undefined ? 0n : BigInt(this.#allocBytes(v));
      },
      var_set: (k: bigint, v: bigint): void => {
        const key = this.#string(Number(k));
        const old = this.#vars.get(key);
        const next = v === 0n ? undefined : this.#block(Number(v)).slice();
        const bytes =
          this.#varBytes - (old ? old.byteLength + key.length : 0) + (next ? next.byteLength + key.length : 0);
        if (bytes > this.limits.maxStateBytes)
          throw new HostTrap(
            'out_of_memory',
            `var_set("${key}") would take the state to ${bytes} bytes, above the limit of ${this.limits.maxStateBytes}`,
          );
        if (next) this.#vars.set(key, next);
        else this.#vars.delete(key);
        this.#varBytes = bytes;
        this.varsVersion++;
      },
      http_request: (r: bigint, b: bigint): bigint => this.#http(Number(r), Number(b)),
      http_status_code: (): number => this.#httpStatus,
      http_headers: (): bigint =>
        this.#httpHeaders ? BigInt(this.#allocBytes(new TextEncoder().encode(JSON.stringify(this.#httpHeaders)))) : 0n,
      log_trace: (a: bigint) => this.#log('trace', a),
      log_debug: (a: bigint) => this.#log('debug', a),
      log_info: (a: bigint) => this.#log('info', a),
      log_warn: (a: bigint) => this.#log('warn', a),
      log_error: (a: bigint) => this.#log('error', a),
      get_log_level: (): number => 2,
    };
    const user = {
      caxton_file_read: (p: bigint): bigint => {
        const room = Math.max(0, this.limits.memoryBytes - this.#top - 8);
        return BigInt(this.#allocBytes(this.#grants.files.read(this.#string(Number(p)), room)));
      },
      caxton_file_write: (p: bigint, d: bigint): void => {
        this.#grants.files.write(this.#string(Number(p)), this.#block(Number(d)));
      },
      caxton_file_list: (p: bigint): bigint => {
        const names = this.#grants.files.list(this.#string(Number(p)));
        return BigInt(this.#allocBytes(new TextEncoder().encode(JSON.stringify(names))));
      },
      caxton_sqlite_query: (r: bigint): bigint => {
        const db = this.#grants.databases;
        if (!db) throw new HostTrap('denied', 'SQLite access is not granted to this tool server');
        let req: unknown;
        try {
          req = JSON.parse(this.#string(Number(r)));
        } catch {
          throw new HostTrap(
            'denied',
            'caxton_sqlite_query: the request is not valid JSON ({"database", "sql", "params", "max_rows"})',
          );
        }
        const room = Math.max(0, Math.min(this.limits.memoryBytes - this.#top - 8, this.limits.maxOutputBytes));
        return BigInt(this.#allocBytes(db.query(req, { maxBytes: room, deadline: this.#deadline })));
      },
    };
    const abort = (msg: number, file: number, line: number, col: number): void => {
      this.#abort = `abort: ${this.#asString(msg) || '(no message)'}${file ? ` at ${this.#asString(file)}:${line}:${col}` : ''}`;
      throw new HostTrap('trap', this.#abort);
    };
    return { 'extism:host/env': this.#metered(env), 'extism:host/user': this.#metered(user), env: { abort } };
  }

  #http(reqAddr: number, bodyAddr: number): bigint {
    const req = checkHttpRequest(this.#string(reqAddr), 'http_request', this.#grants, this.#traceparent);
    const http = this.#hooks.http;
    if (!http) throw new HostTrap('denied', 'HTTP is not available in this sandbox');
    const body = bodyAddr !== 0 ? this.#block(bodyAddr).slice() : undefined;
    const room = Math.min(HTTP_MAX_BYTES, Math.max(0, this.limits.memoryBytes - this.#top - 8));
    const res = http.request(
      { ...req, ...(body && { body }) },
      { timeoutMs: this.#deadline - performance.now(), maxBytes: room },
    );
    this.#httpStatus = res.status;
    this.#httpHeaders = res.headers;
    return BigInt(this.#allocBytes(res.body));
  }
}
