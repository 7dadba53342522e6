import { setImmediate as tick } from 'node:timers/promises';

export interface MemorySnapshot {
  heapUsed: number;
  heapTotal: number;
  rss: number;
  external: number;
  arrayBuffers: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

/**
 * Collects garbage until the heap settles: several full GCs with event-loop turns between them,
 * so finalizers, weak references and pending I/O callbacks get their chance to release memory.
 */
export async function settle(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await tick();
    gc?.();
  }
  await new Promise((r) => setTimeout(r, 50));
  gc?.();
}

/** A memory snapshot after `settle()`. */
export async function snapshot(): Promise<MemorySnapshot> {
  await settle();
  const m = process.memoryUsage();
  return {
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    rss: m.rss,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
  };
}

export const KB = 1024;
export const MB = 1024 * 1024;
