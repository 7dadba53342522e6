/**
 * Secrets are scrubbed by value, never by word: a configuration that names a field
 * (`[auth.jwt.sso] token = "access_token"`) or an endpoint (`authorization_endpoint`) registers no
 * secret, so agent output mentioning `access_token` or the issuer's URL comes through unchanged,
 * while configured keys and the values of secret fields are still scrubbed.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadServerConfig, redactSecrets, REDACTED, secretValues } from '../../src/config/index.js';
import { SecretScrubber } from '../../src/shared/secrets.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

afterEach(() => removeTempDirs());

const ENV = { OPENAI_API_KEY: 'sk-live-0123456789abcdef', SSO_SECRET: 'sso-client-secret-0123' };

function config() {
  const file = join(makeTempDir('caxton-config-'), 'caxton.toml');
  writeFileSync(
    file,
    `
[llm.providers.openai]
type = "openai"
api_key_env = "OPENAI_API_KEY"

[auth.jwt]
issuer = "https://issuer.example.com/"
audience = "caxton"
jwks_url = "https://issuer.example.com/jwks"

[auth.jwt.sso]
client_id = "caxton-console"
client_secret_env = "SSO_SECRET"
token = "access_token"
authorization_endpoint = "https://issuer.example.com/authorize"
token_endpoint = "https://issuer.example.com/token"

[tools.search.config]
api_key = "tool-config-key-0123"
password = "hunter2hunter2"
`,
  );
  return loadServerConfig({ file, env: ENV });
}

describe('secrets are values, never words', () => {
  it('agent output naming access_token, id_token or the issuer URL is left alone; configured keys are scrubbed', () => {
    const scrubber = new SecretScrubber(secretValues(config(), ENV));
    const text = 'read data.access_token (or id_token) from https://issuer.example.com/authorize';
    expect(scrubber.scrub(text)).toBe(text);
    for (const secret of [
      'sk-live-0123456789abcdef',
      'sso-client-secret-0123',
      'tool-config-key-0123',
      'hunter2hunter2',
    ])
      expect(scrubber.scrub(`the value is ${secret}.`)).toBe(`the value is ${REDACTED}.`);
  });

  it('a field name registered as a secret is still not a secret', () => {
    const scrubber = new SecretScrubber(['access_token', 'refresh_token', 'authorization', 'real-secret-0123']);
    expect(scrubber.scrub('access_token refresh_token Authorization real-secret-0123')).toBe(
      `access_token refresh_token Authorization ${REDACTED}`,
    );
  });

  it('the redacted configuration keeps choices and endpoints, hides secret values', () => {
    const r = redactSecrets(config()) as unknown as {
      auth: { jwt: { sso: Record<string, unknown> } };
      tools: { search: { config: Record<string, unknown> } };
    };
    expect(r.auth.jwt.sso).toMatchObject({
      client_id: 'caxton-console',
      client_secret_env: 'SSO_SECRET',
      token: 'access_token',
      authorization_endpoint: 'https://issuer.example.com/authorize',
      token_endpoint: 'https://issuer.example.com/token',
    });
    expect(r.tools.search.config).toMatchObject({ api_key: REDACTED, password: REDACTED });
  });
});
