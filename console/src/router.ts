/**
 * Client-side routes: one URL per view under /ui (history API), so a view can be linked to and
 * reloaded. `navigate` changes the URL; `useRoute` re-renders on every change (links, back and
 * forward); `Link` is an ordinary <a href> that routes without reloading.
 */
import { createElement, type ComponentChildren, type JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/ui';

export interface Location {
  /** The path below /ui, always starting with "/" ("/", "/agents/helper"). */
  path: string;
  query: URLSearchParams;
}

const listeners = new Set<() => void>();

function read(): Location {
  const p = window.location.pathname;
  const below = p === BASE ? '/' : p.startsWith(`${BASE}/`) ? p.slice(BASE.length) : p;
  return {
    path: below.length > 1 ? below.replace(/\/+$/, '') : '/',
    query: new URLSearchParams(window.location.search),
  };
}

let current = read();
window.addEventListener('popstate', () => {
  current = read();
  for (const l of listeners) l();
});

/** The full URL of a console path ("/agents/x" → "/ui/agents/x"). */
export const href = (path: string): string => `${BASE}${path === '/' ? '/' : path}`;

/** Goes to a console path (with an optional ?query), adding a history entry unless `replace`. */
export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  const url = href(to);
  if (url === window.location.pathname + window.location.search) return;
  if (opts.replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  current = read();
  for (const l of listeners) l();
}

/** Replaces the query string of the current view (filters, search boxes) without a history entry. */
export function setQuery(values: Record<string, string | undefined>): void {
  const q = new URLSearchParams(window.location.search);
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined || v === '') q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  navigate(`${current.path}${s ? `?${s}` : ''}`, { replace: true });
}

export function useRoute(): Location {
  const [, force] = useState(0);
  useEffect(() => {
    const l = () => force((n) => n + 1);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return current;
}

/** Matches "/agents/:name" against a path; the decoded parameters, or undefined. */
export function match(pattern: string, path: string): Record<string, string> | undefined {
  const ps = pattern.split('/').filter(Boolean);
  const xs = path.split('/').filter(Boolean);
  if (ps.length !== xs.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i]!;
    const x = xs[i]!;
    if (p.startsWith(':')) {
      try {
        params[p.slice(1)] = decodeURIComponent(x);
      } catch {
        return undefined;
      }
    } else if (p !== x) return undefined;
  }
  return params;
}

type LinkProps = Omit<JSX.HTMLAttributes<HTMLAnchorElement>, 'href'> & { to: string; children?: ComponentChildren };

/** An <a> to a console path: a plain link for the browser (open in a new tab works), routed in place on a plain click. */
export function Link({ to, children, ...rest }: LinkProps) {
  return createElement(
    'a',
    {
      ...rest,
      href: href(to),
      onClick: (e: MouseEvent) => {
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(to);
      },
    },
    children,
  );
}
