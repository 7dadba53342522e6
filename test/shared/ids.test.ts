import { describe, expect, it } from 'vitest';
import { timeOrderedUuid } from '../../src/shared/ids.js';
import { newTraceId, ratioKeeps } from '../../src/observability/span-recorder.js';

describe('time-ordered ids', () => {
  it('a UUID version 7 carries its millisecond and sorts by it', () => {
    const a = timeOrderedUuid(1_700_000_000_000);
    const b = timeOrderedUuid(1_700_000_000_001);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.replace(/-/g, '').slice(0, 12)).toBe((1_700_000_000_000).toString(16).padStart(12, '0'));
    expect(a < b).toBe(true);
    expect(new Set(Array.from({ length: 1000 }, () => timeOrderedUuid(5))).size).toBe(1000);
  });

  it("a new trace's id is 16 bytes of hex starting with the second, and ratio sampling stays uniform", () => {
    const before = Math.floor(Date.now() / 1000);
    const id = newTraceId();
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    const secs = parseInt(id.slice(0, 8), 16);
    expect(secs).toBeGreaterThanOrEqual(before);
    expect(secs).toBeLessThanOrEqual(before + 1);
    const kept = Array.from({ length: 20_000 }, () => newTraceId()).filter((t) => ratioKeeps(t, 0.25)).length;
    expect(kept / 20_000).toBeGreaterThan(0.22);
    expect(kept / 20_000).toBeLessThan(0.28);
  });
});
