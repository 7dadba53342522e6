/**
 * Every state-changing route of a started server has an entry in the audit table (AUDIT_ROUTES):
 * a route added without one fails here, so the integrator cannot forget an action name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_ROUTES, isStateChanging } from '../../src/audit/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { removeTempDirs } from '../helpers/tmp.js';
import { normalizeRoute, routeTable } from '../helpers/routes.js';

let ts: TestServer;
beforeAll(async () => {
  // A2A's routes exist only when it exposes agents.
  ts = await startTestServer({ toml: '[a2a]\nexpose = ["*"]\n' });
});
afterAll(async () => {
  await ts?.close();
  removeTempDirs();
});

describe('the audit route table', () => {
  it('names an action (or an explicit null) for every state-changing route', () => {
    const routes = routeTable(ts.server.app);
    // The parser read the table: the known routes are there, with their parameters.
    expect(routes).toContainEqual({ method: 'POST', path: '/api/v1/agents' });
    expect(routes).toContainEqual({ method: 'DELETE', path: '/api/v1/agents/:' });
    expect(routes).toContainEqual({ method: 'POST', path: '/api/v1/tools/:/:/call' });
    expect(routes).toContainEqual({ method: 'POST', path: '/mcp' });
    expect(routes).toContainEqual({ method: 'POST', path: '/a2a/:' });
    expect(routes).toContainEqual({ method: 'GET', path: '/api/v1/audit' });
    const mapped = new Set(
      Object.keys(AUDIT_ROUTES).map((k) => {
        const [method, url] = k.split(' ') as [string, string];
        return `${method} ${normalizeRoute(url)}`;
      }),
    );
    const changing = routes.filter((r) => isStateChanging(r.method, r.path));
    expect(changing.length).toBeGreaterThan(20);
    const missing = changing.map((r) => `${r.method} ${r.path}`).filter((k) => !mapped.has(k));
    expect(
      missing,
      `state-changing routes without an entry in AUDIT_ROUTES (src/audit/actions.ts): ${missing.join(', ')}`,
    ).toEqual([]);
  });

  it('has no entry for a route that does not exist (a typo would silently record nothing)', () => {
    const served = new Set(routeTable(ts.server.app).map((r) => `${r.method} ${r.path}`));
    const stale = Object.keys(AUDIT_ROUTES).filter((k) => {
      const [method, url] = k.split(' ') as [string, string];
      return !served.has(`${method} ${normalizeRoute(url)}`);
    });
    expect(stale).toEqual([]);
  });
});
