/**
 * Export and import of the knowledge graph, in two formats:
 *
 *  - **Versioned JSON** (Caxton's own): `{ format: "caxton-memory", version: 1, exported_at,
 *    embedding: { model, dimensions } | null, scopes, entities: [{ scope, name, entityType,
 *    observations, metadata, created_at, updated_at }], relations: [{ scope, from, to,
 *    relationType }] }`. Vectors are not exported: an import re-embeds with the importing
 *    server's model.
 *  - **The MCP reference memory server's JSONL** (its `memory.jsonl`): one object per line,
 *    `{"type":"entity","name","entityType","observations"}` or
 *    `{"type":"relation","from","to","relationType"}`; it has no scopes, so one scope is chosen
 *    on export and on import.
 *
 * An import is checked in full before anything is written; an error names the line (JSONL) or
 * the field path (JSON). Then it is embedded and written in ONE transaction (MemoryStore.merge):
 * it lands whole or not at all, also across a crash. Existing entities are merged (observations
 * added, metadata merged, type replaced); existing relations are kept.
 */
import { MAX_INPUT_DEPTH, assertValueDepth } from '../shared/depth.js';
import { CaxtonError, isCaxtonError } from '../shared/errors.js';
import { jsonProblemError, scanJsonText } from '../shared/json-text.js';
import { parseScope } from './scope.js';
import type { MemoryBackend } from './backend.js';
import type { EntityWrite, StoredEntity, StoredRelation } from './types.js';
import { checkMetadata, checkName, checkObservations, checkType } from './memory-validate.js';

export const EXPORT_FORMAT = 'caxton-memory';
export const EXPORT_VERSION = 1;

export interface MemoryExport {
  format: typeof EXPORT_FORMAT;
  version: typeof EXPORT_VERSION;
  exported_at: string;
  embedding: { model: string; dimensions: number } | null;
  scopes: string[];
  entities: StoredEntity[];
  relations: StoredRelation[];
}

export type ImportFormat = 'json' | 'jsonl';

export interface ImportOptions {
  /** Default: detected (a JSON object with `format` is Caxton's JSON, anything else JSONL). */
  format?: ImportFormat;
  /** JSONL: the scope to import into (required). JSON: moves everything into this scope. */
  scope?: string;
  onProgress?: (done: number, total: number) => void;
}

export interface ImportResult {
  format: ImportFormat;
  entities: number;
  relations: number;
  entities_created: number;
  entities_updated: number;
  relations_created: number;
}

/** The graph of `scopes` (default: every scope) as versioned JSON. */
export async function exportJson(store: MemoryBackend, scopes?: string[]): Promise<MemoryExport> {
  const list = scopes ?? (await store.scopes());
  const g = await store.readGraph(list);
  const stats = (await store.stats()).embedding;
  return {
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    exported_at: new Date().toISOString(),
    embedding: stats ? { model: stats.model, dimensions: stats.dimensions } : null,
    scopes: list,
    entities: g.entities.map((e) => ({
      scope: e.scope,
      name: e.name,
      entityType: e.entityType,
      observations: e.observations,
      metadata: e.metadata,
      created_at: e.created_at,
      updated_at: e.updated_at,
    })),
    relations: g.relations.map((r) => ({ scope: r.scope, from: r.from, to: r.to, relationType: r.relationType })),
  };
}

/** One scope in the reference server's JSONL (lines joined by "\n", as it writes them). */
export async function exportJsonl(store: MemoryBackend, scope: string): Promise<string> {
  const g = await store.readGraph([scope]);
  return [
    ...g.entities.map((e) =>
      JSON.stringify({ type: 'entity', name: e.name, entityType: e.entityType, observations: e.observations }),
    ),
    ...g.relations.map((r) =>
      JSON.stringify({ type: 'relation', from: r.from, to: r.to, relationType: r.relationType }),
    ),
  ].join('\n');
}

function invalid(message: string, details: Record<string, unknown>): CaxtonError {
  return new CaxtonError('invalid_request', message, details);
}

