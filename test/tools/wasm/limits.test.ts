/**
 * The operator's caps over tool manifests (src/tools/servers/manifest-limits.ts) as a unit: how a limit is
 * named and written in the messages, the default caps, and capLimits' rule per limit (grant,
 * refusal above the cap, lowering what the manifest leaves out). The end-to-end path through
 * ToolServerManager is test/tools/servers/limits.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { CaxtonError } from '../../../src/shared/errors.js';
import {
  capLimits,
  DEFAULT_TOOL_CAPS,
  DEFAULT_TOOL_LIMITS,
  formatLimit,
  parseToolManifestOrThrow,
  type ToolLimits,
} from '../../../src/tools/servers/index.js';
import { limitField } from '../../../src/tools/servers/manifest-limits.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const FILE = 'pkg/caxton-tool.toml';

const manifest = (limits = '') =>
  parseToolManifestOrThrow(
    `name = "calc"\nversion = "1.0.0"\ndescription = "d"\n[[tools]]\nname = "ok"\ndescription = "ok"\n${limits ? `[limits]\n${limits}\n` : ''}`,
    FILE,
  ).manifest;

function refusal(fn: () => unknown): CaxtonError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CaxtonError) return e;
    throw e;
  }
  throw new Error('expected capLimits to refuse the manifest');
}

describe('limitField and formatLimit: a limit as the manifest and caxton.toml write it', () => {
  it('names timeout_ms "timeout" and every other limit by its key', () => {
    expect(limitField('timeout_ms')).toBe('timeout');
    expect(
      ['memory', 'fuel', 'max_input', 'max_output', 'max_state'].map((k) => limitField(k as keyof ToolLimits)),
    ).toEqual(['memory', 'fuel', 'max_input', 'max_output', 'max_state']);
  });

  it('writes fuel as a plain number, even when it is a multiple of 1024', () => {
    expect(formatLimit('fuel', 2_000_000_000)).toBe('2000000000');
    expect(formatLimit('fuel', GiB)).toBe(String(GiB));
  });

  it('writes a timeout in seconds when whole, else in milliseconds', () => {
    expect(formatLimit('timeout_ms', 30_000)).toBe('30s');
    expect(formatLimit('timeout_ms', 1_000)).toBe('1s');
    expect(formatLimit('timeout_ms', 1_500)).toBe('1500ms');
    expect(formatLimit('timeout_ms', 999)).toBe('999ms');
  });

  it('writes sizes in the largest unit that divides them, else in bytes', () => {
    expect(formatLimit('memory', GiB)).toBe('1GiB');
    expect(formatLimit('memory', 3 * GiB)).toBe('3GiB');
    expect(formatLimit('memory', 128 * MiB)).toBe('128MiB');
    expect(formatLimit('max_output', 1536 * MiB)).toBe('1536MiB');
    expect(formatLimit('max_input', KiB)).toBe('1KiB');
    expect(formatLimit('max_input', 64 * KiB)).toBe('64KiB');
    expect(formatLimit('max_state', 1536)).toBe('1536B');
    expect(formatLimit('max_state', 1000)).toBe('1000B');
    expect(formatLimit('max_state', 0)).toBe('0B');
  });
});

describe('DEFAULT_TOOL_CAPS', () => {
  it('are the documented defaults (128 MiB, 1e9 fuel, 10 s, 8/16 MiB in/out, 1 MiB state, 1e6 in-thread fuel)', () => {
    expect(DEFAULT_TOOL_CAPS).toEqual({
      memory: 128 * MiB,
      fuel: 1_000_000_000,
      timeout_ms: 10_000,
      max_input: 8 * MiB,
      max_output: 16 * MiB,
      max_state: MiB,
      in_thread_fuel: 1_000_000,
    });
  });
});

describe('capLimits', () => {
  it('without caps or grant, runs with the manifest limits as they are', () => {
    const m = manifest('memory = "1GiB"\nfuel = 2_000_000_000');
    expect(capLimits(m, undefined, undefined, FILE)).toEqual({
      ...DEFAULT_TOOL_LIMITS,
      memory: GiB,
      fuel: 2_000_000_000,
    });
  });

  it('accepts a stated limit at or below its cap and keeps it', () => {
    const m = manifest('memory = "128MiB"\ntimeout = "2s"\nmax_input = "64KiB"');
    expect(capLimits(m, DEFAULT_TOOL_CAPS, undefined, FILE)).toEqual({
      ...DEFAULT_TOOL_LIMITS,
      memory: 128 * MiB,
      timeout_ms: 2_000,
      max_input: 64 * KiB,
    });
  });

  it('lowers a limit the manifest leaves out to the cap when the cap is smaller, and keeps the default when it is not', () => {
    const caps = { ...DEFAULT_TOOL_CAPS, memory: 4 * MiB, max_input: 64 * KiB };
    expect(capLimits(manifest(), caps, undefined, FILE)).toEqual({
      ...DEFAULT_TOOL_LIMITS,
      memory: 4 * MiB,
      max_input: 64 * KiB,
    });
  });

  it("lets the operator's grant decide for its limits: the smaller of it and the manifest's, even above the cap", () => {
    const m = manifest('memory = "1GiB"\ntimeout = "30s"');
    const caps = { ...DEFAULT_TOOL_CAPS, max_input: 64 * KiB };
    const grant = { memory: 512 * MiB, timeout_ms: 60_000, max_output: 64 * KiB };
    expect(capLimits(m, caps, grant, FILE)).toEqual({
      memory: 512 * MiB,
      timeout_ms: 30_000,
      max_output: 64 * KiB,
      fuel: DEFAULT_TOOL_LIMITS.fuel,
      max_state: DEFAULT_TOOL_LIMITS.max_state,
      max_input: 64 * KiB,
    });
  });

  it('refuses every stated limit above its cap (validation_failed), naming field, value, cap and how to raise it', () => {
    const m = manifest('memory = "1GiB"\nfuel = 1_000_000_001\ntimeout = "10001ms"\nmax_input = "8MiB"');
    const e = refusal(() => capLimits(m, DEFAULT_TOOL_CAPS, undefined, FILE));
    expect(e.code).toBe('validation_failed');
    expect(e.message).toBe(
      `${FILE}: the package asks for more than this server allows:\n` +
        "limits.memory: limits.memory = 1GiB is above the operator's cap of 128MiB; ask for at most 128MiB, or have the operator raise [tools.limits] memory (every server) or [tools.calc] limits.memory (this one) in caxton.toml\n" +
        "limits.fuel: limits.fuel = 1000000001 is above the operator's cap of 1000000000; ask for at most 1000000000, or have the operator raise [tools.limits] fuel (every server) or [tools.calc] limits.fuel (this one) in caxton.toml\n" +
        "limits.timeout: limits.timeout = 10001ms is above the operator's cap of 10s; ask for at most 10s, or have the operator raise [tools.limits] timeout (every server) or [tools.calc] limits.timeout (this one) in caxton.toml",
    );
    expect(e.details).toEqual({
      file: FILE,
      limits: [
        { field: 'limits.memory', requested: GiB, cap: 128 * MiB },
        { field: 'limits.fuel', requested: 1_000_000_001, cap: 1_000_000_000 },
        { field: 'limits.timeout', requested: 10_001, cap: 10_000 },
      ],
      errors: ['memory', 'fuel', 'timeout'].map((f) => ({
        severity: 'error',
        code: 'above_operator_cap',
        file: FILE,
        field: `limits.${f}`,
        message: expect.stringContaining(`limits.${f} = `),
        suggestion: expect.stringContaining(`[tools.calc] limits.${f} (this one)`),
      })),
    });
  });

  it('a grant for a limit spares it the cap check', () => {
    const m = manifest('memory = "1GiB"');
    expect(capLimits(m, DEFAULT_TOOL_CAPS, { memory: 2 * GiB }, FILE).memory).toBe(GiB);
  });
});
