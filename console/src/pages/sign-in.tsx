/** Sign-in: an API key or a bearer token, checked with GET /api/v1/whoami and kept in sessionStorage. */
import { useEffect, useState } from 'preact/hooks';
import { signIn } from '../session';
import { ssoInfo, startSso, type SsoInfo } from '../sso';

export function SignIn({ reason }: { reason?: string }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [sso, setSso] = useState<SsoInfo>({ enabled: false });
  useEffect(() => {
    void ssoInfo().then(setSso);
  }, []);
  const single = () => {
    setError(undefined);
    startSso(sso, `${location.pathname}${location.search}`).catch((x: unknown) =>
      setError(x instanceof Error ? x.message : String(x)),
    );
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    const refused = await signIn(value).catch((x: unknown) => (x instanceof Error ? x.message : String(x)));
    setBusy(false);
    if (refused) setError(refused);
  };
  return (
    <main id="main" class="centered">
      <section class="card sign-in" aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Sign in to Caxton</h1>
        {reason && (
          <p class="notice" role="status">
            {reason}
          </p>
        )}
        {sso.enabled && (
          <div class="sso">
            <button type="button" onClick={single}>
              Sign in with single sign-on
            </button>
            <p class="muted small">or with an API key:</p>
          </div>
        )}
        <form onSubmit={submit} noValidate>
          <label for="credential">API key or bearer token</label>
          <input
            id="credential"
            name="credential"
            type="password"
            autoComplete="off"
            spellcheck={false}
            value={value}
            onInput={(e) => setValue((e.target as HTMLInputElement).value)}
            aria-describedby={error ? 'credential-error credential-help' : 'credential-help'}
            aria-invalid={error ? true : undefined}
            required
          />
          <p id="credential-help" class="muted small">
            The same credentials as the API: a key from <code>caxton key create</code> (the first start writes an admin
            key to <code>&lt;data_dir&gt;/admin.key</code>) or a token from your single sign-on. It is kept for this tab
            only.
          </p>
          {error && (
            <p id="credential-error" class="field-error" role="alert">
              {error}
            </p>
          )}
          <button type="submit" disabled={busy}>
            {busy ? 'Checking…' : 'Sign in'}
          </button>
        </form>
      </section>
    </main>
  );
}