/** Re-raises a field error with the line it comes from. */
function atLine<T>(line: number, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (isCaxtonError(e))
      throw new CaxtonError(e.code, `line ${line}: ${e.message}`, { ...(e.details as object), line }, { cause: e });
    throw e;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses the reference JSONL into writes for `scope`. Blank lines are skipped, as the reference server does. */
export function parseJsonl(
  text: string,
  scope: string,
  store: Pick<MemoryBackend, 'limits'>,
): { entities: EntityWrite[]; relations: StoredRelation[] } {
  const L = store.limits;
  const entities: EntityWrite[] = [];
  const relations: StoredRelation[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') continue;
    const line = i + 1;
    // Scanned before JSON.parse: depth (a line nested 100,000 deep would overflow whatever walks
    // it next), duplicate and prototype keys; each error names the line.
    const problem = scanJsonText(raw, { maxDepth: MAX_INPUT_DEPTH });
    if (problem) {
      const e = jsonProblemError(problem, `line ${line}`);
      const message =
        problem.kind === 'syntax'
          ? `line ${line}: not valid JSON (column ${problem.column}: ${problem.problem})`
          : e.message;
      throw new CaxtonError(e.code, message, { ...(e.details as object), line, column: problem.column });
    }
    const item: unknown = JSON.parse(raw);
    if (!isObject(item))
      throw invalid(`line ${line}: expected a JSON object with "type": "entity" or "relation"`, { line });
    atLine(line, () => {
      if (item.type === 'entity') {
        entities.push({
          scope,
          name: checkName(item.name, 'name', L),
          entityType: checkType(item.entityType, 'entityType', L),
          observations: item.observations === undefined ? [] : checkObservations(item.observations, 'observations', L),
          metadata: {},
        });
      } else if (item.type === 'relation') {
        relations.push({
          scope,
          from: checkName(item.from, 'from', L),
          to: checkName(item.to, 'to', L),
          relationType: checkType(item.relationType, 'relationType', L),
        });
      } else
        throw invalid(`"type" must be "entity" or "relation" (got ${JSON.stringify(item.type)})`, { field: 'type' });
    });
  }
  return { entities, relations };
}

function timestamp(v: unknown, field: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || Number.isNaN(Date.parse(v)))
    throw invalid(`"${field}" must be an ISO 8601 date-time`, { field });
  return v;
}

/** Parses Caxton's versioned JSON into writes (every scope checked; `scope` moves them all into one). */
export function parseJsonExport(
  doc: unknown,
  store: Pick<MemoryBackend, 'limits'>,
  scope?: string,
): { entities: EntityWrite[]; relations: StoredRelation[] } {
  const L = store.limits;
  if (!isObject(doc)) throw invalid('the import is not a JSON object', { field: '' });
  if (doc.format !== EXPORT_FORMAT)
    throw invalid(
      `"format" must be "${EXPORT_FORMAT}" (got ${JSON.stringify(doc.format)}); for the MCP reference server's memory.jsonl, import it as JSONL`,
      { field: 'format' },
    );
  if (doc.version !== EXPORT_VERSION) {
    throw invalid(
      `unsupported export version ${JSON.stringify(doc.version)} in "version": this server reads version ${EXPORT_VERSION}`,
      {
        field: 'version',
        version: doc.version,
        supported: [EXPORT_VERSION],
      },
    );
  }
  if (!Array.isArray(doc.entities)) throw invalid('"entities" must be an array', { field: 'entities' });
  if (doc.relations !== undefined && !Array.isArray(doc.relations))
    throw invalid('"relations" must be an array', { field: 'relations' });
  const entities = doc.entities.map((raw, i): EntityWrite => {
    const f = `entities[${i}]`;
    if (!isObject(raw)) throw invalid(`"${f}" must be an object`, { field: f });
    const created = timestamp(raw.created_at, `${f}.created_at`);
    const updated = timestamp(raw.updated_at, `${f}.updated_at`);
    return {
      scope: scope ?? parseScope(raw.scope, { field: `${f}.scope` }),
      name: checkName(raw.name, `${f}.name`, L),
      entityType: checkType(raw.entityType, `${f}.entityType`, L),
      observations: raw.observations === undefined ? [] : checkObservations(raw.observations, `${f}.observations`, L),
      metadata: raw.metadata === undefined ? {} : checkMetadata(raw.metadata, `${f}.metadata`, L),
      ...(created !== undefined && { created_at: created }),
      ...(updated !== undefined && { updated_at: updated }),
    };
  });
  const relations = ((doc.relations ?? []) as unknown[]).map((raw, i): StoredRelation => {
    const f = `relations[${i}]`;
    if (!isObject(raw)) throw invalid(`"${f}" must be an object`, { field: f });
    return {
      scope: scope ?? parseScope(raw.scope, { field: `${f}.scope` }),
      from: checkName(raw.from, `${f}.from`, L),
      to: checkName(raw.to, `${f}.to`, L),
      relationType: checkType(raw.relationType, `${f}.relationType`, L),
    };
  });
  return { entities, relations };
}

