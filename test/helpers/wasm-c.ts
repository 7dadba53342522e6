/**
 * Builds a C fixture (test/fixtures/wasm-c/NAME.c) into a WebAssembly module with Debian's clang
 * and wasi-libc, against the C SDK (sdk/c). Callers ask `hasSystem('wasm-c')` first.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './fixtures.js';

export function buildCFixture(name: string, out: string, opt = '-O2'): void {
  execFileSync(
    'clang',
    [
      '--target=wasm32-wasi',
      '--sysroot=/usr',
      opt,
      `-I${join(repoRoot, 'sdk/c')}`,
      '-nostartfiles',
      '-Wl,--no-entry',
      '-o',
      out,
      join(repoRoot, `test/fixtures/wasm-c/${name}.c`),
    ],
    { stdio: 'pipe', timeout: 120_000 },
  );
}
