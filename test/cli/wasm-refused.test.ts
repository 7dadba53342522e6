/**
 * `caxton agent run` on a WebAssembly agent (the C pricer, test/fixtures/wasm-c/pricer.c, built
 * with clang) as real child processes against a real `caxton serve`: a run whose every tool call
 * was refused says so and exits 3, as a model's run does; one whose call ran exits 0. Without the
 * C toolchain the file skips, with the helper's one line naming it.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasSystem } from '../helpers/system.js';
import { buildCFixture } from '../helpers/wasm-c.js';
import {
  cleanup,
  expectExit,
  expectNoStackTrace,
  parseJson,
  startScriptedServe,
  tempDir,
  type ScriptedServe,
} from './helpers/cli.js';

const haveC = hasSystem('wasm-c');

/** The pricer asks for the calculator when the request says "use calculator", then answers with its result. */
const pricer = (name: string, tools: string, module: string) => `name = "${name}"
description = "Prices orders with a fixed formula"
capabilities = ["quoting"]
tools = ${tools}

[wasm]
module = ${JSON.stringify(module)}
fuel = 1_000_000
memory = "2MiB"
timeout = "2s"
`;

let s: ScriptedServe;

beforeAll(async () => {
  if (!haveC) return;
  const module = join(tempDir('caxton-wasm-cli-'), 'pricer.wasm');
  buildCFixture('pricer', module);
  s = await startScriptedServe({
    prefix: 'caxton-wasm-refused-',
    agents: {
      'bare-pricer.toml': pricer('bare-pricer', '[]', module),
      'pricer.toml': pricer('pricer', '["calculator"]', module),
    },
  });
}, 180_000);

afterAll(async () => {
  await cleanup();
});

describe.skipIf(!haveC)('caxton agent run on a WebAssembly agent', () => {
  it('a run whose every tool call was refused says so and exits 3, streamed or not; --json carries all_tool_calls_refused', async () => {
    const r = await s.cli('agent', 'run', 'bare-pricer', 'use calculator please');
    expectExit(r, 3);
    expectNoStackTrace(r);
    expect(r.stdout).toMatch(/^the calculator says tool "calculator" is not allowed for agent "bare-pricer"/);
    expect(r.stderr).toMatch(/every tool call of this run was refused \(1\): none ran/);
    expect(r.stderr).toMatch(/\(wasm\/pricer\.wasm@[0-9a-f]{12}, 0 tokens/);

    const streamed = await s.cli('agent', 'run', 'bare-pricer', 'use calculator please', '--stream');
    expectExit(streamed, 3);
    expect(streamed.stderr).toMatch(/every tool call of this run was refused \(1\)/);

    const j = await s.cli('--json', 'agent', 'run', 'bare-pricer', 'use calculator please');
    expectExit(j, 3);
    expect(parseJson<{ all_tool_calls_refused?: boolean; provider: string }>(j)).toMatchObject({
      all_tool_calls_refused: true,
      provider: 'wasm',
    });
  });

  it('a run whose call ran exits 0', async () => {
    const r = await s.cli('agent', 'run', 'pricer', 'use calculator please');
    expectExit(r, 0);
    expect(r.stdout).toBe('the calculator says 42\n');
    expect(r.stderr).not.toMatch(/refused/);
  });
});
