/**
 * The MCP conformance suite's client scenarios (@modelcontextprotocol/conformance, pinned in
 * devDependencies) against Caxton's MCP client (test/mcp/conformance/client.mjs: dist/mcp with the
 * OAuth provider). Every scenario the suite lists is run; the ones that do not pass must be
 * exactly those in test/mcp/conformance/expected-client-failures.json, with the same result
 * (fail / warning): a new failure and an unexpected pass both fail this test. The suite needs
 * Node 22's fs.globSync, provided on Node 20 by scripts/node20-globsync.mjs.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertBuilt } from '../cli/helpers/cli.js';
import { repoRoot } from './helpers.js';

const SHIM = join(repoRoot, 'scripts/node20-globsync.mjs');
const SUITE = join(repoRoot, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const CLIENT = join(repoRoot, 'test/mcp/conformance/client.mjs');
const EXPECTED = JSON.parse(
  readFileSync(join(repoRoot, 'test/mcp/conformance/expected-client-failures.json'), 'utf8'),
) as { not_offered: Record<string, { result: string; reason: string }> };
/**
 * Per scenario (the suite's own client timeout is below it). A scenario takes 3–5 s alone; beside
 * the rest of the test suite on two cores one has taken over 15 s, and a client the suite stops
 * for time is reported as a failed check, not as slow.
 */
const SCENARIO_BUDGET_MS = 45_000;
const CLIENT_TIMEOUT_MS = 35_000;
const CONCURRENCY = 3;
const out = mkdtempSync(join(tmpdir(), 'caxton-conformance-'));

afterAll(() => rmSync(out, { recursive: true, force: true }));

function run(args: string[], timeoutMs: number): Promise<{ code: number | null; text: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((res) => {
    const child = spawn(process.execPath, ['--import', SHIM, SUITE, ...args], {
      cwd: out,
      env: { PATH: process.env.PATH ?? '', HOME: out, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, text, ms: Date.now() - t0 });
    });
  });
}

// eslint-disable-next-line no-control-regex
const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

describe('MCP conformance suite, client scenarios', () => {
  it('fails exactly the scenarios listed as not offered', async () => {
    assertBuilt();
    const list = await run(['list', '--client'], 20_000);
    const scenarios = [...plain(list.text).matchAll(/^\s+- (\S+)/gm)].map((m) => m[1]!);
    expect(scenarios.length, list.text).toBeGreaterThan(10);

    const results: Record<string, { result: 'pass' | 'warning' | 'fail'; summary: string; ms: number }> = {};
    const queue = [...scenarios];
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
          const r = await run(
            [
              'client',
              '--command',
              `${JSON.stringify(process.execPath)} ${JSON.stringify(CLIENT)}`,
              '--scenario',
              s,
              '--timeout',
              String(CLIENT_TIMEOUT_MS),
              '-o',
              out,
            ],
            SCENARIO_BUDGET_MS,
          );
          const text = plain(r.text);
          const summary = /^Passed: .*$/m.exec(text)?.[0] ?? `no result (exit ${r.code})`;
          const m = /Passed: (\d+)\/(\d+), (\d+) failed, (\d+) warnings/.exec(summary);
          const result =
            r.code === 0 && m && m[3] === '0' && m[4] === '0' ? 'pass' : m && m[3] === '0' ? 'warning' : 'fail';
          results[s] = { result, summary, ms: r.ms };
        }
      }),
    );
    // The table in the test output (and in docs/mcp.md).
    console.log(
      Object.entries(results)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([s, r]) => `${r.result.padEnd(8)} ${s.padEnd(44)} ${r.summary}  (${(r.ms / 1000).toFixed(1)} s)`)
        .join('\n'),
    );
    const notPassing = Object.fromEntries(
      Object.entries(results)
        .filter(([, r]) => r.result !== 'pass')
        .map(([s, r]) => [s, r.result]),
    );
    const expected = Object.fromEntries(Object.entries(EXPECTED.not_offered).map(([s, e]) => [s, e.result]));
    expect(notPassing).toEqual(expected);
  }, 480_000);
});