/** Which format a text is: a JSON object with `format` is Caxton's JSON; anything else is JSONL. */
export function detectFormat(text: string): ImportFormat {
  const t = text.trimStart();
  if (!t.startsWith('{')) return 'jsonl';
  // One scan decides: a single valid JSON value (of any depth: the import parser reports that)
  // is a document; several JSON lines, or malformed text, go to JSONL parsing, which names the line.
  if (scanJsonText(t, { duplicateKeys: false, prototypeKeys: false }) === undefined) {
    const v: unknown = JSON.parse(t);
    return isObject(v) && 'format' in v ? 'json' : 'jsonl';
  }
  return /^\{\s*"format"/.test(t) ? 'json' : 'jsonl';
}

/** An import checked in full and ready to write (`runImport`); parsing errors are thrown by `prepareImport`. */
export interface PreparedImport {
  format: ImportFormat;
  entities: EntityWrite[];
  relations: StoredRelation[];
}

/** Checks the whole input (format, version, every field, limits) without writing anything. */
export function prepareImport(
  store: Pick<MemoryBackend, 'limits'>,
  input: string | MemoryExport,
  opts: Omit<ImportOptions, 'onProgress'> = {},
): PreparedImport {
  let format: ImportFormat;
  let parsed: { entities: EntityWrite[]; relations: StoredRelation[] };
  if (typeof input !== 'string') {
    // An object already parsed (a REST body or a caller's value): bounded before anything walks it.
    assertValueDepth(input, 'the import');
    format = 'json';
    parsed = parseJsonExport(input, store, opts.scope);
  } else {
    format = opts.format ?? detectFormat(input);
    if (format === 'json') {
      const problem = scanJsonText(input, { maxDepth: MAX_INPUT_DEPTH });
      if (problem) {
        const e = jsonProblemError(problem, 'the import');
        throw new CaxtonError(e.code, e.message, { field: problem.path ?? '', ...(e.details as object) });
      }
      const doc: unknown = JSON.parse(input);
      parsed = parseJsonExport(doc, store, opts.scope);
    } else {
      if (opts.scope === undefined)
        throw invalid('a JSONL import needs the scope to import into ("scope")', { field: 'scope' });
      parsed = parseJsonl(input, opts.scope, store);
    }
  }
  return { format, ...parsed };
}

/** Embeds and writes a prepared import in one transaction; `onProgress` follows the embedding. */
export async function runImport(
  store: MemoryBackend,
  prepared: PreparedImport,
  onProgress?: (done: number, total: number) => void,
): Promise<ImportResult> {
  const r = await store.merge(prepared.entities, prepared.relations, onProgress);
  return { format: prepared.format, entities: prepared.entities.length, relations: prepared.relations.length, ...r };
}

/** Checks the whole input, then embeds and writes it in one transaction. */
export async function importMemory(
  store: MemoryBackend,
  input: string | MemoryExport,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  return runImport(store, prepareImport(store, input, opts), opts.onProgress);
}
