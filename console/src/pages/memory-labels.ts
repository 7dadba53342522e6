/**
 * Label placement for the memory graph: each label, in the order given (the most important
 * first), takes the first of a few places around its anchor (below, above, right, left, then the
 * corners) where its box overlaps no node and no label placed before it and stays inside the
 * bounds; a label with no such place is marked not shown (the graph shows it on hover or focus
 * only). Greedy and deterministic: a few dozen labels cost microseconds.
 */

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface WantedLabel {
  key: string;
  text: string;
  anchor: { x: number; y: number };
  /** Distance kept from the anchor (a node's radius). */
  gap: number;
}

/** Where a label's text goes (`x`, `y`: start of the baseline) and whether it is shown. */
export interface PlacedLabel {
  x: number;
  y: number;
  shown: boolean;
  box: Box;
}

const overlaps = (a: Box, b: Box) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

export function placeLabels(
  wanted: readonly WantedLabel[],
  obstacles: readonly Box[],
  o: { charWidth: number; height: number; bounds: Box },
): Map<string, PlacedLabel> {
  const taken: Box[] = [...obstacles];
  const out = new Map<string, PlacedLabel>();
  const inside = (b: Box) =>
    b.x >= o.bounds.x &&
    b.y >= o.bounds.y &&
    b.x + b.w <= o.bounds.x + o.bounds.w &&
    b.y + b.h <= o.bounds.y + o.bounds.h;
  for (const l of wanted) {
    const w = l.text.length * o.charWidth;
    const h = o.height;
    const { x, y } = l.anchor;
    const g = l.gap;
    // Box corners (left, top) for each candidate place.
    const candidates: [number, number][] = [
      [x - w / 2, y + g],
      [x - w / 2, y - g - h],
      [x + g + 2, y - h / 2],
      [x - g - 2 - w, y - h / 2],
      [x + g * 0.7, y + g * 0.7],
      [x - g * 0.7 - w, y + g * 0.7],
      [x + g * 0.7, y - g * 0.7 - h],
      [x - g * 0.7 - w, y - g * 0.7 - h],
    ];
    // Edge labels (no gap) sit on their line first.
    if (g === 0) candidates.unshift([x - w / 2, y - h / 2]);
    let chosen: Box | undefined;
    for (const [bx, by] of candidates) {
      const b = { x: bx, y: by, w, h };
      if (inside(b) && !taken.some((t) => overlaps(t, b))) {
        chosen = b;
        break;
      }
    }
    const box = chosen ?? { x: candidates[0]![0], y: candidates[0]![1], w, h };
    if (chosen) taken.push(chosen);
    // Text baseline: about 80 % down the box.
    out.set(l.key, { x: box.x, y: box.y + h * 0.8, shown: chosen !== undefined, box });
  }
  return out;
}
