/**
 * A list that renders only the rows in view (plus a few either side), so ten thousand items
 * scroll as smoothly as ten: the list keeps its full height for the scrollbar, and each visible
 * row is placed at its offset. Rows have one fixed height.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

export interface VirtualListProps<T> {
  items: readonly T[];
  rowHeight: number;
  /** Rows rendered beyond each edge of the view. */
  overscan?: number;
  label: string;
  keyOf: (item: T) => string;
  render: (item: T, index: number) => ComponentChildren;
  /** Scroll so this index is in view (e.g. the selected item) when it changes. */
  scrollTo?: number;
}

export function VirtualList<T>({
  items,
  rowHeight,
  overscan = 6,
  label,
  keyOf,
  render,
  scrollTo,
}: VirtualListProps<T>) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(480);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = () => setHeight(el.clientHeight || 480);
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  useEffect(() => {
    const el = box.current;
    if (!el || scrollTo === undefined || scrollTo < 0) return;
    const y = scrollTo * rowHeight;
    if (y < el.scrollTop || y + rowHeight > el.scrollTop + el.clientHeight)
      el.scrollTop = Math.max(0, y - el.clientHeight / 2);
  }, [scrollTo]);
  // A shorter list (a new search) must not leave the view scrolled past its end.
  useEffect(() => {
    const el = box.current;
    if (el && el.scrollTop > items.length * rowHeight) el.scrollTop = 0;
  }, [items.length]);
  // Arrow keys, Home and End move between rows (only rendered rows exist: scroll first, then focus).
  const focusRow = (i: number) => {
    const el = box.current;
    if (!el || items.length === 0) return;
    const n = Math.max(0, Math.min(items.length - 1, i));
    const y = n * rowHeight;
    if (y < el.scrollTop || y + rowHeight > el.scrollTop + el.clientHeight) {
      el.scrollTop = Math.max(0, y - el.clientHeight + rowHeight * 2);
      setTop(el.scrollTop);
    }
    requestAnimationFrame(() =>
      el.querySelector<HTMLElement>(`li[aria-posinset="${n + 1}"] a, li[aria-posinset="${n + 1}"] button`)?.focus(),
    );
  };
  // From a row, keys move from it; from the list itself (focused by Tab or a click on its
  // scrollbar), from the first row in view. Home and End are handled here rather than left to the
  // browser's own scrolling of the region: theirs is animated, and lands when the page's frames
  // allow, while this one sets the position and focuses the row at once.
  const onKeyDown = (e: KeyboardEvent) => {
    const el = box.current;
    const li = (e.target as HTMLElement).closest('li');
    const at = li
      ? Number(li.getAttribute('aria-posinset')) - 1
      : Math.min(items.length - 1, Math.ceil((el?.scrollTop ?? 0) / rowHeight));
    const page = Math.max(1, Math.floor(height / rowHeight) - 1);
    const to = targetOf(e.key, at, li !== null, page, items.length - 1);
    if (to === undefined || items.length === 0) return;
    e.preventDefault();
    focusRow(to);
  };
  const first = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const last = Math.min(items.length, Math.ceil((top + height) / rowHeight) + overscan);
  const rows = [];
  for (let i = first; i < last; i++) {
    const item = items[i]!;
    rows.push(
      <li
        key={keyOf(item)}
        style={{ top: `${i * rowHeight}px`, height: `${rowHeight}px` }}
        aria-setsize={items.length}
        aria-posinset={i + 1}
      >
        {render(item, i)}
      </li>,
    );
  }
  return (
    <div
      class="vlist"
      ref={box}
      onScroll={(e) => setTop((e.currentTarget as HTMLDivElement).scrollTop)}
      onKeyDown={onKeyDown}
      tabIndex={0}
      role="region"
      aria-label={label}
      data-testid="virtual-list"
    >
      <ul style={{ height: `${items.length * rowHeight}px` }} aria-label={label}>
        {rows}
      </ul>
    </div>
  );
}

/**
 * The row a key moves to from row `at`: the focused row (`fromRow`), or else the first row in view,
 * which the arrows focus before they move. Undefined for any other key.
 */
function targetOf(key: string, at: number, fromRow: boolean, page: number, last: number): number | undefined {
  switch (key) {
    case 'ArrowDown':
      return fromRow ? at + 1 : at;
    case 'ArrowUp':
      return fromRow ? at - 1 : at;
    case 'PageDown':
      return at + page;
    case 'PageUp':
      return at - page;
    case 'Home':
      return 0;
    case 'End':
      return last;
    default:
      return undefined;
  }
}
