/**
 * Memory (/ui/memory, /ui/memory/entities/:name): browsing and search (memory-browse.tsx), one
 * entity with its observations, relations and neighbourhood graph (memory-entity.tsx).
 */
import type { PageProps } from '../pages';
import { Browse } from './memory-browse';
import { EntityPage } from './memory-entity';

export default function Memory({ params, query }: PageProps) {
  return params.name !== undefined ? <EntityPage name={params.name} query={query} /> : <Browse query={query} />;
}
