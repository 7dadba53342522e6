/**
 * API keys for tests of a server with authentication on: the admin key the server wrote at its
 * first start, and new keys with a role and scopes made through POST /api/v1/keys.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { http } from './http.js';

/** The Authorization header for a key. */
export const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** The admin key the server bootstrapped in its data dir. */
export const adminKeyOf = (dataDir: string): string => readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();

/** A new key (`body`: role, agents, tools, memory, limits...), created by `admin`; its secret. */
export async function createKey(
  url: string,
  admin: string,
  name: string,
  body: Record<string, unknown>,
): Promise<string> {
  const r = await http<{ secret: string }>(url, 'POST', '/api/v1/keys', {
    body: JSON.stringify({ name, ...body }),
    contentType: 'application/json',
    headers: bearer(admin),
  });
  expect(r.status, r.text).toBe(201);
  return r.json.secret;
}
