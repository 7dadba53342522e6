/**
 * `CAXTON_STARTUP_TRACE=1` (src/server/startup-marks.ts): a start of `caxton serve` names its
 * phases on stderr, in the order they happen, through its first answer; bench/startup.ts reads
 * them for its phase breakdown. Without the variable a start writes none. The code-cache path
 * also marks when the bundle is loaded.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, startServe, stopServe, tempDir, waitForOutput } from './helpers/cli.js';

beforeAll(assertBuilt);
afterAll(cleanup);

function project(): string {
  const dir = tempDir('caxton-startup-marks-');
  mkdirSync(join(dir, 'agents'));
  writeFileSync(
    join(dir, 'caxton.toml'),
    'data_dir = "data"\nagents_dir = "agents"\n[auth]\nenabled = false\n[logging]\nlevel = "warn"\n[llm]\ndefault_provider = "fake"\n[llm.providers.fake]\ntype = "scripted"\nscript = "replies.toml"\n',
  );
  writeFileSync(join(dir, 'replies.toml'), 'fallback = "hello"\n');
  writeFileSync(
    join(dir, 'agents', 'echo.toml'),
    'name = "echo"\ndescription = "answers hello"\nsystem_prompt = "Answer."\n',
  );
  return dir;
}

const PHASES = [
  'serve command',
  'configuration loaded',
  'server modules loaded',
  'storage open',
  'agents loaded',
  'tools announced',
  'components started',
  'listening',
  'first answer',
];

/** Starts serve in `dir` with `env`, asks the agent once, returns the startup marks written. */
async function marks(
  dir: string,
  env: Record<string, string>,
): Promise<{ phase: string; wall: number; cpu: number }[]> {
  const p = await startServe({ cwd: dir, env, readyTimeoutMs: 60_000 });
  try {
    const r = await fetch(`${p.url}/api/v1/agents/echo/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ request: 'hi' }),
    });
    expect(r.status).toBe(200);
    if (env.CAXTON_STARTUP_TRACE) await waitForOutput(p, 'stderr', /caxton startup: first answer /, 20_000);
  } finally {
    await stopServe(p, 'SIGTERM', 15_000);
  }
  return [...p.stderr().matchAll(/^caxton startup: (.+) (\S+) (\S+)$/gm)].map((m) => ({
    phase: m[1]!,
    wall: Number(m[2]),
    cpu: Number(m[3]),
  }));
}

describe('caxton serve: startup marks', () => {
  it('names each phase in order through the first answer, with times since the process started', async () => {
    const dir = project();
    const esm = await marks(dir, { CAXTON_STARTUP_TRACE: '1', CAXTON_CODE_CACHE: 'off' });
    expect(esm.map((m) => m.phase)).toEqual(PHASES);
    for (let i = 1; i < esm.length; i++) {
      expect(esm[i]!.wall).toBeGreaterThanOrEqual(esm[i - 1]!.wall);
      expect(esm[i]!.cpu).toBeGreaterThanOrEqual(esm[i - 1]!.cpu);
    }
    // From the serve bundle (the cache is written by this start, used by the next): the bundle's own mark first.
    const cached = await marks(dir, { CAXTON_STARTUP_TRACE: '1' });
    expect(cached.map((m) => m.phase)).toEqual(['bundle loaded', ...PHASES]);
  }, 180_000);

  it('writes none without CAXTON_STARTUP_TRACE', async () => {
    expect(await marks(project(), {})).toEqual([]);
  }, 120_000);
});
