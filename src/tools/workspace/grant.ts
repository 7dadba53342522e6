/**
 * The workspace grant: the one directory the workspace tools may touch. Every path an agent
 * gives is resolved here, once, to a real path inside the granted root (symlinks followed), so a
 * `..`, an absolute path elsewhere or a symlink leading out is refused before any file is opened.
 */
import { realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { WorkspaceConfig } from '../../config/index.js';
import type { CallOutcome } from '../../audit/index.js';

/** A refusal the model sees as a tool error; `denied` for grants and escapes, `invalid_input` for bad arguments. */
export class WorkspaceError extends Error {
  constructor(
    message: string,
    readonly outcome: Exclude<CallOutcome, 'ok'> = 'denied',
  ) {
    super(message);
    this.name = 'WorkspaceError';
  }
}

export const NOT_GRANTED =
  'the workspace is not granted: set [workspace] path = "<directory>" in caxton.toml (relative to caxton.toml) to let agents use the workspace tools';
export const WRITE_NOT_GRANTED =
  'writing in the workspace is not granted: set [workspace] write = true in caxton.toml to let agents change files';

/** A directory's identity, the same whatever name it is reached by. */
export function dirId(st: { dev: number; ino: number }): string {
  return `${st.dev}:${st.ino}`;
}

/** Whether `p` is `root` or below it (both absolute). */
export function inside(root: string, p: string): boolean {
  const r = relative(root, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r) && r.split(sep)[0] !== '..');
}

export class Workspace {
  readonly #cfg: WorkspaceConfig;
  readonly #private: readonly string[];
  #root: string | undefined;
  #hidden: string[] | undefined;
  #privateIds: Set<string> | undefined;

  /**
   * `privateDirs`: directories inside the workspace that no workspace tool reaches — the server's
   * data directory (its databases, keys and suspended executions) when the workspace holds it, as
   * a project's own directory does.
   */
  constructor(cfg: WorkspaceConfig, privateDirs: readonly string[] = []) {
    this.#cfg = cfg;
    this.#private = privateDirs;
    // Taken now, while the private directories are where the server made them.
    if (cfg.path !== undefined && privateDirs.length > 0)
      try {
        this.privateIds();
      } catch {
        // Not usable yet: the first call says why.
      }
  }

  /** The real paths of the private directories inside the workspace (walks skip them; bash hides them). */
  hidden(): readonly string[] {
    if (this.#hidden !== undefined) return this.#hidden;
    const root = this.root();
    const out: string[] = [];
    for (const d of this.#private) {
      let real: string;
      try {
        real = realpathSync(d);
      } catch {
        real = resolve(d);
      }
      if (inside(root, real) && real !== root) out.push(real);
    }
    this.#hidden = out;
    return out;
  }

  /**
   * The identities ("dev:ino") of the private directories, so a walk refuses one by what it is,
   * not by its name (a directory above it may have been renamed since).
   */
  privateIds(): ReadonlySet<string> {
    if (this.#privateIds !== undefined && this.#privateIds.size === this.hidden().length) return this.#privateIds;
    const ids = new Set<string>();
    for (const d of this.hidden()) {
      try {
        ids.add(dirId(statSync(d)));
      } catch {
        // Not made yet: found again on the next call.
      }
    }
    this.#privateIds = ids;
    return ids;
  }

  /** Whether a permission rule denies reading a path (set by the tools' owner; walks leave such entries out). */
  readDenied: ((path: string) => boolean) | undefined;

  get writable(): boolean {
    return this.#cfg.write;
  }

  get bash(): WorkspaceConfig['bash'] {
    return this.#cfg.bash;
  }

  /** The real path of the granted directory; throws the refusal naming the setting when none is granted or it is not a directory. */
  root(): string {
    if (this.#root !== undefined) return this.#root;
    const p = this.#cfg.path;
    if (p === undefined) throw new WorkspaceError(NOT_GRANTED);
    let real: string;
    try {
      real = realpathSync(p);
      if (!statSync(real).isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw new WorkspaceError(
        `the workspace directory ${p} ([workspace] path in caxton.toml) is not usable: ${e instanceof Error ? e.message : String(e)}`,
        'io_error',
      );
    }
    this.#root = real;
    return real;
  }

  /** Throws the refusal naming `[workspace] write` unless writing is granted. */
  requireWrite(): void {
    this.root();
    if (!this.#cfg.write) throw new WorkspaceError(WRITE_NOT_GRANTED);
  }

  /**
   * The real path for `p` (absolute: must be inside the workspace; relative: to its root; absent:
   * the root). The file need not exist: its nearest existing ancestor is resolved instead, so a
   * new file cannot be placed through a symlink leading out either.
   */
  resolve(p: unknown, field = 'file_path'): string {
    const root = this.root();
    if (p === undefined || p === null || p === '') return root;
    if (typeof p !== 'string') throw new WorkspaceError(`"${field}" must be a string`, 'invalid_input');
    if (p.includes('\0')) throw new WorkspaceError(`"${field}" must not contain a NUL character`, 'invalid_input');
    if (p.length > 4096) throw new WorkspaceError(`"${field}" is longer than 4096 characters`, 'invalid_input');
    const configured = resolve(this.#cfg.path ?? root);
    // An absolute path may name the workspace as configured or as its real path.
    let abs = isAbsolute(p) ? resolve(p) : resolve(root, p);
    if (isAbsolute(p) && !inside(root, abs) && inside(configured, abs)) abs = join(root, relative(configured, abs));
    if (!inside(root, abs))
      throw new WorkspaceError(`${p} is outside the workspace (${root}): the workspace tools work only inside it`);
    // Follow symlinks: the real path of the nearest existing ancestor, plus what does not exist yet.
    let existing = abs;
    let rest = '';
    for (;;) {
      try {
        const real = realpathSync(existing);
        const full = rest === '' ? real : join(real, rest);
        if (!inside(root, full))
          throw new WorkspaceError(`${p} leads outside the workspace (${root}) through a symbolic link: refused`);
        if (this.hidden().some((h) => inside(h, full)))
          throw new WorkspaceError(`${p} is in the server's data directory, which the workspace tools never reach`);
        return full;
      } catch (e) {
        if (e instanceof WorkspaceError) throw e;
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR')
          throw new WorkspaceError(`${p}: ${(e as Error).message}`, 'io_error');
        const parent = dirname(existing);
        if (parent === existing) throw new WorkspaceError(`${p}: no such file or directory`, 'io_error');
        rest = rest === '' ? relative(parent, existing) : join(relative(parent, existing), rest);
        existing = parent;
      }
    }
  }
}
