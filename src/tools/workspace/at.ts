/**
 * File operations that no concurrent rename can take out of the workspace (ADR 0111). Node has
 * no openat(), so each operation walks from the workspace root one component at a time through
 * Linux's /proc/self/fd/<dirfd>/<name>, opening every directory O_DIRECTORY|O_NOFOLLOW: a
 * component swapped for a symbolic link at any moment fails the walk (ELOOP/ENOTDIR) instead of
 * being followed, and the final open, create, rename or mkdir happens relative to the last
 * directory descriptor, never through a path the kernel would look up again.
 *
 * Callers pass the real path Workspace.resolve() gave (symlinks inside the workspace already
 * resolved, `..` gone), so the walk meets no link unless one was planted after the check.
 */
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  type Stats,
  unlinkSync,
  writeSync,
} from 'node:fs';
import type * as fsModule from 'node:fs';
import { relative, sep } from 'node:path';
import { dirId, WorkspaceError } from './grant.js';

const DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
// O_NONBLOCK: a FIFO planted in place of a file must not hold the server's thread in open().
const FILE = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** What the walk needs of the workspace: its real root, and the identities ("dev:ino") of its private directories. */
export interface Confined {
  root(): string;
  privateIds(): ReadonlySet<string>;
}

/** The name `name` in the directory open as `fd`, looked up by the kernel relative to that directory. */
export function at(fd: number, name: string): string {
  return `/proc/self/fd/${fd}/${name}`;
}

/** The components of `path` below `root`; refuses anything the lexical resolution should have removed. */
function components(root: string, path: string): string[] {
  const rel = relative(root, path);
  if (rel === '') return [];
  const parts = rel.split(sep);
  for (const p of parts)
    if (p === '' || p === '.' || p === '..')
      throw new WorkspaceError(`${path} is outside the workspace (${root}): the workspace tools work only inside it`);
  return parts;
}

/** An errno failure of a walk, said in the path the caller gave instead of the /proc name. */
function located(e: unknown, path: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (typeof err.code !== 'string') return e;
  err.message = err.message.replace(/'\/proc\/self\/fd\/\d+\/?[^']*'/g, `'${path}'`);
  return err;
}

/** The refusal when a walk meets a link (planted since the path was resolved), or the plain error otherwise. */
function walkFailure(e: unknown, dirfd: number, name: string, path: string, root: string): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ELOOP' || code === 'ENOTDIR') {
    let link = code === 'ELOOP';
    try {
      link ||= lstatSync(at(dirfd, name)).isSymbolicLink();
    } catch {
      // Gone again: only the wording depends on it.
    }
    if (link)
      return new WorkspaceError(
        `${path} leads outside the workspace (${root}) through a symbolic link: refused (the workspace tools never follow a link that appears while they work)`,
      );
  }
  return located(e, path);
}

/**
 * Opens the directory `parts` names below `root` without following any link; `create` makes
 * missing directories (each made relative to its parent's descriptor, then opened no-follow).
 */
