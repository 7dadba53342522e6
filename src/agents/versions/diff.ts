/**
 * A readable difference between two versions of an agent: the fields of the definition that
 * changed (dotted paths, with both values), and a unified diff of the text each was deployed from
 * (jsdiff's `createTwoFilesPatch`), which is how a person reads a prompt edit.
 */
import { createTwoFilesPatch } from 'diff';
import type { AgentVersionDetail } from './versions.js';

export interface FieldChange {
  /** Dotted path in the definition, e.g. `llm.model`, `system_prompt`, `parameters.tone`. */
  field: string;
  /** Absent: the field was added. */
  from?: unknown;
  /** Absent: the field was removed. */
  to?: unknown;
}

export interface VersionDiff {
  agent: string;
  from: number;
  to: number;
  identical: boolean;
  changes: FieldChange[];
  /** Unified diff of the deployed texts (`--- NAME@A`, `+++ NAME@B`); empty when they are equal. */
  source_diff: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Depth-first over objects; arrays and scalars compare as whole values (a tool list is read whole). */
function changes(a: unknown, b: unknown, path: string, out: FieldChange[]): void {
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      const p = path ? `${path}.${k}` : k;
      if (!(k in a)) out.push({ field: p, to: b[k] });
      else if (!(k in b)) out.push({ field: p, from: a[k] });
      else changes(a[k], b[k], p, out);
    }
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ field: path, from: a, to: b });
}

export function diffVersions(a: AgentVersionDetail, b: AgentVersionDetail): VersionDiff {
  const out: FieldChange[] = [];
  changes(a.definition, b.definition, '', out);
  const source_diff =
    a.source === b.source
      ? ''
      : createTwoFilesPatch(
          `${a.agent}@${a.version}`,
          `${b.agent}@${b.version}`,
          a.source,
          b.source,
          a.deployed_at,
          b.deployed_at,
          { context: 3 },
        );
  return { agent: b.agent, from: a.version, to: b.version, identical: out.length === 0, changes: out, source_diff };
}
