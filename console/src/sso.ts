/**
 * Single sign-on (server side: src/auth/sso.ts): the authorization code flow with PKCE. The
 * browser goes to the issuer with a fresh verifier's challenge and a random state, both kept in
 * sessionStorage for this tab; the issuer sends it back to /ui/auth/callback, where the code is
 * exchanged by the server and the token signed in like an API key. The code never stays in the
 * address bar or the history.
 */
import { signIn, signOut } from './session';

const PENDING_KEY = 'caxton.sso';
export const CALLBACK_PATH = '/ui/auth/callback';

export interface SsoInfo {
  enabled: boolean;
  authorization_endpoint?: string;
  client_id?: string;
  scope?: string;
}

const b64url = (bytes: Uint8Array): string =>
  btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
const random = (n: number): string => b64url(crypto.getRandomValues(new Uint8Array(n)));

/** Whether the server offers single sign-on (false on any failure: the key form still works). */
export async function ssoInfo(): Promise<SsoInfo> {
  try {
    const res = await fetch('/api/v1/auth/sso', { headers: { accept: 'application/json' }, credentials: 'omit' });
    return res.ok ? ((await res.json()) as SsoInfo) : { enabled: false };
  } catch {
    return { enabled: false };
  }
}

/** Sends the browser to the issuer; `returnTo` is the console path to open once signed in. */
export async function startSso(info: SsoInfo, returnTo: string): Promise<void> {
  if (!crypto.subtle) throw new Error('single sign-on needs a secure page (HTTPS, or a loopback address)');
  const verifier = random(32);
  const challenge = b64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  const state = random(16);
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ state, verifier, returnTo }));
  const url = new URL(info.authorization_endpoint!);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', info.client_id!);
  url.searchParams.set('redirect_uri', `${location.origin}${CALLBACK_PATH}`);
  url.searchParams.set('scope', info.scope!);
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', challenge);
  url.searchParams.set('code_challenge_method', 'S256');
  location.assign(url.toString());
}

export const isSsoCallback = (): boolean => location.pathname === CALLBACK_PATH;

/** On /ui/auth/callback: checks the state, has the server exchange the code, signs the token in. */
export async function finishSso(): Promise<void> {
  const q = new URLSearchParams(location.search);
  let pending: { state: string; verifier: string; returnTo: string } | undefined;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) ?? 'null') as typeof pending;
  } catch {
    pending = undefined;
  }
  sessionStorage.removeItem(PENDING_KEY);
  // The code and state leave the address bar and the history before anything else happens.
  history.replaceState(null, '', pending?.returnTo?.startsWith('/ui') ? pending.returnTo : '/ui/');
  const fail = (why: string) => signOut(`Single sign-on failed: ${why}`);
  if (q.get('error'))
    return fail(
      `the identity provider answered ${q.get('error')}${q.get('error_description') ? ` (${q.get('error_description')})` : ''}.`,
    );
  if (!pending || q.get('state') !== pending.state)
    return fail('this sign-in was not started from this tab (the state does not match); sign in again.');
  const code = q.get('code');
  if (!code) return fail('the identity provider sent no code; sign in again.');
  let res: Response;
  try {
    res = await fetch('/api/v1/auth/sso/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      credentials: 'omit',
      body: JSON.stringify({
        code,
        code_verifier: pending.verifier,
        redirect_uri: `${location.origin}${CALLBACK_PATH}`,
      }),
    });
  } catch (e) {
    return fail(`the server did not answer (${e instanceof Error ? e.message : String(e)}).`);
  }
  const body = (await res.json().catch(() => ({}))) as { token?: string; error?: { message: string } };
  if (!res.ok || !body.token) return fail(body.error?.message ?? `HTTP ${res.status}`);
  const refused = await signIn(body.token);
  if (refused) fail(refused);
}