function openChain(ws: Confined, parts: readonly string[], path: string, create: boolean): number {
  const root = ws.root();
  const priv = ws.privateIds();
  let fd = openSync(root, DIR);
  try {
    for (const name of parts) {
      let next: number;
      try {
        next = openSync(at(fd, name), DIR);
      } catch (e) {
        if (!create || (e as NodeJS.ErrnoException).code !== 'ENOENT') throw walkFailure(e, fd, name, path, root);
        try {
          mkdirSync(at(fd, name));
        } catch (m) {
          if ((m as NodeJS.ErrnoException).code !== 'EEXIST') throw located(m, path);
        }
        try {
          next = openSync(at(fd, name), DIR);
        } catch (o) {
          throw walkFailure(o, fd, name, path, root);
        }
      }
      closeSync(fd);
      fd = next;
      // By identity, not by name: a private directory moved elsewhere in the workspace is still refused.
      if (priv.size > 0 && priv.has(dirId(fstatSync(fd))))
        throw new WorkspaceError(`${path} is in the server's data directory, which the workspace tools never reach`);
    }
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Runs `fn` with the directory holding `path` (a real path inside `root`) open, and the last component's name (undefined for the root itself). */
export function inParent<T>(
  ws: Confined,
  path: string,
  create: boolean,
  fn: (dirfd: number, name: string | undefined) => T,
): T {
  const parts = components(ws.root(), path);
  const name = parts.pop();
  const dirfd = openChain(ws, parts, path, create);
  try {
    return fn(dirfd, name);
  } finally {
    closeSync(dirfd);
  }
}

/** Opens `path` for reading, no link followed anywhere along it; undefined when it does not exist. Close the fd. */
export function openAt(ws: Confined, path: string): { fd: number; stats: Stats } | undefined {
  try {
    return inParent(ws, path, false, (dirfd, name) => {
      let fd: number;
      try {
        fd = name === undefined ? openSync(at(dirfd, '.'), DIR) : openSync(at(dirfd, name), FILE);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw walkFailure(e, dirfd, name ?? '.', path, ws.root());
      }
      try {
        return { fd, stats: fstatSync(fd) };
      } catch (e) {
        closeSync(fd);
        throw located(e, path);
      }
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Runs `fn` with the directory `path` open, no link followed anywhere along it. */
export function inDir<T>(ws: Confined, path: string, fn: (fd: number) => T): T {
  const fd = openChain(ws, components(ws.root(), path), path, false);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** The lstat of `path` (a link itself, never its target), its parents walked no-follow; undefined when missing. */
export function lstatAt(ws: Confined, path: string): Stats | undefined {
  try {
    return inParent(ws, path, false, (dirfd, name) => lstatSync(at(dirfd, name ?? '.')));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw located(e, path);
  }
}

/**
 * Writes `path` through a temporary file made O_EXCL|O_NOFOLLOW in the same directory and a
 * rename there (a reader never sees half a file; a failed write leaves the old one). Missing
 * directories are made. Returns whether the file existed; refuses a directory in its place.
 */
export function writeAt(ws: Confined, path: string, content: string): { existed: boolean } {
  return inParent(ws, path, true, (dirfd, name) => {
    if (name === undefined) throw new WorkspaceError(`${path} is a directory`, 'invalid_input');
    let existed = true;
    try {
      if (lstatSync(at(dirfd, name)).isDirectory()) throw new WorkspaceError(`${path} is a directory`, 'invalid_input');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw located(e, path);
      existed = false;
    }
    const tmp = `.caxton-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.tmp`;
    let fd: number;
    try {
      fd = openSync(at(dirfd, tmp), CREATE, 0o666);
    } catch (e) {
      throw located(e, path);
    }
    try {
      try {
        const buf = Buffer.from(content);
        for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off);
      } finally {
        closeSync(fd);
      }
      renameSync(at(dirfd, tmp), at(dirfd, name));
    } catch (e) {
      try {
        unlinkSync(at(dirfd, tmp));
      } catch {
        // Already renamed or never made: nothing to clean.
      }
      throw located(e, path);
    }
    return { existed };
  });
}

/**
 * The bytes of the file `path` (a real path inside `root`), no link followed anywhere along it;
 * throws the errno error otherwise or when it is not a regular file. Self-contained (it uses
 * nothing but its arguments) because grep's worker runs it from its source text.
 */
export function readFileNoFollow(
  fs: typeof fsModule,
  root: string,
  privateIds: readonly string[],
  path: string,
): Buffer {
  const c = fs.constants;
  const dirFlags = c.O_RDONLY | c.O_DIRECTORY | c.O_NOFOLLOW;
  const prefix = root.endsWith('/') ? root : `${root}/`;
  const parts = path.slice(prefix.length).split('/');
  const last = parts.pop();
  if (
    !path.startsWith(prefix) ||
    last === undefined ||
    [...parts, last].some((p) => p === '' || p === '.' || p === '..')
  )
    throw Object.assign(new Error(`${path} is not below ${root}`), { code: 'EINVAL' });
  let dir = fs.openSync(root, dirFlags);
  try {
    for (const name of parts) {
      const next = fs.openSync(`/proc/self/fd/${dir}/${name}`, dirFlags);
      fs.closeSync(dir);
      dir = next;
      const st = fs.fstatSync(dir);
      if (privateIds.includes(`${st.dev}:${st.ino}`))
        throw Object.assign(new Error(`${path} is in a private directory`), { code: 'EACCES' });
    }
    const fd = fs.openSync(`/proc/self/fd/${dir}/${last}`, c.O_RDONLY | c.O_NOFOLLOW | c.O_NONBLOCK);
    try {
      if (!fs.fstatSync(fd).isFile()) throw Object.assign(new Error(`${path} is not a file`), { code: 'EINVAL' });
      return fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    fs.closeSync(dir);
  }
}
