/**
 * An entity's neighbourhood as an inline SVG graph (Memory page). A small force layout computed
 * once per graph (deterministic: the same graph draws the same way), the centre entity fixed in
 * the middle; nodes coloured by entity type with a legend. Labels never overprint: each is placed
 * beside its node where it collides with no node and no label already placed (memory-labels.ts),
 * and one with no free place is shown only while its node is hovered or focused — zooming in makes
 * room, as labels keep their size on screen. Pan and zoom move the SVG viewBox: the wheel, a drag,
 * the buttons, or the keyboard inside the graph (+, −, 0, arrow keys). Each node is a link: Tab
 * reaches it, Enter or a click opens that entity, which re-centres the graph on it.
 */
import { useMemo, useRef, useState } from 'preact/hooks';
import { href, navigate } from '../router';
import { placeLabels, type Box } from './memory-labels';

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

/** Eight colours told apart on white, in a fixed order: a type keeps its colour across graphs of the same types. */
export const TYPE_COLOURS = ['#0b5cad', '#b35900', '#1a7f37', '#8250df', '#b42318', '#0a7c86', '#7d4e00', '#bf3989'];

/** Each type's colour: the sorted distinct types take the palette in order (cycling past eight). */
export function typeColours(types: Iterable<string>): Map<string, string> {
  return new Map([...new Set(types)].sort().map((t, i) => [t, TYPE_COLOURS[i % TYPE_COLOURS.length]!]));
}

const R = 14;
const ROOT_R = 18;

/** Positions for the nodes: repulsion between every pair, springs along edges, the root pinned at the centre. */
export function layout(nodes: GraphNode[], edges: GraphEdge[], root: string, W: number, H: number): Placed[] {
  const n = nodes.length;
  const index = new Map(nodes.map((x, i) => [x.name, i]));
  const ideal = 120;
  // Start on rings by depth (deterministic), then relax.
  const pos = nodes.map((x, i) => {
    if (x.name === root) return { x: W / 2, y: H / 2 };
    const a = (2 * Math.PI * i) / Math.max(1, n - 1);
    const r = ideal * Math.max(1, x.depth);
    return { x: W / 2 + r * Math.cos(a), y: H / 2 + r * Math.sin(a) };
  });
  const links = edges
    .map((e) => [index.get(e.from), index.get(e.to)])
    .filter((l): l is [number, number] => l[0] !== undefined && l[1] !== undefined);
  for (let step = 0; step < 300; step++) {
    const t = 1 - step / 300;
    const force = pos.map(() => ({ x: 0, y: 0 }));
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const dx = pos[i]!.x - pos[j]!.x || 0.01 * (i - j);
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
      pos[i]!.x = Math.min(W - 40, Math.max(40, pos[i]!.x + fx * k));
      pos[i]!.y = Math.min(H - 30, Math.max(30, pos[i]!.y + fy * k));
    }
  }
  return nodes.map((x, i) => ({ ...x, ...pos[i]! }));
}

const short = (s: string, max = 24) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

interface View {
  x: number;
  y: number;
  w: number;
  h: number;
}

