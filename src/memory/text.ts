/**
 * The graph's computations (graph.ts) and what both storages must compute the same way, in
 * TypeScript: the text an entity is embedded from, the words keyword matching compares, how a
 * hybrid score is made and ranked, and the breadth-first walk of a traversal (the graph supplies
 * the storage's relation lookups).
 */
import { CaxtonError } from '../shared/errors.js';
import type {
  Entity,
  MemoryStats,
  SearchHit,
  SearchMode,
  SearchQuery,
  StoredEntity,
  StoredRelation,
  TraverseQuery,
  TraverseResult,
} from './types.js';

/** Only the first 256 tokens count for the local model; never send the embedder more than this. */
export const MAX_EMBED_CHARS = 8000;
/** Texts per embedder call. */
export const EMBED_BATCH = 256;

/** The text an entity is embedded from: name, type, then its observations, one per line. */
export function entityText(e: Pick<Entity, 'name' | 'entityType' | 'observations'>): string {
  const t = [`${e.name} (${e.entityType})`, ...e.observations].join('\n');
  return t.length > MAX_EMBED_CHARS ? t.slice(0, MAX_EMBED_CHARS) : t;
}

const STOPWORDS = new Set(
  'a an and are as at be by did do does for from had has have how i in is it its of on or that the this to was were what when where which who whom why will with you your'.split(
    ' ',
  ),
);

/** Lower-cased, accent-free words of a text (letters and digits). */
export function words(text: string): string[] {
  return (
    text
      .normalize('NFD')
      .replace(/\p{M}/gu, '')
      .toLowerCase()
      .match(/[\p{L}\p{N}_]+/gu) ?? []
  );
}

/** The distinct words of an entity that keyword matching looks at (name, type, observations). */
export function entityWords(e: Pick<Entity, 'name' | 'entityType' | 'observations'>): string[] {
  return [...new Set(words(`${e.name} ${e.entityType} ${e.observations.join(' ')}`))];
}

/** The query's words without stop words (all of them when only stop words are left). */
export function queryTerms(query: string): string[] {
  const all = [...new Set(words(query))];
  const kept = all.filter((w) => !STOPWORDS.has(w));
  return kept.length > 0 ? kept : all;
}

/** Whether a query term matches a word: the same, or one a prefix of the other of at least 4 letters ("work", "works"). */
function termMatches(term: string, word: string): boolean {
  if (term === word) return true;
  const [short, long] = term.length <= word.length ? [term, word] : [word, term];
  return short.length >= 4 && long.startsWith(short);
}

/**
 * Which observation a search hit matched (the one holding most of the query's terms, the first on
 * a tie) and the terms it holds, so a result can show that observation with its match marked
 * rather than the entity's first one. `observation` is null when no observation holds a term (the
 * hit matched by its name, its type or by meaning).
 */
export function matchedObservation(
  observations: readonly string[],
  query: string,
): { observation: number | null; terms: string[] } {
  const terms = queryTerms(query);
  let best: { observation: number | null; terms: string[] } = { observation: null, terms: [] };
  observations.forEach((o, i) => {
    const ws = words(o);
    const held = terms.filter((t) => ws.some((w) => termMatches(t, w)));
    if (held.length > best.terms.length) best = { observation: i, terms: held };
  });
  return best;
}

export function chunks<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** A search's settled parameters (limit clamped to 1..100, defaults applied); throws on an empty query. */
export interface SearchPlan {
  limit: number;
  min: number;
  mode: SearchMode;
  /** Candidates each side (semantic, keyword) brings before scoring. */
  pool: number;
  terms: string[];
}

/** The totals and per-scope counts of `stats()` from per-scope entity (`n`, observations `o`) and relation counts. */
export function countsByScope(
  entityRows: readonly { scope: string; n: number; o: number }[],
  relationRows: readonly { scope: string; n: number }[],
): Pick<MemoryStats, 'entities' | 'relations' | 'observations' | 'by_scope'> {
  const by_scope: MemoryStats['by_scope'] = {};
  let entities = 0;
  let observations = 0;
  let relations = 0;
  for (const r of entityRows) {
    by_scope[r.scope] = { entities: r.n, relations: 0, observations: r.o };
    entities += r.n;
    observations += r.o;
  }
  for (const r of relationRows) {
    (by_scope[r.scope] ??= { entities: 0, relations: 0, observations: 0 }).relations = r.n;
    relations += r.n;
  }
  return { entities, relations, observations, by_scope };
}

/** Keyword search: terms held by more entities than this bring no candidates of their own (the SQLite storage's rareTermDocs; graph.ts decides). */
export const RARE_TERM_DOCS = 5_000;

export function planSearch(q: SearchQuery): SearchPlan {
  if (typeof q.query !== 'string' || q.query.trim() === '')
    throw new CaxtonError('invalid_request', '"query" must be a non-empty string', { field: 'query' });
  const limit = Math.min(Math.max(1, Math.floor(q.limit ?? 10)), 100);
  return {
    limit,
    min: q.min_similarity ?? 0,
    mode: q.mode ?? 'hybrid',
    pool: Math.max(limit * 4, 20),
    terms: queryTerms(q.query),
  };
}

