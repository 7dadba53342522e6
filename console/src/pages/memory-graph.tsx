/**
 * An entity's neighbourhood as an inline SVG graph (Memory page): a small force layout computed
 * once per graph (deterministic: the same graph draws the same way), the centre entity fixed in
 * the middle. Each node is a link: Tab reaches it, Enter or a click opens that entity, which
 * re-centres the graph on it.
 */
import { useMemo } from 'preact/hooks';
import { href, navigate } from '../router';

export interface GraphNode {
  name: string;
  entityType: string;
  depth: number;
}

export interface GraphEdge {
  from: string;
  to: string;
  relationType: string;
}

interface Placed extends GraphNode {
  x: number;
  y: number;
}

const W = 640;
const H = 420;

/** Positions for the nodes: repulsion between every pair, springs along edges, the root pinned at the centre. */
export function layout(nodes: GraphNode[], edges: GraphEdge[], root: string): Placed[] {
  const n = nodes.length;
  const index = new Map(nodes.map((x, i) => [x.name, i]));
  // Start on rings by depth (deterministic), then relax.
  const pos = nodes.map((x, i) => {
    if (x.name === root) return { x: W / 2, y: H / 2 };
    const a = (2 * Math.PI * i) / Math.max(1, n - 1);
    const r = 90 * Math.max(1, x.depth);
    return { x: W / 2 + r * Math.cos(a), y: H / 2 + r * Math.sin(a) };
  });
  const links = edges
    .map((e) => [index.get(e.from), index.get(e.to)])
    .filter((l): l is [number, number] => l[0] !== undefined && l[1] !== undefined);
  const ideal = 110;
  for (let step = 0; step < 300; step++) {
    const t = 1 - step / 300;
    const force = pos.map(() => ({ x: 0, y: 0 }));
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const dx = pos[i]!.x - pos[j]!.x || 0.01;
        const dy = pos[i]!.y - pos[j]!.y || 0.01;
        const d2 = Math.max(dx * dx + dy * dy, 1);
        const f = (ideal * ideal) / d2;
        force[i]!.x += dx * f * 0.5;
        force[i]!.y += dy * f * 0.5;
        force[j]!.x -= dx * f * 0.5;
        force[j]!.y -= dy * f * 0.5;
      }
    }
    for (const [a, b] of links) {
      const dx = pos[b]!.x - pos[a]!.x;
      const dy = pos[b]!.y - pos[a]!.y;
      const d = Math.max(Math.hypot(dx, dy), 1);
      const f = (d - ideal) / d / 2;
      force[a]!.x += dx * f;
      force[a]!.y += dy * f;
      force[b]!.x -= dx * f;
      force[b]!.y -= dy * f;
    }
    for (let i = 0; i < n; i++) {
      if (nodes[i]!.name === root) continue;
      const fx = force[i]!.x + (W / 2 - pos[i]!.x) * 0.01;
      const fy = force[i]!.y + (H / 2 - pos[i]!.y) * 0.01;
      const len = Math.hypot(fx, fy);
      const max = 20 * t + 1;
      const k = len > max ? max / len : 1;
      pos[i]!.x = Math.min(W - 60, Math.max(60, pos[i]!.x + fx * k));
      pos[i]!.y = Math.min(H - 30, Math.max(30, pos[i]!.y + fy * k));
    }
  }
  return nodes.map((x, i) => ({ ...x, ...pos[i]! }));
}

const short = (s: string, max = 18) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

/** `suffix`: a query string the node links keep ("?scope=agent:x"). */
export function MemoryGraph({
  nodes,
  edges,
  root,
  suffix = '',
}: {
  nodes: GraphNode[];
  edges: GraphEdge[];
  root: string;
  suffix?: string;
}) {
  const placed = useMemo(() => layout(nodes, edges, root), [nodes, edges, root]);
  const at = new Map(placed.map((p) => [p.name, p]));
  const open = (e: MouseEvent, name: string) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(`/memory/entities/${encodeURIComponent(name)}${suffix}`);
  };
  return (
    <svg
      class="graph"
      viewBox={`0 0 ${W} ${H}`}
      role="group"
      aria-label={`Graph of the entities around ${root}`}
      data-testid="memory-graph"
    >
      <defs>
        <marker
          id="arrow"
          viewBox="0 0 10 10"
          refX="10"
          refY="5"
          markerWidth="7"
          markerHeight="7"
          orient="auto-start-reverse"
        >
          <path d="M 0 0 L 10 5 L 0 10 z" class="graph-arrow" />
        </marker>
      </defs>
      <g aria-hidden="true">
        {edges.map((e, i) => {
          const a = at.get(e.from);
          const b = at.get(e.to);
          if (!a || !b) return null;
          const dx = b.x - a.x;
          const dy = b.y - a.y;
          const d = Math.max(Math.hypot(dx, dy), 1);
          // Stop the line at the target's circle so the arrow shows.
          const ex = b.x - (dx / d) * 16;
          const ey = b.y - (dy / d) * 16;
          return (
            <g key={i}>
              <line x1={a.x} y1={a.y} x2={ex} y2={ey} class="graph-edge" marker-end="url(#arrow)" />
              <text x={(a.x + b.x) / 2} y={(a.y + b.y) / 2 - 4} class="graph-edge-label" text-anchor="middle">
                {e.relationType}
              </text>
            </g>
          );
        })}
      </g>
      {placed.map((p) => (
        <a
          key={p.name}
          href={href(`/memory/entities/${encodeURIComponent(p.name)}${suffix}`)}
          onClick={(e: MouseEvent) => open(e, p.name)}
          class={`graph-node${p.name === root ? ' root' : ''}`}
          aria-label={`${p.name} (${p.entityType})${p.name === root ? ', the centre' : ''}`}
          data-testid="graph-node"
        >
          <circle cx={p.x} cy={p.y} r={p.name === root ? 18 : 14} />
          <text x={p.x} y={p.y + 32} text-anchor="middle">
            {short(p.name)}
          </text>
        </a>
      ))}
    </svg>
  );
}
