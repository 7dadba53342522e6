/**
 * Input checks shared by the memory tools, the REST API and imports. Each error names the
 * offending field as a path (`entities[2].observations[1]`), and the import reader adds the line.
 */
import { assertValueDepth } from '../shared/depth.js';
import { CaxtonError } from '../shared/errors.js';
import type { EntityInput, ObservationAddition, ObservationDeletion, Relation } from './types.js';

export interface MemoryLimits {
  /** Longest observation, in characters (default 4,096). */
  max_observation_chars: number;
  /** Longest entity name or relation endpoint (default 512). */
  max_name_chars: number;
  /** Longest entity or relation type (default 128). */
  max_type_chars: number;
  /** Observations one entity may hold (default 1,000). */
  max_observations: number;
  /** Serialized metadata of one entity, in bytes (default 16 KiB). */
  max_metadata_bytes: number;
  /** Items in one call (default 10,000; imports are not limited by this). */
  max_items: number;
}

export const DEFAULT_LIMITS: MemoryLimits = {
  max_observation_chars: 4096,
  max_name_chars: 512,
  max_type_chars: 128,
  max_observations: 1000,
  max_metadata_bytes: 16 * 1024,
  max_items: 10_000,
};

function bad(field: string, message: string): CaxtonError {
  return new CaxtonError('invalid_request', `"${field}" ${message}`, { field });
}

function obj(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(field, 'must be an object');
  return v as Record<string, unknown>;
}

export function checkArray(v: unknown, field: string, max: number): unknown[] {
  if (!Array.isArray(v)) throw bad(field, 'must be an array');
  if (v.length > max)
    throw new CaxtonError(
      'payload_too_large',
      `"${field}" has ${v.length} items, more than the ${max} one call may take`,
      { field, limit: max },
    );
  return v;
}

export function checkName(v: unknown, field: string, limits: MemoryLimits): string {
  if (typeof v !== 'string') throw bad(field, 'must be a string');
  if (v.trim() === '') throw bad(field, 'must not be empty');
  if (v.length > limits.max_name_chars)
    throw new CaxtonError(
      'payload_too_large',
      `"${field}" has ${v.length} characters, more than the ${limits.max_name_chars} a name may have`,
      { field, limit: limits.max_name_chars },
    );
  return v;
}

export function checkType(v: unknown, field: string, limits: MemoryLimits): string {
  if (typeof v !== 'string') throw bad(field, 'must be a string');
  if (v.trim() === '') throw bad(field, 'must not be empty');
  if (v.length > limits.max_type_chars)
    throw new CaxtonError(
      'payload_too_large',
      `"${field}" has ${v.length} characters, more than the ${limits.max_type_chars} a type may have`,
      { field, limit: limits.max_type_chars },
    );
  return v;
}

export function checkObservation(v: unknown, field: string, limits: MemoryLimits): string {
  if (typeof v !== 'string') throw bad(field, 'must be a string');
  if (v.trim() === '') throw bad(field, 'must not be empty');
  if (v.length > limits.max_observation_chars) {
    throw new CaxtonError(
      'payload_too_large',
      `"${field}" has ${v.length} characters, more than the ${limits.max_observation_chars} an observation may have ([memory] max_observation_chars); split it into smaller observations`,
      {
        field,
        length: v.length,
        limit: limits.max_observation_chars,
      },
    );
  }
  return v;
}

export function checkObservations(v: unknown, field: string, limits: MemoryLimits): string[] {
  if (!Array.isArray(v)) throw bad(field, 'must be an array of strings');
  if (v.length > limits.max_observations)
    throw new CaxtonError(
      'payload_too_large',
      `"${field}" has ${v.length} observations, more than the ${limits.max_observations} an entity may hold`,
      { field, limit: limits.max_observations },
    );
  return v.map((o, i) => checkObservation(o, `${field}[${i}]`, limits));
}

export function checkMetadata(v: unknown, field: string, limits: MemoryLimits): Record<string, unknown> {
  const m = obj(v, field);
  // Depth first: JSON.stringify (here, and on every later read) is recursive. Bodies are checked
  // at the HTTP layer already; this covers the memory tools, whose arguments come from a model.
  assertValueDepth(m, field);
  const bytes = Buffer.byteLength(JSON.stringify(m));
  if (bytes > limits.max_metadata_bytes)
    throw new CaxtonError(
      'payload_too_large',
      `"${field}" is ${bytes} bytes of JSON, more than the ${limits.max_metadata_bytes} allowed`,
      { field, limit: limits.max_metadata_bytes },
    );
  return m;
}

export function checkEntity(v: unknown, field: string, limits: MemoryLimits): EntityInput {
  const o = obj(v, field);
  const e: EntityInput = {
    name: checkName(o.name, `${field}.name`, limits),
    entityType: checkType(o.entityType, `${field}.entityType`, limits),
    observations:
      o.observations === undefined ? [] : checkObservations(o.observations, `${field}.observations`, limits),
  };
  if (o.metadata !== undefined) e.metadata = checkMetadata(o.metadata, `${field}.metadata`, limits);
  return e;
}

export function checkEntities(v: unknown, limits: MemoryLimits, field = 'entities'): EntityInput[] {
  return checkArray(v, field, limits.max_items).map((e, i) => checkEntity(e, `${field}[${i}]`, limits));
}

export function checkRelation(v: unknown, field: string, limits: MemoryLimits): Relation {
  const o = obj(v, field);
  return {
    from: checkName(o.from, `${field}.from`, limits),
    to: checkName(o.to, `${field}.to`, limits),
    relationType: checkType(o.relationType, `${field}.relationType`, limits),
  };
}

export function checkRelations(v: unknown, limits: MemoryLimits, field = 'relations'): Relation[] {
  return checkArray(v, field, limits.max_items).map((r, i) => checkRelation(r, `${field}[${i}]`, limits));
}

export function checkAdditions(v: unknown, limits: MemoryLimits, field = 'observations'): ObservationAddition[] {
  return checkArray(v, field, limits.max_items).map((a, i) => {
    const o = obj(a, `${field}[${i}]`);
    return {
      entityName: checkName(o.entityName, `${field}[${i}].entityName`, limits),
      contents: checkObservations(o.contents, `${field}[${i}].contents`, limits),
    };
  });
}

export function checkDeletions(v: unknown, limits: MemoryLimits, field = 'deletions'): ObservationDeletion[] {
  return checkArray(v, field, limits.max_items).map((a, i) => {
    const o = obj(a, `${field}[${i}]`);
    const obs = o.observations;
    if (!Array.isArray(obs) || !obs.every((x) => typeof x === 'string'))
      throw bad(`${field}[${i}].observations`, 'must be an array of strings');
    return { entityName: checkName(o.entityName, `${field}[${i}].entityName`, limits), observations: obs as string[] };
  });
}

export function checkNames(v: unknown, limits: MemoryLimits, field: string): string[] {
  return checkArray(v, field, limits.max_items).map((n, i) => checkName(n, `${field}[${i}]`, limits));
}
