/**
 * Memory (/ui/memory, /ui/memory/entities/:name): browsing and search (memory-browse.tsx), one
 * entity with its observations, relations and neighbourhood graph (memory-entity.tsx).
 */
import type { PageProps } from '../pages';
import { Browse } from './memory-browse';
import { EntityPage } from './memory-entity';

export default function Memory({ params, query }: PageProps) {
  // One page per entity (name and scope): another entity starts from nothing, so its heading never
  // stands over the previous entity's observations, graph and buttons while it loads.
  if (params.name === undefined) return <Browse query={query} />;
  const scope = query.get('scope') ?? '';
  return <EntityPage key={JSON.stringify([scope, params.name])} name={params.name} query={query} />;
}
