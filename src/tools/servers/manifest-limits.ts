/**
 * The operator's caps over tool manifests (`[tools.limits]` in caxton.toml, ADR 0018).
 *
 * A package's `[limits]` are what its author asks for; the server may host packages it did not
 * write, so the operator bounds them. The rule, per limit:
 *  - the operator's grant for that server (`[tools.NAME] limits.X`) decides when given: the
 *    effective limit is the smaller of it and the manifest's (the operator looked at this server;
 *    this grant may be above `[tools.limits]`);
 *  - otherwise a manifest that *states* more than `[tools.limits]` allows is refused (422 naming
 *    the field, the value asked for, the cap and how to raise it) — never silently clamped, so the
 *    author learns at deploy, not from a tool that fails mysteriously under load;
 *  - a limit the manifest leaves out gets its default, lowered to the cap if the cap is smaller.
 */
import { CaxtonError } from '../../shared/errors.js';
import type { SourceIssue } from '../../shared/issues.js';
import type { ToolLimits, ToolManifest } from './manifest.js';

/** `[tools.limits]`: the most any tool server may ask for, and which calls may run in the server thread. */
export interface ToolLimitCaps extends ToolLimits {
  /**
   * Calls of a WebAssembly server without HTTP whose fuel is at most this run in the server thread
   * (a few µs, no thread hop); every other call runs on the server's worker thread. 0: all do.
   * Fuel runs at roughly 30–100 million units a second, so 1,000,000 holds the thread ≤ ~30 ms.
   */
  in_thread_fuel: number;
}

/**
 * Defaults that protect a server on a small machine: the built-in packages fit (64 MiB, 1e9 fuel,
 * 10 s, 8/16 MiB input/output), a deployed package asking for more must be allowed explicitly.
 */
export const DEFAULT_TOOL_CAPS: Readonly<ToolLimitCaps> = {
  memory: 128 * 1024 * 1024,
  fuel: 1_000_000_000,
  timeout_ms: 10_000,
  max_input: 8 * 1024 * 1024,
  max_output: 16 * 1024 * 1024,
  max_state: 1024 * 1024,
  in_thread_fuel: 1_000_000,
};

const KEYS = ['memory', 'fuel', 'timeout_ms', 'max_input', 'max_output', 'max_state'] as const;
type LimitKey = (typeof KEYS)[number];

/** The manifest / caxton.toml name of a limit (`timeout_ms` is written `timeout`). */
export const limitField = (k: LimitKey): string => (k === 'timeout_ms' ? 'timeout' : k);

/** A limit's value as people write it in TOML: "128MiB", "30s", 2000000000. */
export function formatLimit(k: LimitKey, v: number): string {
  if (k === 'fuel') return String(v);
  if (k === 'timeout_ms') return v % 1000 === 0 ? `${v / 1000}s` : `${v}ms`;
  for (const [unit, n] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const)
    if (v >= n && v % n === 0) return `${v / n}${unit}`;
  return `${v}B`;
}

export interface LimitViolation {
  field: string;
  requested: number;
  cap: number;
}

/**
 * The limits `manifest` runs with under `caps` and the operator's per-server `grant`. Throws
 * CaxtonError('validation_failed') listing every limit the manifest states above its cap.
 */
export function capLimits(
  manifest: ToolManifest,
  caps: Readonly<ToolLimits> | undefined,
  grant: Partial<ToolLimits> | undefined,
  file: string,
): ToolLimits {
  const out = { ...manifest.limits };
  const over: LimitViolation[] = [];
  const issues: SourceIssue[] = [];
  for (const k of KEYS) {
    const g = grant?.[k];
    if (g !== undefined) {
      out[k] = Math.min(out[k], g);
      continue;
    }
    if (!caps) continue;
    const asked = manifest.requested_limits[k];
    if (asked !== undefined && asked > caps[k]) {
      const field = `limits.${limitField(k)}`;
      over.push({ field, requested: asked, cap: caps[k] });
      issues.push({
        severity: 'error',
        code: 'above_operator_cap',
        file,
        field,
        message: `${field} = ${formatLimit(k, asked)} is above the operator's cap of ${formatLimit(k, caps[k])}`,
        suggestion: `ask for at most ${formatLimit(k, caps[k])}, or have the operator raise [tools.limits] ${limitField(k)} (every server) or [tools.${manifest.name}] limits.${limitField(k)} (this one) in caxton.toml`,
      });
      continue;
    }
    out[k] = Math.min(out[k], caps[k]);
  }
  if (issues.length > 0) {
    const lines = issues.map((i) => `${i.field}: ${i.message}; ${i.suggestion}`);
    throw new CaxtonError(
      'validation_failed',
      `${file}: the package asks for more than this server allows:\n${lines.join('\n')}`,
      { file, errors: issues, limits: over },
    );
  }
  return out;
}
