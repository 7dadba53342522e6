/**
 * What a guest's host calls cost, and how much it may log per call (ADR 0112). Shared by the
 * WebAssembly sandbox (sandbox.ts) and the JavaScript one (js-sandbox.ts), whose host functions
 * each pass through one metering entry that charges this fuel and checks the call's deadline.
 *
 * Why fuel: fuel bounds how long a call may hold the thread it runs on (`in_thread_fuel` decides
 * which calls may run on the server's own thread). A loop iteration costs one unit (a few ns); a
 * host call costs 100–400 ns, so a loop of host calls charged like iterations would hold the
 * thread a hundred times longer than its fuel suggests.
 */
import type { LogLevel } from './wasm/index.js';

/** Fuel charged for a host call that reads or writes a word of host memory (a crossing, a bounds check). */
export const HOST_ACCESS_FUEL = 10;
/** Fuel charged for any other host call (it decodes, allocates, logs...). */
export const HOST_CALL_FUEL = 100;
/** Fuel charged for a host call that does I/O (files, SQLite, HTTP): a system call or more. */
export const HOST_IO_FUEL = 10_000;
/** Fuel charged per byte a host call copies between the guest and the host, in addition. */
export const HOST_BYTES_PER_FUEL = 16;

/**
 * Host functions charged HOST_ACCESS_FUEL: the kernel's memory accessors, which modules call per
 * word to read their input and write their output (8 MiB of input read 8 bytes at a time costs
 * about 10 M units).
 */
const ACCESS_CALLS: ReadonlySet<string> = new Set([
  'load_u8',
  'load_u64',
  'store_u8',
  'store_u64',
  'input_load_u8',
  'input_load_u64',
  'input_length',
  'length',
  'length_unsafe',
  'free',
  'http_status_code',
  'get_log_level',
]);

/** Host functions charged HOST_IO_FUEL (WebAssembly and JavaScript names). */
const IO_CALLS: ReadonlySet<string> = new Set([
  'caxton_file_read',
  'caxton_file_write',
  'caxton_file_list',
  'caxton_sqlite_query',
  'http_request',
  'file_read',
  'file_write',
  'file_list',
  'sqlite',
  'http',
]);

/** The fuel a call of host function `name` costs before the bytes it copies. */
export const hostCallFuel = (name: string): number =>
  ACCESS_CALLS.has(name) ? HOST_ACCESS_FUEL : IO_CALLS.has(name) ? HOST_IO_FUEL : HOST_CALL_FUEL;

/** Log lines one call may write; the rest are dropped and counted. */
export const LOG_LINES_PER_CALL = 1_000;
/** Bytes of log text one call may write (each line is also cut at LOG_LINE_MAX characters). */
export const LOG_BYTES_PER_CALL = 256 * 1024;
/** A longer log line is cut here, with an ellipsis. */
export const LOG_LINE_MAX = 4096;

/**
 * A guest's log for one call: passes lines to `sink` until the call's line or byte budget is
 * spent, then counts what it drops; `end` writes one line saying how many were dropped.
 */
export class GuestLog {
  readonly #sink: ((level: LogLevel, message: string) => void) | undefined;
  #lines = 0;
  #bytes = 0;
  #droppedLines = 0;
  #droppedBytes = 0;

  constructor(sink: ((level: LogLevel, message: string) => void) | undefined) {
    this.#sink = sink;
  }

  /** Whether a line of `length` bytes would be written (the caller may skip decoding it). */
  accepts(length: number): boolean {
    if (!this.#sink) return false;
    if (this.#lines < LOG_LINES_PER_CALL && this.#bytes + Math.min(length, LOG_LINE_MAX) <= LOG_BYTES_PER_CALL)
      return true;
    this.#droppedLines++;
    this.#droppedBytes += length;
    return false;
  }

  /** Writes a line `accepts` let through. */
  write(level: LogLevel, message: string): void {
    const line = message.length > LOG_LINE_MAX ? `${message.slice(0, LOG_LINE_MAX)}…` : message;
    this.#lines++;
    this.#bytes += Math.min(message.length, LOG_LINE_MAX);
    this.#sink?.(level, line);
  }

  /** Ends the call: notes what was dropped, once, and starts the next call's budget. */
  end(): void {
    if (this.#droppedLines > 0)
      this.#sink?.(
        'warn',
        `${this.#droppedLines} log lines (${this.#droppedBytes} bytes) of this call were dropped: a call may log at most ${LOG_LINES_PER_CALL} lines and ${LOG_BYTES_PER_CALL} bytes`,
      );
    this.#lines = 0;
    this.#bytes = 0;
    this.#droppedLines = 0;
    this.#droppedBytes = 0;
  }
}
