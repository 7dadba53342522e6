/**
 * The saved HNSW graph: `memory.usearch` in the data dir and its sidecar `memory.usearch.json`,
 * which records what the file reflects — the database (`uid`), the change counter of
 * `memory_index_state` at the save, the model, dimensions and graph parameters, and the file's
 * size and SHA-256.
 *
 * Saving never leaves a sidecar beside a file it does not describe: the sidecar is removed
 * first, the graph is written to a temporary file, flushed and renamed, then the new sidecar is
 * written the same way. A crash at any point leaves either the old pair, or a graph without a
 * sidecar (rebuilt at the next start). The size and hash are checked before a file is loaded:
 * usearch crashes the process on a truncated file.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { PRIVATE_FILE_MODE, writePrivateFileSync } from '../shared/private-fs.js';
import { ANN_PARAMS, type VectorIndex } from './vector-index.js';

export const ANN_FILE_FORMAT = 'caxton-memory-ann';
export const ANN_FILE_VERSION = 1;
/** The graph's file name in the data dir. */
export const ANN_FILE_NAME = 'memory.usearch';

export interface AnnSidecar {
  format: typeof ANN_FILE_FORMAT;
  version: number;
  /** `memory_index_state.uid` of the database the graph was built from. */
  db_uid: string;
  /** `memory_index_state.seq` when the graph was saved: it reflects every vector change up to this one. */
  seq: number;
  model: string;
  dimensions: number;
  params: typeof ANN_PARAMS;
  vectors: number;
  bytes: number;
  sha256: string;
  saved_at: string;
}

export function sidecarPath(path: string): string {
  return `${path}.json`;
}

function fsyncFile(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

export function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    let n: number;
    while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Saves the index's complete graph to `path` with its sidecar (see the protocol above). */
export function saveAnnFile(
  index: VectorIndex,
  path: string,
  state: { db_uid: string; seq: number; model: string },
): AnnSidecar {
  const side = sidecarPath(path);
  unlinkIfPresent(side);
  const tmp = `${path}.tmp`;
  index.saveAnn(tmp);
  // usearch writes with the default mode; the graph holds the vectors of private memories.
  chmodSync(tmp, PRIVATE_FILE_MODE);
  fsyncFile(tmp);
  renameSync(tmp, path);
  const sidecar: AnnSidecar = {
    format: ANN_FILE_FORMAT,
    version: ANN_FILE_VERSION,
    db_uid: state.db_uid,
    seq: state.seq,
    model: state.model,
    dimensions: index.dimensions,
    params: ANN_PARAMS,
    vectors: index.size,
    bytes: statSync(path).size,
    sha256: sha256File(path),
    saved_at: new Date().toISOString(),
  };
  writePrivateFileSync(`${side}.tmp`, `${JSON.stringify(sidecar, null, 2)}\n`);
  fsyncFile(`${side}.tmp`);
  renameSync(`${side}.tmp`, side);
  return sidecar;
}

/**
 * The sidecar of `path`, checked against what the store expects and against the file (size and
 * hash); a reason when the file must not be loaded.
 */
export function checkAnnFile(
  path: string,
  expect: { db_uid: string; seq: number; log_since: number; model: string; dimensions: number },
): { ok: true; sidecar: AnnSidecar } | { ok: false; reason: string } {
  let s: AnnSidecar;
  try {
    s = JSON.parse(readFileSync(sidecarPath(path), 'utf8')) as AnnSidecar;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return {
      ok: false,
      reason:
        code === 'ENOENT'
          ? 'no saved graph (or its save did not complete)'
          : `unreadable sidecar: ${(e as Error).message}`,
    };
  }
  if (s.format !== ANN_FILE_FORMAT || s.version !== ANN_FILE_VERSION)
    return {
      ok: false,
      reason: `sidecar format ${String(s.format)} v${String(s.version)}, expected ${ANN_FILE_FORMAT} v${ANN_FILE_VERSION}`,
    };
  if (s.db_uid !== expect.db_uid) return { ok: false, reason: 'the saved graph belongs to another database' };
  if (s.model !== expect.model || s.dimensions !== expect.dimensions)
    return {
      ok: false,
      reason: `the saved graph holds ${s.model} (${s.dimensions}) vectors, the store uses ${expect.model} (${expect.dimensions})`,
    };
  if (JSON.stringify(s.params) !== JSON.stringify(ANN_PARAMS))
    return { ok: false, reason: 'the saved graph was built with other parameters' };
  if (!Number.isSafeInteger(s.seq) || s.seq > expect.seq)
    return {
      ok: false,
      reason: `the saved graph reflects change ${s.seq}, the database is at ${expect.seq} (restored from an older copy?)`,
    };
  if (s.seq < expect.log_since)
    return {
      ok: false,
      reason: `the saved graph reflects change ${s.seq}, but the change log starts after ${expect.log_since}`,
    };
  let bytes: number;
  try {
    bytes = statSync(path).size;
  } catch {
    return { ok: false, reason: 'the graph file is missing' };
  }
  if (bytes !== s.bytes) return { ok: false, reason: `the graph file has ${bytes} bytes, its sidecar says ${s.bytes}` };
  if (sha256File(path) !== s.sha256) return { ok: false, reason: 'the graph file does not match its recorded SHA-256' };
  return { ok: true, sidecar: s };
}
