/**
 * better-sqlite3's native addon, named by its path. Without it a process's first connection finds
 * the addon through the `bindings` package, which tries candidate paths one by one, each a failed
 * `require` (about 4 ms of CPU, on every start). Where the package keeps its addon elsewhere (a
 * Debug build), nothing is named and better-sqlite3 finds it itself.
 */
import { createRequire } from 'node:module';

let found: string | null | undefined;

/** `{ nativeBinding }` for better-sqlite3's options, or nothing. */
export function sqliteAddon(): { nativeBinding?: string } {
  if (found === undefined) {
    try {
      found = createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node');
    } catch {
      found = null;
    }
  }
  return found === null ? {} : { nativeBinding: found };
}
