/**
 * Single sign-on for the web console (`[auth.jwt.sso]`): the OpenID Connect authorization code
 * flow with PKCE. The browser goes to the issuer's authorization endpoint and comes back to
 * /ui/auth/callback with a code; Caxton exchanges the code at the token endpoint (server to
 * server: no CORS at the issuer, and a confidential client's secret never reaches the browser)
 * and hands the console the token it then sends as `Authorization: Bearer`, checked like any
 * other JWT by [auth.jwt]. Caxton keeps nothing: no session, no cookie.
 *
 * The exchange is outside input reaching an outside service, so it is bounded: sizes checked by
 * the route, 5 s per request to the issuer, answers over 64 KiB refused, and at most 8 exchanges
 * in flight (more get 503 with Retry-After) so unauthenticated callers cannot turn Caxton into a
 * flood against the issuer.
 */
import { CaxtonError, describeError } from '../shared/errors.js';
import { isSecureUrl, SSO_CALLBACK_PATH, type JwtConfig, type SsoConfig } from './jwt-config.js';

export { SSO_CALLBACK_PATH };

/**
 * What the console needs to send the browser to the issuer: all of it public (the browser shows
 * it in its address bar). The client secret is never part of it.
 */
export interface SsoConsoleSettings {
  authorization_endpoint: string;
  client_id: string;
  scope: string;
  redirect_path: string;
}

export interface SsoEndpoints {
  authorization_endpoint: string;
  token_endpoint: string;
}

const TIMEOUT_MS = 5000;
const MAX_ANSWER_BYTES = 64 * 1024;
const MAX_IN_FLIGHT = 8;

