/**
 * The fuzz harness's own guarantees (part of `npm test`): a parser call that never returns does
 * not hang the run — the watchdog saves the input to the corpus, names target and seed, and
 * kills the process.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

afterAll(() => removeTempDirs());

describe('fuzz harness watchdog', () => {
  it('ends a run whose parser call never returns, saving the input and printing the seed', () => {
    const corpusDir = makeTempDir('caxton-fuzz-corpus-');
    const script = fileURLToPath(new URL('./fixtures/spin.ts', import.meta.url));
    const res = spawnSync(process.execPath, ['--import', 'tsx', script], {
      env: {
        ...process.env,
        CAXTON_FUZZ_CORPUS_DIR: corpusDir,
        CAXTON_FUZZ_WATCHDOG_MS: '1000',
        CAXTON_FUZZ_SEED: '4242',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(res.signal, res.stderr).toBe('SIGKILL');
    expect(res.stderr).toMatch(/FUZZ HANG: target spin: one call ran over 1000 ms; seed 4242; input saved to /);
    const files = readdirSync(join(corpusDir, 'spin'));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^hang-[0-9a-f]{16}\.txt$/);
    expect(readFileSync(join(corpusDir, 'spin', files[0]!), 'utf8')).toBe('the input that hangs');
  });
});
