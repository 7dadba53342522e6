/**
 * The layout: a skip link, a header with the principal, the nav (only the pages the principal may
 * use) and the main landmark holding the current page. A signed-out visitor sees the sign-in form
 * at the URL they asked for, and the page once signed in.
 */
import type { ComponentType } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { loadChunk } from './chunks';
import { ErrorBox, Loading } from './components/feedback';
import { useScrollHint } from './components/scroll-hint';
import { PAGES, type PageDef, type PageProps } from './pages';
import { SignIn } from './pages/sign-in';
import { Link, match, useRoute } from './router';
import { can, signOut, useSession, type WhoAmI } from './session';

const loaded = new Map<string, ComponentType<PageProps>>();

function resolve(path: string): { page: PageDef; params: Record<string, string> } | undefined {
  for (const page of PAGES) {
    for (const r of page.routes) {
      const params = match(r, path);
      if (params) return { page, params };
    }
  }
  return undefined;
}

export function App() {
  const s = useSession();
  if (s.state === 'checking') {
    return (
      <main id="main" class="centered">
        <Loading what="the session" />
      </main>
    );
  }
  if (s.state === 'signed-out') return <SignIn {...(s.reason !== undefined && { reason: s.reason })} />;
  return <Layout who={s.who} signedIn={s.signedIn} />;
}

function Layout({ who, signedIn }: { who: WhoAmI; signedIn: boolean }) {
  const loc = useRoute();
  const found = resolve(loc.path);
  const mainRef = useRef<HTMLElement>(null);
  const first = useRef(true);
  useLayoutEffect(() => {
    document.title = `${found?.page.title ?? 'Not found'} · Caxton`;
    // After a client-side navigation, focus moves to the new content (as a page load would),
    // in the same commit that shows it (a layout effect), not a frame later.
    if (!first.current) mainRef.current?.focus();
    first.current = false;
  }, [loc.path]);
  const navList = useScrollHint<HTMLUListElement>();
  const visible = PAGES.filter((p) => p.nav !== false && (p.permission === undefined || can(p.permission)));
  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link to="/" class="brand">
          Caxton
        </Link>
        <div class="who" aria-label="Signed in as">
          <span class="principal" data-testid="principal">
            {who.id}
          </span>{' '}
          <details>
            <summary>
              <span class="role">{who.role}</span>
            </summary>
            <ul aria-label="Permissions" data-testid="permissions">
              {who.permissions.map((p) => (
                <li key={p}>{p}</li>
              ))}
            </ul>
          </details>
          {signedIn ? (
            <button type="button" class="link-button" onClick={() => signOut()}>
              Sign out
            </button>
          ) : (
            <span class="muted"> (authentication off)</span>
          )}
        </div>
      </header>
      <div class="frame">
        <nav aria-label="Main" class="side">
          <ul ref={navList}>
            {visible.map((p) => {
              const active = found?.page.id === p.id;
              return (
                <li key={p.id}>
                  <Link to={p.routes[0]!} {...(active && { 'aria-current': 'page' })}>
                    {p.title}
                  </Link>
                </li>
              );
            })}
          </ul>
        </nav>
        <main id="main" tabIndex={-1} ref={mainRef}>
          {found ? (
            <PageView key={found.page.id} page={found.page} params={found.params} query={loc.query} />
          ) : (
            <NotFound path={loc.path} />
          )}
        </main>
      </div>
    </>
  );
}

function PageView({ page, params, query }: { page: PageDef } & PageProps) {
  const [Comp, setComp] = useState<ComponentType<PageProps> | undefined>(() => loaded.get(page.id));
  const [error, setError] = useState<unknown>();
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    if (Comp) return;
    let live = true;
    setError(undefined);
    loadChunk(`${page.title} page`, page.load).then(
      (m) => {
        loaded.set(page.id, m.default);
        if (live) setComp(() => m.default);
      },
      (e: unknown) => live && setError(e),
    );
    return () => void (live = false);
  }, [page.id, attempt]);
  if (page.permission !== undefined && !can(page.permission)) {
    return (
      <section aria-labelledby="refused-title">
        <h1 id="refused-title">{page.title}</h1>
        <p role="alert" class="error">
          Your key lacks the permission {page.permission} needed for this page.
        </p>
      </section>
    );
  }
  if (error)
    return (
      <section aria-labelledby="load-failed-title">
        <h1 id="load-failed-title">{page.title}</h1>
        <ErrorBox error={error} />
        <p class="actions">
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            Try again
          </button>{' '}
          <button type="button" class="secondary" onClick={() => location.reload()}>
            Reload the console
          </button>
        </p>
      </section>
    );
  if (!Comp) return <Loading what={page.title} />;
  return <Comp params={params} query={query} />;
}

function NotFound({ path }: { path: string }) {
  return (
    <section aria-labelledby="nf-title">
      <h1 id="nf-title">Not found</h1>
      <p>
        The console has no page at <code>{path}</code>. <Link to="/">Go to the overview</Link>.
      </p>
    </section>
  );
}