/**
 * Scores candidates and returns the best `limit`: semantic = cosine; keyword = share of the
 * query's terms among the entity's words; hybrid = cos + w · keyword · (1 − max(0, cos)).
 */
export function rankHits(
  plan: SearchPlan,
  keywordWeight: number,
  candidates: Iterable<{ entity: StoredEntity; similarity: number }>,
): SearchHit[] {
  const hits: SearchHit[] = [];
  for (const { entity, similarity } of candidates) {
    let keyword = 0;
    if (plan.mode !== 'semantic' && plan.terms.length > 0) {
      const have = new Set(entityWords(entity));
      keyword = plan.terms.filter((t) => have.has(t)).length / plan.terms.length;
    }
    const score =
      plan.mode === 'semantic'
        ? similarity
        : plan.mode === 'keyword'
          ? keyword
          : similarity + keywordWeight * keyword * (1 - Math.max(0, similarity));
    if (score >= plan.min && score > 0)
      hits.push({ entity, score: round(score), similarity: round(similarity), keyword: round(keyword) });
  }
  hits.sort((a, b) => b.score - a.score || a.entity.name.localeCompare(b.entity.name));
  return hits.slice(0, plan.limit);
}

/** Where a traversal looks up relations and entities (one scope). */
export interface TraverseSource {
  getEntity(scope: string, name: string): Promise<StoredEntity | undefined>;
  /** Relations from `name` ordered by (to, type) when `out`; to `name` ordered by (from, type) otherwise. */
  relations(scope: string, name: string, side: 'out' | 'in'): Promise<StoredRelation[]>;
  /** The named entities of the scope (any order). */
  entities(scope: string, names: readonly string[]): Promise<StoredEntity[]>;
}

/** Breadth-first walk from `q.from` along relations (of the given types), up to `max_depth` hops. */
export async function traverseGraph(src: TraverseSource, q: TraverseQuery): Promise<TraverseResult> {
  const maxDepth = Math.min(Math.max(0, Math.floor(q.max_depth ?? 2)), 10);
  const limit = Math.max(1, q.limit ?? 1000);
  const dir = q.direction ?? 'out';
  const root = await src.getEntity(q.scope, q.from);
  if (!root)
    throw new CaxtonError('not_found', `no entity named "${q.from}" in scope ${q.scope}`, {
      field: 'from',
      scope: q.scope,
    });
  const types = q.relation_types && q.relation_types.length > 0 ? new Set(q.relation_types) : undefined;
  const depthOf = new Map<string, number>([[root.name, 0]]);
  const order: string[] = [root.name];
  const relations: StoredRelation[] = [];
  const seenRel = new Set<string>();
  let frontier = [root.name];
  let truncated = false;
  for (let depth = 1; depth <= maxDepth && frontier.length > 0 && !truncated; depth++) {
    const next: string[] = [];
    for (const name of frontier) {
      const rels = [
        ...(dir !== 'in' ? await src.relations(q.scope, name, 'out') : []),
        ...(dir !== 'out' ? await src.relations(q.scope, name, 'in') : []),
      ];
      for (const r of rels) {
        if (types && !types.has(r.relationType)) continue;
        const key = JSON.stringify([r.from, r.to, r.relationType]);
        if (!seenRel.has(key)) {
          seenRel.add(key);
          relations.push(r);
        }
        const other = r.from === name ? r.to : r.from;
        if (depthOf.has(other)) continue;
        if (order.length >= limit) {
          truncated = true;
          break;
        }
        depthOf.set(other, depth);
        order.push(other);
        next.push(other);
      }
      if (truncated) break;
    }
    frontier = next;
  }
  const found = new Map((await src.entities(q.scope, order)).map((e) => [e.name, e]));
  const entities = order.filter((n) => found.has(n)).map((n) => ({ ...found.get(n)!, depth: depthOf.get(n)! }));
  return { root: root.name, entities, relations, truncated };
}

/** Merges the fields of duplicate entries (same scope and name) of an import, later ones winning. */
export function foldDuplicates<
  T extends {
    scope: string;
    name: string;
    entityType: string;
    observations: string[];
    metadata: Record<string, unknown>;
  },
>(entities: readonly T[]): T[] {
  const byKey = new Map<string, T>();
  for (const e of entities) {
    const key = JSON.stringify([e.scope, e.name]);
    const prev = byKey.get(key);
    if (!prev) byKey.set(key, { ...e, observations: [...new Set(e.observations)], metadata: { ...e.metadata } });
    else {
      prev.entityType = e.entityType;
      prev.observations = [...new Set([...prev.observations, ...e.observations])];
      prev.metadata = { ...prev.metadata, ...e.metadata };
    }
  }
  return [...byKey.values()];
}
