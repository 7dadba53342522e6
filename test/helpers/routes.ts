import type { FastifyInstance } from 'fastify';

export interface RouteRow {
  method: string;
  /** The path with every parameter written `:` (the router prints `/:name|:server` where two names share a node). */
  path: string;
}

/** A route URL as registered (`/api/v1/tools/:server/:tool/call`) with its parameter names dropped, for comparing with the router's view. */
export function normalizeRoute(url: string): string {
  return url.replace(/:[^/]+/g, ':');
}

/**
 * Every (method, path) the app's router serves, read from `printRoutes({ commonPrefix: false })`
 * (fastify has no route list API): a tree whose lines are `├── /segment (GET, POST)`, four
 * characters of indentation per level, each line's path continuing its parent's.
 */
export function routeTable(app: FastifyInstance): RouteRow[] {
  const rows: RouteRow[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^(.*?)[├└]── (.*)$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    const node = /^(.*?)(?: \(([A-Z, ]+)\))?$/.exec(m[2]!)!;
    stack.length = depth;
    stack.push(node[1]!);
    const path = normalizeRoute(stack.join(''));
    for (const method of (node[2] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''))
      rows.push({ method, path });
  }
  return rows;
}
