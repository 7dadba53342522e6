/**
 * The limits of one WebAssembly sandbox call, as a tool server's `[limits]` (caxton-tool.toml) and a
 * WebAssembly agent's `[wasm]` table write them: the same fields, bounds and defaults for both,
 * kept here because the agents layer sits below the tools layer. Each schema's issues are reported
 * at its own path (`limits.fuel`, `wasm.fuel`), so the field named is the one the file has.
 */
import { z } from 'zod';
import { durationMs, sizeBytes } from './zod-units.js';

export interface WasmLimits {
  /** The module's memory ceiling (bytes). */
  memory: number;
  /** Instructions metered per call. */
  fuel: number;
  timeout_ms: number;
  max_input: number;
  max_output: number;
  /** Persisted `vars` (bytes); 0 keeps none. */
  max_state: number;
}

export const DEFAULT_WASM_LIMITS: Readonly<WasmLimits> = {
  memory: 16 * 1024 * 1024,
  fuel: 100_000_000,
  timeout_ms: 5_000,
  max_input: 1024 * 1024,
  max_output: 1024 * 1024,
  max_state: 1024 * 1024,
};

/** The instrumenter's fuel counter is an i32. */
export const MAX_FUEL = 0x7fffffff;

/** A WebAssembly memory is whole 64 KiB pages; 4 GiB is the most a 32-bit memory addresses. */
const MIN_MEMORY = 65536;
const MAX_MEMORY = 4 * 1024 ** 3;

/** The limit fields as a file writes them (`timeout`, sizes and durations with units), each optional. */
export const wasmLimitFields = {
  memory: sizeBytes()
    .refine((v) => v >= MIN_MEMORY && v <= MAX_MEMORY, { message: 'expected between 64KiB and 4GiB' })
    .optional(),
  fuel: z
    .number({ error: 'expected a number' })
    .int()
    .min(1)
    .max(MAX_FUEL, { message: `expected at most ${MAX_FUEL}` })
    .optional(),
  timeout: durationMs().optional(),
  max_input: sizeBytes().optional(),
  max_output: sizeBytes().optional(),
  max_state: sizeBytes({ min: 0 }).optional(),
};

/** The keys `wasmLimitFields` knows, for did-you-mean warnings on unknown ones. */
export const WASM_LIMIT_KEYS = Object.keys(wasmLimitFields) as readonly (keyof typeof wasmLimitFields)[];

/** What a file's limit fields parse to: only what it states. */
export type WrittenLimits = { [K in keyof typeof wasmLimitFields]?: number };

/** Only the limits `w` states, under their runtime names. */
export function requestedWasmLimits(w: WrittenLimits): Partial<WasmLimits> {
  const out: Partial<WasmLimits> = {};
  if (w.memory !== undefined) out.memory = w.memory;
  if (w.fuel !== undefined) out.fuel = w.fuel;
  if (w.timeout !== undefined) out.timeout_ms = w.timeout;
  if (w.max_input !== undefined) out.max_input = w.max_input;
  if (w.max_output !== undefined) out.max_output = w.max_output;
  if (w.max_state !== undefined) out.max_state = w.max_state;
  return out;
}

/** The limits a call runs with: what `w` states, the defaults for the rest. */
export function wasmLimits(w: WrittenLimits): WasmLimits {
  return { ...DEFAULT_WASM_LIMITS, ...requestedWasmLimits(w) };
}
