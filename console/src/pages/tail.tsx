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
  /** The lines the text filter keeps. */
  shown: TailLine<T>[];
  /** Lines dropped from the front to keep MAX_LINES. */
  dropped: number;
  paused: boolean;
  /** Lines that arrived while paused and the text filter keeps: what resuming adds to `shown`. */
  heldShown: number;
  state: LiveState | undefined;
  pause(): void;
  resume(): void;
  clear(): void;
}

interface Buffer<T> {
  lines: TailLine<T>[];
  dropped: number;
  paused: boolean;
  /** Lines that arrive while paused (bounded too; the ones it drops are counted on resume). */
  held: TailLine<T>[];
  heldDropped: number;
}

const empty = <T,>(paused: boolean): Buffer<T> => ({ lines: [], dropped: 0, paused, held: [], heldDropped: 0 });

export function useTail<T>(
  opts: {
    path: string;
    query: RequestOptions['query'];
    parse: (e: SseEvent) => T | undefined;
    textOf: (t: T) => string;
    /** The text filter: only lines containing it (any case) are shown and counted as held. */
    filter: string;
  },
  deps: unknown[],
): Tail<T> {
  // The held lines live in state beside the shown ones, so the count on Resume is worked out from
  // them at render with the text filter of the moment; and every change goes through an updater,
  // so a line, a pause and a resume apply in the order they happen.
  const [buf, setBuf] = useState<Buffer<T>>(() => empty(false));
  const n = useRef(0);
  // New filters: a new stream, and the lines of the old one go.
  useEffect(() => {
    setBuf((old) => empty(old.paused));
  }, deps);
  const state = useLive(
    {
      path: opts.path,
      ...(opts.query && { query: opts.query }),
      onEvent: (e) => {
        const item = opts.parse(e);
        if (item === undefined) return;
        const line = { key: n.current++, item, text: opts.textOf(item).toLowerCase() };
        setBuf((old) => {
          if (old.paused) {
            const next = appendBounded(old.held, [line], MAX_LINES);
            return { ...old, held: next.lines, heldDropped: old.heldDropped + next.dropped };
          }
          const next = appendBounded(old.lines, [line], MAX_LINES);
          return { ...old, lines: next.lines, dropped: old.dropped + next.dropped };
        });
      },
    },
    deps,
  );
  const pause = () => setBuf((old) => ({ ...old, paused: true }));
  const resume = () =>
    setBuf((old) => {
      const next = appendBounded(old.lines, old.held, MAX_LINES);
      return {
        lines: next.lines,
        dropped: old.dropped + old.heldDropped + next.dropped,
        paused: false,
        held: [],
        heldDropped: 0,
      };
    });
  const clear = () => setBuf((old) => ({ ...old, lines: [], dropped: 0 }));
  const needle = opts.filter.toLowerCase();
  const kept = (ls: TailLine<T>[]) => (needle ? ls.filter((l) => l.text.includes(needle)) : ls);
  return {
    lines: buf.lines,
    shown: kept(buf.lines),
    dropped: buf.dropped,
    paused: buf.paused,
    heldShown: kept(buf.held).length,
    state,
    pause,
    resume,
    clear,
  };
}

export function TailControls<T>({ tail, label }: { tail: Tail<T>; label: string }) {
  return (
    <div class="row tail-controls">
      {tail.paused ? (
        <button type="button" onClick={tail.resume}>
          Resume{tail.heldShown > 0 && ` (${tail.heldShown} new)`}
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
        {tail.shown.length} of {tail.lines.length} {label} shown (the last {MAX_LINES} are kept
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
