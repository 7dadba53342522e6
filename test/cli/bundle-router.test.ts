/**
 * The serve bundle's find-my-way (scripts/bundle-find-my-way.mjs): its route-time `new Function`
 * compilations replaced by closures. The same routes, added to the package as published and to
 * the patched one (each bundled by esbuild as the build does), find the same handlers with the
 * same parameters: static, parametric (more than four parameters too), wildcard and regular
 * expression routes, and version and host constraints.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module of the build scripts, without types
import { findMyWayPlugin } from '../../scripts/bundle-find-my-way.mjs';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

afterAll(removeTempDirs);

interface Found {
  handler: (...a: unknown[]) => unknown;
  params: Record<string, string>;
  store?: unknown;
}
interface Router {
  on(method: string, path: string, opts: object, handler: () => string): void;
  find(method: string, path: string, constraints?: object): Found | null;
}
type RouterFactory = (opts?: object) => Router;

async function loadRouter(patched: boolean): Promise<RouterFactory> {
  const require = createRequire(import.meta.url);
  const out = await build({
    entryPoints: [require.resolve('find-my-way')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    write: false,
    plugins: patched ? [findMyWayPlugin as never] : [],
    logLevel: 'silent',
  });
  const file = join(makeTempDir('caxton-fmw-'), `${patched ? 'patched' : 'original'}.cjs`);
  writeFileSync(file, out.outputFiles[0]!.text);
  return require(file) as RouterFactory;
}

const ROUTES: [string, string, object][] = [
  ['GET', '/', {}],
  ['GET', '/health', {}],
  ['GET', '/ready', {}],
  ['GET', '/api/v1/agents', {}],
  ['POST', '/api/v1/agents', {}],
  ['GET', '/api/v1/agents/:name', {}],
  ['DELETE', '/api/v1/agents/:name', {}],
  ['POST', '/api/v1/agents/:name/invoke', {}],
  ['GET', '/api/v1/agents/:name/versions/:version', {}],
  ['GET', '/api/v1/a/:p1/b/:p2/c/:p3/d/:p4/e/:p5/f/:p6', {}],
  ['GET', '/api/v1/files/*', {}],
  ['GET', '/api/v1/items/:id(^\\d+)', {}],
  ['GET', '/api/v1/items/:id(^\\d+)/parts', {}],
  ['GET', '/api/v1/agentsmith', {}],
  ['GET', '/api/v1/versioned', { constraints: { version: '1.2.0' } }],
  ['GET', '/api/v1/versioned', { constraints: { version: '2.0.0' } }],
  ['GET', '/api/v1/versioned', {}],
  ['GET', '/api/v1/hosted', { constraints: { host: 'a.example' } }],
  ['GET', '/api/v1/hosted', {}],
  ['GET', '/ui', {}],
  ['GET', '/ui/*', {}],
];

const LOOKUPS: [string, string, object?][] = [
  ['GET', '/'],
  ['GET', '/health'],
  ['GET', '/healthz'],
  ['GET', '/api/v1/agents'],
  ['POST', '/api/v1/agents'],
  ['PUT', '/api/v1/agents'],
  ['GET', '/api/v1/agents/echo'],
  ['DELETE', '/api/v1/agents/echo'],
  ['POST', '/api/v1/agents/echo/invoke'],
  ['POST', '/api/v1/agents/echo/invok'],
  ['GET', '/api/v1/agents/echo/versions/3'],
  ['GET', '/api/v1/a/1/b/2/c/3/d/4/e/5/f/6'],
  ['GET', '/api/v1/a/1/b/2/c/3/d/4/e/5/f'],
  ['GET', '/api/v1/files/some/deep/file.txt'],
  ['GET', '/api/v1/items/42'],
  ['GET', '/api/v1/items/x42'],
  ['GET', '/api/v1/items/42/parts'],
  ['GET', '/api/v1/agentsmith'],
  ['GET', '/api/v1/agentsmit'],
  ['GET', '/api/v1/versioned', { version: '1.x' }],
  ['GET', '/api/v1/versioned', { version: '2.0.0' }],
  ['GET', '/api/v1/versioned', { version: '3.x' }],
  ['GET', '/api/v1/versioned', {}],
  ['GET', '/api/v1/hosted', { host: 'a.example' }],
  ['GET', '/api/v1/hosted', { host: 'b.example' }],
  ['GET', '/api/v1/hosted', {}],
  ['GET', '/ui'],
  ['GET', '/ui/agents/echo'],
  ['GET', '/u'],
];

/** Each lookup's result: which route (by index) and with which parameters, or null. */
function results(factory: RouterFactory): unknown[] {
  const router = factory();
  ROUTES.forEach(([method, path, opts], i) => router.on(method, path, opts, () => `route ${i}`));
  return LOOKUPS.map(([method, path, constraints]) => {
    const found = router.find(method, path, constraints ?? {});
    return found && { route: found.handler(), params: { ...found.params } };
  });
}

describe('the serve bundle: find-my-way without new Function', () => {
  it('finds the same handlers and parameters as the published package', async () => {
    const [original, patched] = await Promise.all([loadRouter(false), loadRouter(true)]);
    const expected = results(original);
    expect(expected.filter(Boolean).length).toBeGreaterThan(15);
    expect(results(patched)).toEqual(expected);
    // The patched bundle compiles nothing as routes without constraints are added (a constraint's
    // request reader is still compiled once per router, as in the published package).
    const F = globalThis.Function;
    let compiled = 0;
    globalThis.Function = new Proxy(F, {
      construct(t, a) {
        compiled++;
        return Reflect.construct(t, a) as object;
      },
    });
    try {
      const router = patched();
      ROUTES.forEach(([method, path, opts], i) => {
        if (!('constraints' in opts)) router.on(method, path, opts, () => `route ${i}`);
      });
    } finally {
      globalThis.Function = F;
    }
    expect(compiled).toBe(0);
  }, 60_000);
});