/** Reads at most MAX_ANSWER_BYTES of a response body as JSON. */
async function boundedJson(res: Response, what: string): Promise<unknown> {
  const reader = res.body?.getReader();
  if (!reader) return undefined;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel();
      throw new Error(`${what} answered more than ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(value);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`${what} answered HTTP ${res.status} with a body that is not JSON`);
  }
}

/** Whether `a` is the URL `b` (after URL normalization: case of scheme and host, default port), with nothing more. */
function sameUri(a: string, b: string): boolean {
  let u: URL;
  let v: URL;
  try {
    u = new URL(a);
    v = new URL(b);
  } catch {
    return false;
  }
  return u.href === v.href && u.search === '' && u.hash === '' && u.username === '' && u.password === '';
}

export class SsoClient {
  readonly #issuer: string;
  readonly #cfg: SsoConfig;
  readonly #secret: string | undefined;
  #endpoints: Promise<SsoEndpoints> | undefined;
  #inFlight = 0;

  constructor(jwt: Pick<JwtConfig, 'issuer'> & { sso: SsoConfig }, env: NodeJS.ProcessEnv = process.env) {
    this.#issuer = jwt.issuer;
    this.#cfg = jwt.sso;
    if (this.#cfg.client_secret_env !== undefined) {
      this.#secret = env[this.#cfg.client_secret_env];
      if (!this.#secret) {
        throw new CaxtonError(
          'invalid_config',
          `auth.jwt.sso.client_secret_env names ${this.#cfg.client_secret_env}, which is not set; set it to the console client's secret, or remove client_secret_env for a public client`,
          {
            field: 'auth.jwt.sso.client_secret_env',
          },
        );
      }
    }
  }

  get clientId(): string {
    return this.#cfg.client_id;
  }

  get scope(): string {
    return this.#cfg.scopes.join(' ');
  }

  /** The console's sign-in settings (see SsoConsoleSettings). */
  async consoleSettings(): Promise<SsoConsoleSettings> {
    const { authorization_endpoint } = await this.endpoints();
    return { authorization_endpoint, client_id: this.clientId, scope: this.scope, redirect_path: SSO_CALLBACK_PATH };
  }

  /**
   * Refuses a redirect URI other than the one the console was registered with: `[auth.jwt.sso]
   * redirect_uri`, else this server's callback at `requestOrigin` (the origin the exchange was sent
   * to, whose host the browser-safety checks have admitted). Compared whole — scheme, host, port
   * and path — so a callback path on another host cannot have a code exchanged for it.
   */
  #checkRedirectUri(redirectUri: string, requestOrigin: string): void {
    const expected = this.#cfg.redirect_uri ?? `${requestOrigin}${SSO_CALLBACK_PATH}`;
    if (sameUri(redirectUri, expected)) return;
    throw new CaxtonError(
      'invalid_request',
      `redirect_uri must be ${this.#cfg.redirect_uri === undefined ? "this server's" : 'the configured'} ${expected} exactly (scheme, host, port and path); sign in again from the console`,
      { field: 'redirect_uri' },
    );
  }

  /** The issuer's endpoints: configured, or discovered once (a failed discovery is tried again on the next sign-in). */
  endpoints(): Promise<SsoEndpoints> {
    const { authorization_endpoint, token_endpoint } = this.#cfg;
    if (authorization_endpoint && token_endpoint) return Promise.resolve({ authorization_endpoint, token_endpoint });
    this.#endpoints ??= this.#discover().catch((e: unknown) => {
      this.#endpoints = undefined;
      throw e;
    });
    return this.#endpoints;
  }

  async #discover(): Promise<SsoEndpoints> {
    const url = `${this.#issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    let doc: unknown;
    try {
      const res = await fetch(url, {
        signal: AbortSignal.timeout(TIMEOUT_MS),
        headers: { accept: 'application/json' },
        redirect: 'error',
      });
      doc = await boundedJson(res, 'the issuer');
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
    } catch (e) {
      throw new CaxtonError(
        'not_ready',
        `single sign-on is unavailable: the issuer's discovery document ${url} could not be read (${describeError(e)}); try again, or set authorization_endpoint and token_endpoint in [auth.jwt.sso]`,
      );
    }
    const d = (doc ?? {}) as Record<string, unknown>;
    const authorization = this.#cfg.authorization_endpoint ?? d.authorization_endpoint;
    const token = this.#cfg.token_endpoint ?? d.token_endpoint;
    if (!isSecureUrl(authorization) || !isSecureUrl(token)) {
      throw new CaxtonError(
        'not_ready',
        `single sign-on is unavailable: the issuer's discovery document ${url} has no https authorization_endpoint and token_endpoint; set them in [auth.jwt.sso]`,
      );
    }
    return { authorization_endpoint: authorization, token_endpoint: token };
  }

  /**
   * Exchanges the code for the configured token, once the redirect URI is the registered one
   * (`requestOrigin`: see #checkRedirectUri); a refusal by the issuer is the caller's (400), an
   * unreachable issuer a 503.
   */
  async exchange(
    code: string,
    verifier: string,
    redirectUri: string,
    requestOrigin: string,
  ): Promise<{ token: string; expires_in?: number }> {
    this.#checkRedirectUri(redirectUri, requestOrigin);
    if (this.#inFlight >= MAX_IN_FLIGHT)
      throw new CaxtonError('rate_limited', 'too many sign-ins at once; try again in a second', { retry_after: 1 });
    this.#inFlight++;
    try {
      const { token_endpoint } = await this.endpoints();
      const form = new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        code_verifier: verifier,
        redirect_uri: redirectUri,
        client_id: this.#cfg.client_id,
      });
      const headers: Record<string, string> = {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      };
      if (this.#secret !== undefined) {
        headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(this.#cfg.client_id)}:${encodeURIComponent(this.#secret)}`).toString('base64')}`;
      }
      let res: Response;
      let body: Record<string, unknown>;
      try {
        res = await fetch(token_endpoint, {
          method: 'POST',
          headers,
          body: form,
          signal: AbortSignal.timeout(TIMEOUT_MS),
          redirect: 'error',
        });
        body = ((await boundedJson(res, 'the token endpoint')) ?? {}) as Record<string, unknown>;
      } catch (e) {
        throw new CaxtonError(
          'not_ready',
          `single sign-on is unavailable: the issuer's token endpoint did not answer (${describeError(e)}); try again`,
        );
      }
      if (!res.ok) {
        // OAuth error codes are short ASCII words; anything else from the issuer is not echoed.
        const err =
          typeof body.error === 'string' && /^[a-z_]{1,64}$/.test(body.error) ? body.error : `HTTP ${res.status}`;
        if (res.status >= 500)
          throw new CaxtonError(
            'not_ready',
            `single sign-on is unavailable: the issuer's token endpoint answered ${err}; try again`,
          );
        throw new CaxtonError(
          'invalid_request',
          `the identity provider refused the sign-in code (${err}); sign in again`,
          { field: 'code' },
        );
      }
      const token = body[this.#cfg.token];
      if (typeof token !== 'string' || token.length === 0) {
        throw new CaxtonError(
          'not_ready',
          `the identity provider's answer has no ${this.#cfg.token}; check [auth.jwt.sso] token (it is "${this.#cfg.token}")`,
        );
      }
      const expires =
        typeof body.expires_in === 'number' && Number.isFinite(body.expires_in) ? body.expires_in : undefined;
      return { token, ...(expires !== undefined && { expires_in: expires }) };
    } finally {
      this.#inFlight--;
    }
  }
}
