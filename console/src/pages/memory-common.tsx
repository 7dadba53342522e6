/**
 * What the memory pages share: the API's shapes, links to an entity, an observation with the
 * search's terms marked, and a refusal turned into a message under the input it concerns.
 */
import { ApiError } from '../api';

export interface Entity {
  name: string;
  entityType: string;
  observations: string[];
  scope: string;
  created_at?: string;
  updated_at?: string;
}

export interface Relation {
  from: string;
  to: string;
  relationType: string;
  scope: string;
}

export interface SearchResult {
  entity: Entity;
  score: number;
  similarity: number;
  keyword: number;
  /** The observation that matched (null: the name, the type or the meaning did) and the query terms it holds. */
  match?: { observation: number | null; terms: string[] };
}

/** /memory/entities/NAME, with ?scope= unless it is the workspace. */
export const entityPath = (name: string, scope?: string) =>
  `/memory/entities/${encodeURIComponent(name)}${scope && scope !== 'workspace' ? `?scope=${encodeURIComponent(scope)}` : ''}`;

const fold = (s: string) => s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();

/** `text` with each word matching a term (the same rule as the server: equal, or a shared stem of 4+ letters) in <mark>. */
export function Marked({ text, terms }: { text: string; terms: readonly string[] }) {
  if (terms.length === 0) return <>{text}</>;
  const parts: (string | { m: string })[] = [];
  let last = 0;
  for (const m of text.matchAll(/[\p{L}\p{N}_]+/gu)) {
    const w = fold(m[0]);
    const hit = terms.some((t) => {
      if (t === w) return true;
      const [s, l] = t.length <= w.length ? [t, w] : [w, t];
      return s.length >= 4 && l.startsWith(s);
    });
    if (!hit) continue;
    if (m.index > last) parts.push(text.slice(last, m.index));
    parts.push({ m: m[0] });
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return <>{parts.map((p, i) => (typeof p === 'string' ? p : <mark key={i}>{p.m}</mark>))}</>;
}

export type FormField = 'name' | 'type' | 'scope' | 'observation' | 'relation' | 'target' | 'form';

/** A refused write: the input it concerns and what to tell the person, in the page's words. */
export function refusal(e: unknown): { field: FormField; message: string } {
  if (!(e instanceof ApiError)) return { field: 'form', message: e instanceof Error ? e.message : String(e) };
  const d = e.details;
  if (d.reason === 'memory_scope' || d.reason === 'agent_scope') return { field: 'scope', message: e.explanation };
  if (e.status === 403) return { field: 'form', message: e.explanation };
  const f = typeof d.field === 'string' ? d.field : '';
  // The server names the body's path ("entities[0].name"): keep its complaint, not the path.
  const message = e.message.replace(/^"[^"]*" /, '');
  const said = message === '' ? e.message : message[0]!.toUpperCase() + message.slice(1);
  const field: FormField = /entityType$/.test(f)
    ? 'type'
    : /relationType$/.test(f)
      ? 'relation'
      : /\.(from|to)$/.test(f)
        ? 'target'
        : /observations|contents/.test(f)
          ? 'observation'
          : /name|entityNames/i.test(f)
            ? 'name'
            : 'form';
  return { field, message: said };
}

/** The message under one input, when the refusal concerns it. */
export function Refusal({
  error,
  field,
  id,
}: {
  error: ReturnType<typeof refusal> | undefined;
  field: FormField;
  id: string;
}) {
  if (!error || error.field !== field) return null;
  return (
    <p class="field-error" id={id} role="alert">
      {error.message}
    </p>
  );
}
