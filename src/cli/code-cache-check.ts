/**
 * What the last full check of the serve bundle and a code cache found, kept beside the cache so
 * that a start whose files have not changed since does not hash them again (code-cache.ts). The
 * bundle is 6 MiB and a cache 3 MiB: their two SHA-256s are about 9 ms of every start.
 *
 * A record (`serve.id` beside `serve.bin`) holds the bundle's path, its identity and SHA-256, and
 * the cache file's identity. An identity is what `fstat` reports: device, inode, size, and the
 * modification and status-change times in nanoseconds. Any write, rename, link or mode change of
 * a file sets its status-change time to the clock's current time, which no process can set, so
 * an identity that still matches is the same file with the same bytes as when it was checked.
 * A file whose identity differs is hashed as before, and the start records it again.
 *
 * A project's record is written by its own start (0600, in the private cache directory, by
 * temporary file and rename), only after the check it records: the bundle hashed and the cache
 * file just written from V8's data, or read and matched against the SHA-256 in its header. The
 * build writes the record of the cache it ships beside it (dist/cli/serve.id), trusted as that
 * cache is: whoever can write it can write the bundle. A copy of the package (another inode, other
 * times) does not match it, so such an installation's first starts hash as before.
 *
 * It imports Node's built-ins only, as code-cache.ts does.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  type BigIntStats,
} from 'node:fs';
import { join } from 'node:path';

const MAGIC = 'CAXTONID1';

/** The bundle and cache as last checked. */
export interface CheckRecord {
  /** The bundle's absolute path. */
  readonly bundle: string;
  readonly bundleIdentity: string;
  /** The bundle's SHA-256, hex. */
  readonly bundleSha256: string;
  readonly cacheIdentity: string;
}

/** A file's identity: device, inode, size, modification and status-change times (ns). */
export function fileIdentity(s: BigIntStats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

/** The identity of an open file. */
export function fdIdentity(fd: number): string {
  return fileIdentity(fstatSync(fd, { bigint: true }));
}

/**
 * The record in `file`, if it is a regular file `trusted` accepts (opened without following
 * links) and reads as one; undefined otherwise, and the start checks everything.
 */
export function readCheckRecord(
  file: string,
  trusted: (s: { uid: number; mode: number }) => boolean,
): CheckRecord | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const s = fstatSync(fd);
    if (!s.isFile() || !trusted(s) || s.size > 64 * 1024) return undefined;
    const [magic, bundle, bundleIdentity, bundleSha256, cacheIdentity] = readFileSync(fd, 'utf8').split('\n');
    if (magic !== MAGIC || !bundle || !bundleIdentity || !cacheIdentity) return undefined;
    if (!/^[0-9a-f]{64}$/.test(bundleSha256 ?? '')) return undefined;
    return { bundle, bundleIdentity, bundleSha256: bundleSha256!, cacheIdentity };
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `record` to `<dir>/serve.id` by temporary file and rename: 0600 in a project's private
 * directory, 0644 beside the shipped cache.
 */
export function writeCheckRecord(dir: string, record: CheckRecord, mode = 0o600): void {
  const file = join(dir, 'serve.id');
  const tmp = join(dir, `.serve-id.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const text = [MAGIC, record.bundle, record.bundleIdentity, record.bundleSha256, record.cacheIdentity, ''].join('\n');
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    try {
      fchmodSync(fd, mode);
      writeFileSync(fd, text);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // not written, or already renamed
    }
    throw e;
  }
}
