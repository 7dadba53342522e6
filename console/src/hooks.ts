/**
 * Data hooks every page uses: `useApi` loads a GET (again when its inputs change, or on
 * `reload()`), `useLive` follows an event stream while the component is mounted, `usePoll`
 * refreshes on an interval while the tab is visible.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, type RequestOptions } from './api';
import { follow, type FollowOptions, type LiveState, type SseEvent } from './live';
import { can } from './session';

export interface Loaded<T> {
  data: T | undefined;
  /**
   * The query `data` answers. While the next query loads, `data` still holds the previous answer,
   * so a page that numbers its rows (offset, page) takes the numbers from here, not from the URL.
   */
  query: RequestOptions['query'];
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** GET `path` (with `query`); `undefined` path: nothing to load yet. */
export function useApi<T>(path: string | undefined, query?: RequestOptions['query']): Loaded<T> {
  const [state, setState] = useState<{
    data: T | undefined;
    query: RequestOptions['query'];
    error: unknown;
    loading: boolean;
  }>({
    data: undefined,
    query: undefined,
    error: undefined,
    loading: path !== undefined,
  });
  const [n, setN] = useState(0);
  const key = path === undefined ? '' : `${path}?${JSON.stringify(query ?? {})}`;
  useEffect(() => {
    if (path === undefined) return;
    const ac = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    api<T>('GET', path, { ...(query && { query }), signal: ac.signal }).then(
      (data) => setState({ data, query, error: undefined, loading: false }),
      (error: unknown) => {
        if (!ac.signal.aborted) setState({ data: undefined, query, error, loading: false });
      },
    );
    return () => ac.abort();
  }, [key, n]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  return { ...state, reload };
}

/** Follows an event stream while mounted (and while `opts` is defined); the latest connection state. */
export function useLive(opts: Omit<FollowOptions, 'onState'> | undefined, deps: unknown[]): LiveState | undefined {
  const [state, setState] = useState<LiveState>();
  const onEvent = useRef<(e: SseEvent) => void>(() => {});
  onEvent.current = opts?.onEvent ?? (() => {});
  useEffect(() => {
    if (!opts) return;
    return follow({ ...opts, onEvent: (e) => onEvent.current(e), onState: setState });
  }, deps);
  return state;
}

/** Calls `fn` now and every `ms` while mounted and the tab is visible. */
export function usePoll(fn: () => void, ms: number, deps: unknown[] = []): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    ref.current();
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') ref.current();
    }, ms);
    return () => clearInterval(t);
  }, deps);
}

/**
 * Reloads what a page shows when the server's event stream reports `type` (at most once per
 * `throttleMs`) for a principal with observe:read; every `pollMs` without it or while the stream
 * is refused, and every `streamingPollMs` (if given) while it runs, as a safety net. Returns the
 * stream's state and whether it is streaming.
 */
export function useReloadOnEvent(
  type: string,
  reload: () => void,
  opts: { throttleMs: number; pollMs: number; streamingPollMs?: number },
): { live: LiveState | undefined; streaming: boolean } {
  const observe = can('observe:read');
  const pending = useRef<ReturnType<typeof setTimeout>>();
  const fn = useRef(reload);
  fn.current = reload;
  const live = useLive(
    observe
      ? {
          path: '/api/v1/events/stream',
          query: { type },
          onEvent: (e) => {
            if (e.event !== type || pending.current !== undefined) return;
            pending.current = setTimeout(() => {
              pending.current = undefined;
              fn.current();
            }, opts.throttleMs);
          },
        }
      : undefined,
    [observe, type],
  );
  const streaming = observe && live?.state !== 'stopped';
  const every = streaming ? opts.streamingPollMs : opts.pollMs;
  useEffect(() => {
    if (every === undefined) return;
    const t = setInterval(() => document.visibilityState === 'visible' && fn.current(), every);
    return () => clearInterval(t);
  }, [every]);
  useEffect(() => () => clearTimeout(pending.current), []);
  return { live, streaming };
}

/** For pages whose data changes when agents run (tool calls, memory) but which have no stream of their own. */
export function useReloadOnExecutions(reload: () => void, pollMs = 5000): void {
  useReloadOnEvent('execution.finished', reload, { throttleMs: 1000, pollMs });
}

/** The row offset of what `loaded` shows now (0 before anything loaded). */
export function shownOffset(loaded: Loaded<unknown>): number {
  return Math.max(0, Number(loaded.query?.['offset'] ?? 0) || 0);
}
