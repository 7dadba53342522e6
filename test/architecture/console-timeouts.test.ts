/**
 * Every console test file sets its page waits and test timeout itself (`consoleTimeouts()` at its
 * top, test/console/harness.ts): test files share worker processes (`isolate: false`), so a setting
 * made when the harness is first imported reaches one file per worker, and the others would run
 * with vitest's 30 s.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const dir = join(import.meta.dirname, '../console');

describe('console test files', () => {
  it('call consoleTimeouts() before their tests when they use the harness', () => {
    const missing = readdirSync(dir)
      .filter((f) => f.endsWith('.test.ts'))
      .filter((f) => {
        const text = readFileSync(join(dir, f), 'utf8');
        return text.includes("from './harness.js'") && !/^consoleTimeouts\(\);$/m.test(text);
      });
    expect(missing).toEqual([]);
  });
});
