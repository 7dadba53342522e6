/**
 * A live tail of an event stream (Logs and Events pages): lines arrive through the foundation's
 * fetch-based SSE client, at most MAX_LINES are kept (the oldest dropped and counted), a pause
 * holds new lines aside until resumed, and a text filter hides the lines that do not match.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { LiveStatus } from '../components/live-status';
import { useLive } from '../hooks';
import type { RequestOptions } from '../api';
import type { LiveState, SseEvent } from '../live';
import { appendBounded, MAX_LINES } from './tail-buffer';

export interface TailLine<T> {
  key: number;
  item: T;
  /** What the text filter searches. */
  text: string;
}

export interface Tail<T> {
  lines: TailLine<T>[];
  /** Lines dropped from the front to keep MAX_LINES. */
  dropped: number;
  paused: boolean;
  /** Lines that arrived while paused. */
  heldCount: number;
  state: LiveState | undefined;
  pause(): void;
  resume(): void;
  clear(): void;
}

export function useTail<T>(
  opts: {
    path: string;
    query: RequestOptions['query'];
    parse: (e: SseEvent) => T | undefined;
    textOf: (t: T) => string;
  },
  deps: unknown[],
): Tail<T> {
  const [buf, setBuf] = useState<{ lines: TailLine<T>[]; dropped: number }>({ lines: [], dropped: 0 });
  const [paused, setPaused] = useState(false);
  // Lines that arrive while paused (bounded too; the ones it drops are counted on resume).
  const held = useRef<{ lines: TailLine<T>[]; dropped: number }>({ lines: [], dropped: 0 });
  const [heldCount, setHeldCount] = useState(0);
  const pausedRef = useRef(false);
  const n = useRef(0);
  const add = (batch: TailLine<T>[], alreadyDropped = 0) => {
    setBuf((old) => {
      const next = appendBounded(old.lines, batch, MAX_LINES);
      return { lines: next.lines, dropped: old.dropped + alreadyDropped + next.dropped };
    });
  };
  // New filters: a new stream, and the lines of the old one go.
  useEffect(() => {
    held.current = { lines: [], dropped: 0 };
    setHeldCount(0);
    setBuf({ lines: [], dropped: 0 });
  }, deps);
  const state = useLive(
    {
      path: opts.path,
      ...(opts.query && { query: opts.query }),
      onEvent: (e) => {
        const item = opts.parse(e);
        if (item === undefined) return;
        const line = { key: n.current++, item, text: opts.textOf(item).toLowerCase() };
        if (pausedRef.current) {
          const next = appendBounded(held.current.lines, [line], MAX_LINES);
          held.current = { lines: next.lines, dropped: held.current.dropped + next.dropped };
          setHeldCount(next.lines.length);
        } else add([line]);
      },
    },
    deps,
  );
  const pause = () => {
    pausedRef.current = true;
    setPaused(true);
  };
  const resume = () => {
    pausedRef.current = false;
    setPaused(false);
    const h = held.current;
    held.current = { lines: [], dropped: 0 };
    add(h.lines, h.dropped);
    setHeldCount(0);
  };
  const clear = () => setBuf({ lines: [], dropped: 0 });
  return { lines: buf.lines, dropped: buf.dropped, paused, heldCount, state, pause, resume, clear };
}

export function TailControls<T>({ tail, shown, label }: { tail: Tail<T>; shown: number; label: string }) {
  return (
    <div class="row tail-controls">
      {tail.paused ? (
        <button type="button" onClick={tail.resume}>
          Resume{tail.heldCount > 0 && ` (${tail.heldCount} new)`}
        </button>
      ) : (
        <button type="button" class="secondary" onClick={tail.pause}>
          Pause
        </button>
      )}
      <button type="button" class="secondary" onClick={tail.clear}>
        Clear
      </button>
      <span class="small muted" data-testid="tail-count">
        {shown} of {tail.lines.length} {label} shown (the last {MAX_LINES} are kept
        {tail.dropped > 0 && `; ${tail.dropped} older dropped`})
      </span>
      <span class="spacer" />
      <LiveStatus state={tail.state} label={tail.paused ? 'Paused; the stream' : 'Live tail'} />
    </div>
  );
}

/** The lines, newest at the bottom; it follows new lines while scrolled to the bottom, and stays put when scrolled up to read. */
export function TailList({
  children,
  label,
  newest,
}: {
  children: ComponentChildren;
  label: string;
  /** The key of the newest line shown (a change scrolls). */ newest: number;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const follow = useRef(true);
  useLayoutEffect(() => {
    const el = ref.current;
    if (el && follow.current) el.scrollTop = el.scrollHeight;
  }, [newest]);
  return (
    <div
      class="tail"
      ref={ref}
      tabIndex={0}
      role="region"
      aria-label={label}
      onScroll={(e) => {
        const el = e.currentTarget;
        follow.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      }}
    >
      <ol class="tail-lines" data-testid="tail">
        {children}
      </ol>
    </div>
  );
}
