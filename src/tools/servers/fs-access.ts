/**
 * File access for tool modules: only under the roots granted to the server, addressed by the
 * guest-side path the manifest declared (`/data/notes.txt`). A path is refused when it contains
 * `..`, is not absolute, lies under no granted root, or resolves — after following symlinks with
 * `realpath` — outside its root. The final component is opened with O_NOFOLLOW. Guests cannot
 * create symlinks (no host function does), so only links that already exist matter, and realpath
 * sees those.
 */
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import { HostTrap } from './errors.js';

export type PathAccess = 'read' | 'write';

export interface PathRoot {
  /** Guest-side root, normalized (`/data`). */
  guest: string;
  /** Host directory, resolved by realpath when the server loads. */
  host: string;
  access: PathAccess;
}

function segments(p: string): string[] {
  return p.split('/').filter((s) => s !== '' && s !== '.');
}

/** Normalizes a guest root from a manifest: absolute, no `..`. Returns undefined when invalid. */
export function normalizeGuestRoot(p: string): string | undefined {
  if (!p.startsWith('/') || p.includes('\0')) return undefined;
  const segs = segments(p);
  if (segs.includes('..')) return undefined;
  return `/${segs.join('/')}`;
}

/** Resolves a host directory for a root: it must exist and be a directory. Throws a readable Error. */
export function resolveHostRoot(dir: string): string {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    throw new Error(`directory "${dir}" does not exist`);
  }
  if (!statSync(real).isDirectory()) throw new Error(`"${dir}" is not a directory`);
  return real;
}

const inside = (real: string, root: string) => real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);

export class FileAccess {
  /** Longest guest root first, so `/data/private` wins over `/data`. */
  readonly #roots: PathRoot[];

  constructor(roots: readonly PathRoot[]) {
    this.#roots = [...roots].sort((a, b) => b.guest.length - a.guest.length);
  }

  get roots(): readonly PathRoot[] {
    return this.#roots;
  }

  /** The host path for `guestPath`, after every check but the final realpath. */
  #locate(guestPath: string, write: boolean): { root: PathRoot; host: string } {
    if (this.#roots.length === 0)
      throw new HostTrap(
        'denied',
        'file access is not granted to this tool server; grant a folder in caxton.toml with [tools.SERVER.paths] "/GUEST" = "host/folder" (SERVER: the tool name before the dot) and restart the server',
      );
    if (guestPath.includes('\0')) throw new HostTrap('denied', 'file path contains a NUL byte');
    if (!guestPath.startsWith('/'))
      throw new HostTrap('denied', `file path "${guestPath}" must be absolute (under ${this.#rootList()})`);
    const segs = segments(guestPath);
    if (segs.includes('..'))
      throw new HostTrap('denied', `file path "${guestPath}" contains "..": path traversal is not allowed`);
    for (const root of this.#roots) {
      const rs = segments(root.guest);
      if (rs.every((s, i) => segs[i] === s)) {
        if (write && root.access !== 'write')
          throw new HostTrap('denied', `file path "${guestPath}" is under the read-only root ${root.guest}`);
        return { root, host: join(root.host, ...segs.slice(rs.length)) };
      }
    }
    throw new HostTrap('denied', `file path "${guestPath}" is outside the granted roots (${this.#rootList()})`);
  }

  #rootList(): string {
    return this.#roots.map((r) => `${r.guest} (${r.access})`).join(', ');
  }

  /** realpath of an existing path, checked to stay inside its root. */
  #real(guestPath: string, root: PathRoot, host: string): string {
    let real: string;
    try {
      real = realpathSync(host);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new HostTrap(
        'io_error',
        code === 'ENOENT'
          ? `file "${guestPath}" does not exist`
          : `file "${guestPath}" cannot be resolved (${code ?? 'error'})`,
      );
    }
    if (!inside(real, root.host))
      throw new HostTrap(
        'denied',
        `file path "${guestPath}" resolves outside its root ${root.guest} (through a symlink): access denied`,
      );
    return real;
  }

  read(guestPath: string, maxBytes: number): Uint8Array {
    const { root, host } = this.#locate(guestPath, false);
    const real = this.#real(guestPath, root, host);
    let fd: number;
    try {
      fd = openSync(real, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      throw new HostTrap(
        'io_error',
        `file "${guestPath}" cannot be opened (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new HostTrap('io_error', `"${guestPath}" is not a regular file`);
      if (st.size > maxBytes)
        throw new HostTrap(
          'output_too_large',
          `file "${guestPath}" is ${st.size} bytes, above the limit of ${maxBytes}`,
        );
      const buf = new Uint8Array(st.size);
      let off = 0;
      while (off < buf.length) {
        const n = readSync(fd, buf, off, buf.length - off, off);
        if (n === 0) break;
        off += n;
      }
      return buf.subarray(0, off);
    } finally {
      closeSync(fd);
    }
  }

  write(guestPath: string, data: Uint8Array): void {
    const { root, host } = this.#locate(guestPath, true);
    let target: string;
    let existing = true;
    try {
      statSync(host);
    } catch {
      existing = false;
    }
    if (existing) target = this.#real(guestPath, root, host);
    else {
      const dir = this.#real(dirname(guestPath), root, dirname(host));
      target = join(dir, basename(host));
    }
    let fd: number;
    try {
      fd = openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
    } catch (e) {
      throw new HostTrap(
        'io_error',
        `file "${guestPath}" cannot be written (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    try {
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    } finally {
      closeSync(fd);
    }
  }

  list(guestPath: string): string[] {
    const { root, host } = this.#locate(guestPath, false);
    const real = this.#real(guestPath, root, host);
    try {
      return readdirSync(real).sort();
    } catch (e) {
      throw new HostTrap(
        'io_error',
        `directory "${guestPath}" cannot be listed (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  }
}
