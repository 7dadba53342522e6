/**
 * Data for the memory benchmarks (memory.ts, memory-postgres.ts): entity texts built from a fixed
 * vocabulary, an embedder that replays precomputed vectors, and realistic synthetic vectors made
 * from real ones.
 */
import type { Embedder } from '../../src/memory/embedding/index.js';
import type { EntityWrite } from '../../src/memory/index.js';
import { pick } from './random.js';

export const SUBJECTS = [
  'The billing service',
  'Our CI pipeline',
  'Alice from finance',
  'The Berlin office',
  'The mobile app',
  'Customer 4711',
  'The data warehouse',
  'Project Falcon',
  'The on-call rotation',
  'The marketing site',
];
export const FACTS = [
  'was migrated to PostgreSQL last spring after repeated disk pressure',
  'prefers short written updates over meetings and replies within a day',
  'fails intermittently when the integration tests run in parallel',
  'moved to a new building with a larger kitchen and bike storage',
  'reached a million monthly users after the redesign shipped',
  'asked for an invoice in euros and a copy sent to their accountant',
  'is rebuilt every night from the event log and takes two hours',
  'was delayed by three weeks because the vendor changed their API',
  'rotates weekly, and handovers happen on Monday mornings',
  'is served from a CDN and deployed on every merge to main',
];

/** Entity `i` of the workspace scope: two observations drawn from SUBJECTS × FACTS. */
export function entityAt(rand: () => number, i: number): EntityWrite {
  return {
    scope: 'workspace',
    name: `entity-${i}`,
    entityType: pick(rand, ['note', 'person', 'service', 'project']),
    observations: [`${pick(rand, SUBJECTS)} ${pick(rand, FACTS)}.`, `${pick(rand, SUBJECTS)} ${pick(rand, FACTS)}.`],
    metadata: {},
  };
}

/** A question about the same vocabulary (the search queries). */
export function queryText(rand: () => number): string {
  return `What do we know about ${pick(rand, SUBJECTS).toLowerCase()}? ${pick(rand, FACTS)}`;
}

/** Serves precomputed vectors in call order (the stores embed in input order). */
export class Replay implements Embedder {
  queue: Float32Array[] = [];
  constructor(
    readonly model: string,
    readonly dimensions: number,
  ) {}
  async embed(texts: string[]): Promise<Float32Array[]> {
    return texts.map(() => this.queue.shift()!);
  }
  async close(): Promise<void> {}
}

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** A realistic synthetic vector: a blend of two real ones (mostly the first) plus noise, renormalized. */
export function synthetic(
  real: Float32Array[],
  rand: () => number,
  out = new Float32Array(real[0]!.length),
): Float32Array {
  const a = real[Math.floor(rand() * real.length)]!;
  const b = real[Math.floor(rand() * real.length)]!;
  const t = rand() * 0.4;
  let n = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = (1 - t) * a[i]! + t * b[i]! + 0.015 * gaussian(rand);
    n += out[i]! * out[i]!;
  }
  n = Math.sqrt(n);
  for (let i = 0; i < out.length; i++) out[i]! /= n;
  return out;
}
