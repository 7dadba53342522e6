import { chmodSync, closeSync, fchmodSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';

/**
 * Files Caxton writes (the store, keys, the audit copy, indexes, caches) hold secrets or what
 * people asked of their agents, so they are its user's alone: files 0600, directories 0700. A
 * mode given at creation is filtered by the umask, which only ever removes bits, so these stay
 * private under any umask. An existing directory keeps its mode: the operator chose it.
 */
export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/** Creates `dir` and its missing parents 0700. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/** Creates `path` empty and 0600 unless it exists; true when it was created. */
export function createPrivateFile(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', PRIVATE_FILE_MODE);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  closeSync(fd);
  return true;
}

/** Writes `data` to `path` (replacing it), leaving the file 0600 even when it existed before with another mode. */
export function writePrivateFileSync(path: string, data: string | Uint8Array): void {
  const fd = openSync(path, 'w', PRIVATE_FILE_MODE);
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
  } finally {
    closeSync(fd);
  }
}

/** Takes away from `path` every permission bit `limit` lacks (a missing file is left alone). */
export function restrictMode(path: string, limit: number): void {
  let current: number;
  try {
    current = statSync(path).mode & 0o777;
  } catch {
    return;
  }
  if ((current & ~limit) !== 0) chmodSync(path, current & limit);
}