const MIN_ZOOM = 0.5;
const MAX_ZOOM = 6;

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
  // Room grows with the graph so nodes keep their spacing.
  const W = Math.round(640 * Math.max(1, Math.sqrt(nodes.length / 10)));
  const H = Math.round(W * 0.62);
  const placed = useMemo(() => layout(nodes, edges, root, W, H), [nodes, edges, root]);
  const colours = useMemo(() => typeColours(nodes.map((n) => n.entityType)), [nodes]);
  const full: View = { x: 0, y: 0, w: W, h: H };
  const [view, setView] = useState<View>(full);
  const zoom = W / view.w;
  // Labels keep their size on screen: in graph units they shrink as the view zooms in.
  const scale = 1 / zoom;
  const at = new Map(placed.map((p) => [p.name, p]));
  const labels = useMemo(() => {
    const nodeBoxes: Box[] = placed.map((p) => {
      const r = p.name === root ? ROOT_R : R;
      return { x: p.x - r, y: p.y - r, w: 2 * r, h: 2 * r };
    });
    const wanted = [
      // The centre first, then nearer nodes, then the relations' names.
      ...placed
        .map((p, i) => ({ p, i }))
        .sort((a, b) => (a.p.name === root ? -1 : b.p.name === root ? 1 : a.p.depth - b.p.depth || a.i - b.i))
        .map(({ p }) => ({
          key: `n:${p.name}`,
          text: short(p.name),
          anchor: { x: p.x, y: p.y },
          gap: (p.name === root ? ROOT_R : R) + 3 * scale,
        })),
      ...edges.flatMap((e, i) => {
        const a = at.get(e.from);
        const b = at.get(e.to);
        return a && b
          ? [{ key: `e:${i}`, text: e.relationType, anchor: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 }, gap: 0 }]
          : [];
      }),
    ];
    return placeLabels(wanted, nodeBoxes, {
      charWidth: 7 * scale,
      height: 14 * scale,
      bounds: { x: 0, y: 0, w: W, h: H },
    });
  }, [placed, edges, scale]);

  const svg = useRef<SVGSVGElement>(null);
  const drag = useRef<{ id: number; x: number; y: number; view: View; moved: boolean } | undefined>();
  const clampView = (v: View): View => {
    const w = Math.min(W / MIN_ZOOM, Math.max(W / MAX_ZOOM, v.w));
    const h = (w * H) / W;
    return {
      x: Math.min(W - w * 0.2, Math.max(-w * 0.8, v.x)),
      y: Math.min(H - h * 0.2, Math.max(-h * 0.8, v.y)),
      w,
      h,
    };
  };
  /** Zooms by `f` (> 1: in) around a point of the graph (its centre by default). */
  const zoomBy = (f: number, cx = view.x + view.w / 2, cy = view.y + view.h / 2) =>
    setView((v) => {
      const w = v.w / f;
      const h = v.h / f;
      return clampView({ x: cx - ((cx - v.x) * w) / v.w, y: cy - ((cy - v.y) * h) / v.h, w, h });
    });
  const panBy = (fx: number, fy: number) => setView((v) => clampView({ ...v, x: v.x + v.w * fx, y: v.y + v.h * fy }));
  const toGraph = (e: { clientX: number; clientY: number }) => {
    const r = svg.current!.getBoundingClientRect();
    return {
      x: view.x + ((e.clientX - r.left) / r.width) * view.w,
      y: view.y + ((e.clientY - r.top) / r.height) * view.h,
    };
  };
  const onWheel = (e: WheelEvent) => {
    e.preventDefault();
    const p = toGraph(e);
    zoomBy(e.deltaY < 0 ? 1.2 : 1 / 1.2, p.x, p.y);
  };
  const onPointerDown = (e: PointerEvent) => {
    if (e.button !== 0) return;
    drag.current = { id: e.pointerId, x: e.clientX, y: e.clientY, view, moved: false };
  };
  const onPointerMove = (e: PointerEvent) => {
    const d = drag.current;
    if (!d || d.id !== e.pointerId) return;
    const dx = e.clientX - d.x;
    const dy = e.clientY - d.y;
    if (!d.moved && Math.hypot(dx, dy) < 4) return;
    if (!d.moved) svg.current!.setPointerCapture(e.pointerId);
    d.moved = true;
    const r = svg.current!.getBoundingClientRect();
    setView(
      clampView({ ...d.view, x: d.view.x - (dx / r.width) * d.view.w, y: d.view.y - (dy / r.height) * d.view.h }),
    );
  };
  const onPointerUp = (e: PointerEvent) => {
    const d = drag.current;
    if (!d || d.id !== e.pointerId) return;
    if (d.moved) svg.current!.releasePointerCapture(e.pointerId);
    // A drag that ends on a node must not open it: the click that follows is swallowed.
    if (d.moved) setTimeout(() => (drag.current = undefined));
    else drag.current = undefined;
  };
  const onKeyDown = (e: KeyboardEvent) => {
    const step = 0.15;
    const act: Record<string, () => void> = {
      '+': () => zoomBy(1.25),
      '=': () => zoomBy(1.25),
      '-': () => zoomBy(1 / 1.25),
      '0': () => setView(full),
      ArrowLeft: () => panBy(-step, 0),
      ArrowRight: () => panBy(step, 0),
      ArrowUp: () => panBy(0, -step),
      ArrowDown: () => panBy(0, step),
    };
    const f = act[e.key];
    if (!f || e.altKey || e.ctrlKey || e.metaKey) return;
    e.preventDefault();
    f();
  };
  const open = (e: MouseEvent, name: string) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    if (drag.current?.moved) return;
    navigate(`/memory/entities/${encodeURIComponent(name)}${suffix}`);
  };
  const font = 12 * scale;
  return (
    <div class="graph-wrap" onKeyDown={onKeyDown}>
      <div class="row graph-tools" role="group" aria-label="Zoom and pan">
        <button type="button" class="secondary" onClick={() => zoomBy(1.25)} aria-label="Zoom in">
          +
        </button>
        <button type="button" class="secondary" onClick={() => zoomBy(1 / 1.25)} aria-label="Zoom out">
          −
        </button>
        <button type="button" class="secondary" onClick={() => setView(full)}>
          Fit
        </button>
        <span class="muted small" data-testid="graph-zoom">
          {Math.round(zoom * 100)} %
        </span>
        <span class="muted small">
          Wheel or +/− to zoom, drag or arrow keys to move; a label without room shows on hover or focus.
        </span>
      </div>
      <svg
        ref={svg}
        class="graph"
        viewBox={`${view.x.toFixed(1)} ${view.y.toFixed(1)} ${view.w.toFixed(1)} ${view.h.toFixed(1)}`}
        role="group"
        aria-label={`Graph of the entities around ${root}`}
        data-testid="memory-graph"
        onWheel={onWheel}
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={onPointerUp}
        onPointerCancel={onPointerUp}
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
        <rect x={-W} y={-H} width={3 * W} height={3 * H} class="graph-pan" />
        <g aria-hidden="true">
          {edges.map((e, i) => {
            const a = at.get(e.from);
            const b = at.get(e.to);
            if (!a || !b) return null;
            const dx = b.x - a.x;
            const dy = b.y - a.y;
            const d = Math.max(Math.hypot(dx, dy), 1);
            // Stop the line at the target's circle so the arrow shows.
            const rb = (b.name === root ? ROOT_R : R) + 2;
            const l = labels.get(`e:${i}`);
            return (
              <g key={i}>
                <title>{`${e.from} ${e.relationType} ${e.to}`}</title>
                <line
                  x1={a.x}
                  y1={a.y}
                  x2={b.x - (dx / d) * rb}
                  y2={b.y - (dy / d) * rb}
                  class="graph-edge"
                  marker-end="url(#arrow)"
                  vector-effect="non-scaling-stroke"
                />
                {l?.shown && (
                  <text x={l.x} y={l.y} class="graph-edge-label" font-size={font * 0.9} data-testid="graph-label">
                    {e.relationType}
                  </text>
                )}
              </g>
            );
          })}
        </g>
        {placed.map((p) => {
          const l = labels.get(`n:${p.name}`)!;
          return (
            <a
              key={p.name}
              href={href(`/memory/entities/${encodeURIComponent(p.name)}${suffix}`)}
              onClick={(e: MouseEvent) => open(e, p.name)}
              class={`graph-node${p.name === root ? ' root' : ''}`}
              aria-label={`${p.name} (${p.entityType})${p.name === root ? ', the centre' : ''}`}
              data-testid="graph-node"
            >
              <circle
                cx={p.x}
                cy={p.y}
                r={p.name === root ? ROOT_R : R}
                fill={colours.get(p.entityType)}
                vector-effect="non-scaling-stroke"
              />
              <text
                x={l.x}
                y={l.y}
                class={l.shown ? 'graph-label' : 'graph-label spare'}
                font-size={font}
                {...(l.shown && { 'data-testid': 'graph-label' })}
              >
                {short(p.name)}
              </text>
            </a>
          );
        })}
      </svg>
      <ul class="graph-legend" aria-label="Entity types" data-testid="graph-legend">
        {[...colours].map(([type, colour]) => (
          <li key={type}>
            <svg viewBox="0 0 10 10" aria-hidden="true" class="swatch">
              <circle cx="5" cy="5" r="5" fill={colour} />
            </svg>
            {type}
          </li>
        ))}
        <li class="muted">
          <svg viewBox="0 0 10 10" aria-hidden="true" class="swatch">
            <circle cx="5" cy="5" r="4" class="legend-root" />
          </svg>
          ringed: the centre
        </li>
      </ul>
    </div>
  );
}
