/**
 * The files a workspace.bash command created or changed: the workspace is walked before and after
 * the command (the bounded, no-follow walk of glob and ls: links never followed, private
 * directories and read-denied paths skipped, `.git` and `node_modules` not entered) and each
 * regular file whose identity, size or modification time differs is named. A command's effects are
 * not in its arguments, so this is how its files are known (the A2A task carries them, src/a2a/files.ts).
 * Nothing is read here: the names are read back later through the grant (readWorkspaceFile).
 */
import type { Workspace } from './grant.js';
import { DEFAULT_SKIP_DIRS, walkFiles } from './walk.js';

/** Most entries one snapshot visits; a larger workspace is tracked in its first entries only. */
export const SNAPSHOT_ENTRIES = 20_000;
/** Longest one snapshot walks. */
export const SNAPSHOT_MS = 2_000;
/** Most changed files one command reports. */
export const MAX_CHANGED_FILES = 100;

/** A file's identity and state as lstat gives them, keyed by its path below the root. */
export type Snapshot = ReadonlyMap<string, string>;

const stateOf = (s: { dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number }): string =>
  `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;

/** The workspace's regular files, bounded; undefined when it cannot be walked (no grant, no write grant). */
export function snapshotWorkspace(ws: Workspace): Snapshot | undefined {
  if (!ws.writable) return undefined;
  try {
    const walk = walkFiles(ws, ws.root(), {
      maxEntries: SNAPSHOT_ENTRIES,
      deadline: Date.now() + SNAPSHOT_MS,
      hidden: true,
      skipDirs: DEFAULT_SKIP_DIRS,
      skipPaths: ws.hidden(),
      skip: ws.readDenied,
    });
    return new Map(walk.files.map((f) => [f.rel, stateOf(f.stats)]));
  } catch {
    return undefined;
  }
}

/** The paths (below the root, `/`-separated) new or changed since `before`, in walk order, at most MAX_CHANGED_FILES. */
export function changedSince(ws: Workspace, before: Snapshot | undefined): string[] {
  if (before === undefined) return [];
  const after = snapshotWorkspace(ws);
  if (after === undefined) return [];
  const out: string[] = [];
  for (const [rel, state] of after) {
    if (before.get(rel) === state) continue;
    out.push(rel);
    if (out.length >= MAX_CHANGED_FILES) break;
  }
  return out;
}
