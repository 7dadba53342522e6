/**
 * Who is signed in. The credential (an API key or a bearer token) lives in sessionStorage only:
 * never in a URL, never in localStorage, gone when the tab closes. On loopback with [auth]
 * enabled = false the server answers whoami without one, and the console needs no sign-in.
 */
import { useEffect, useState } from 'preact/hooks';

const STORAGE_KEY = 'caxton.credential';

export interface WhoAmI {
  id: string;
  kind: string;
  name: string;
  role: string;
  permissions: string[];
  scope: { agents?: string[]; tools?: string[]; memory?: string[] };
}

export type Session =
  | { state: 'checking' }
  | { state: 'signed-out'; reason?: string }
  | {
      state: 'signed-in';
      who: WhoAmI;
      /** false: authentication is off (loopback) and there is nothing to sign out of. */ signedIn: boolean;
    };

let current: Session = { state: 'checking' };
const listeners = new Set<(s: Session) => void>();

function set(s: Session): void {
  current = s;
  for (const l of listeners) l(s);
}

function stored(): string | undefined {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

/** The Authorization header of the session's credential (none when authentication is off). */
export function authHeaders(): Record<string, string> {
  const c = stored();
  return c ? { authorization: `Bearer ${c}` } : {};
}

export const session = (): Session => current;

/** Re-renders the caller when the session changes. */
export function useSession(): Session {
  const [s, setS] = useState(current);
  useEffect(() => {
    listeners.add(setS);
    setS(current);
    return () => void listeners.delete(setS);
  }, []);
  return s;
}

/** Whether the signed-in principal's role grants `permission`. */
export function can(permission: string): boolean {
  return current.state === 'signed-in' && current.who.permissions.includes(permission);
}

async function whoami(
  credential: string | undefined,
): Promise<{ ok: true; who: WhoAmI } | { ok: false; status: number; message: string }> {
  const res = await fetch('/api/v1/whoami', {
    headers: { accept: 'application/json', ...(credential && { authorization: `Bearer ${credential}` }) },
    credentials: 'omit',
    cache: 'no-store',
  });
  if (res.ok) return { ok: true, who: (await res.json()) as WhoAmI };
  let message = res.statusText;
  try {
    message = ((await res.json()) as { error: { message: string } }).error.message;
  } catch {
    /* not the envelope */
  }
  return { ok: false, status: res.status, message };
}

/** At start: the stored credential, or none (authentication off). */
export async function restoreSession(): Promise<void> {
  const c = stored();
  try {
    const r = await whoami(c);
    if (r.ok) return set({ state: 'signed-in', who: r.who, signedIn: c !== undefined });
    if (c) sessionStorage.removeItem(STORAGE_KEY);
    set({ state: 'signed-out', ...(c && { reason: `Your stored key was refused: ${r.message}` }) });
  } catch (e) {
    set({ state: 'signed-out', reason: `The server did not answer: ${e instanceof Error ? e.message : String(e)}` });
  }
}

/** Checks a credential with whoami; keeps it when it is accepted. Returns the refusal's message otherwise. */
export async function signIn(credential: string): Promise<string | undefined> {
  const c = credential.trim();
  if (c.length === 0) return 'Enter an API key (cxk_...) or a bearer token.';
  const r = await whoami(c);
  if (!r.ok)
    return r.status === 401
      ? `The server refused this key: ${r.message}`
      : `Sign-in failed (${r.status}): ${r.message}`;
  sessionStorage.setItem(STORAGE_KEY, c);
  set({ state: 'signed-in', who: r.who, signedIn: true });
  return undefined;
}

export function signOut(reason?: string): void {
  sessionStorage.removeItem(STORAGE_KEY);
  set({ state: 'signed-out', ...(reason && { reason }) });
}

/** A 401 from any call: the credential no longer works (revoked, expired token). */
export function sessionExpired(message: string): void {
  if (current.state !== 'signed-in') return;
  signOut(`You were signed out: ${message}`);
}
