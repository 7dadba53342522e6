/**
 * A bounded walk of the workspace for glob, grep and ls: symbolic links are not followed (a link
 * could lead out, or into a cycle), hidden entries are skipped as ripgrep skips them, and the
 * walk stops at a number of entries and at a deadline. Each directory is opened from the root by
 * descriptors (at.ts), so one swapped for a link while the walk runs is skipped, not listed.
 */
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { at, inDir, type Confined } from './at.js';
import { WorkspaceError } from './grant.js';

export interface WalkEntry {
  /** Absolute real path. */
  path: string;
  /** Relative to the walk's start, `/`-separated. */
  rel: string;
  stats: Stats;
}

export interface WalkLimits {
  /** Most entries (files and directories) visited. */
  maxEntries: number;
  /** Absolute time (ms) to stop at. */
  deadline: number;
  /** Whether entries starting with "." are visited (default false). */
  hidden?: boolean;
  /** Directory names never entered. */
  skipDirs?: ReadonlySet<string>;
  /** Directories (real paths) never entered: the workspace's private ones. */
  skipPaths?: readonly string[];
  /** Entries (real paths) left out: those a permission rule denies reading. */
  skip?: (path: string) => boolean;
  /** Directories deeper than this are not entered. */
  maxDepth?: number;
  /** Whether symbolic links are reported (in `links`, never followed); default false. */
  links?: boolean;
}

export interface WalkResult {
  files: WalkEntry[];
  /** The symbolic links met, when `links` asked for them (their own lstat, not the target's). */
  links: WalkEntry[];
  /** Why the walk stopped early, if it did. */
  truncated?: string;
}

export const DEFAULT_SKIP_DIRS: ReadonlySet<string> = new Set(['.git', 'node_modules']);

/** Files under `start` (a real directory inside the workspace `ws`), in directory order, depth first. */
export function walkFiles(
  ws: Confined,
  start: string,
  limits: WalkLimits,
  onDir?: (e: WalkEntry, depth: number) => boolean,
): WalkResult {
  const files: WalkEntry[] = [];
  const links: WalkEntry[] = [];
  let seen = 0;
  const stack: { dir: string; rel: string; depth: number }[] = [{ dir: start, rel: '', depth: 0 }];
  while (stack.length > 0) {
    const { dir, rel, depth } = stack.pop()!;
    if (Date.now() > limits.deadline) return { files, links, truncated: 'the time limit was reached' };
    const subdirs: { dir: string; rel: string; depth: number }[] = [];
    let full = false;
    try {
      inDir(ws, dir, (fd) => {
        for (const name of readdirSync(at(fd, '.')).sort()) {
          if (!limits.hidden && name.startsWith('.')) continue;
          if (++seen > limits.maxEntries) {
            full = true;
            return;
          }
          const path = join(dir, name);
          const r = rel === '' ? name : `${rel}/${name}`;
          let stats: Stats;
          try {
            stats = lstatSync(at(fd, name));
          } catch {
            continue;
          }
          if (limits.skip?.(path)) continue;
          if (stats.isDirectory()) {
            if (limits.skipDirs?.has(name) || limits.skipPaths?.includes(path)) continue;
            if (limits.maxDepth !== undefined && depth + 1 > limits.maxDepth) continue;
            if (onDir && !onDir({ path, rel: r, stats }, depth + 1)) continue;
            subdirs.push({ dir: path, rel: r, depth: depth + 1 });
          } else if (stats.isFile()) {
            files.push({ path, rel: r, stats });
          } else if (limits.links && stats.isSymbolicLink()) {
            links.push({ path, rel: r, stats });
          }
        }
      });
    } catch (e) {
      // The start refused (a private directory) is the call's answer; below it, the entry is skipped.
      if (depth === 0 && e instanceof WorkspaceError) throw e;
      continue;
    }
    if (full) return { files, links, truncated: `more than ${limits.maxEntries} entries` };
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
  return { files, links };
}
