import { accessSync, closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { sqliteAddon } from './sqlite-addon.js';
import { CaxtonError } from '../shared/errors.js';
import { createPrivateFile, makePrivateDir, restrictMode } from '../shared/private-fs.js';

export type Db = Database.Database;

/** One migration: applied once, in order, inside a transaction. */
export interface Migration {
  id: string;
  sql: string;
}

/** `PRAGMA application_id` of a Caxton database ("CXTN"): tells it apart from another application's SQLite file. */
export const CAXTON_APPLICATION_ID = 0x4358544e;

/** The largest the WAL file is left after a checkpoint (without it, one burst's WAL size stays on disk). */
const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;

export interface OpenOptions {
  /** Told about what the caller should log: an empty file started as a new store, an old file without incremental vacuum. */
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/**
 * Opens (creating if needed) the SQLite database in the data dir, in WAL mode so readers never
 * block the writer and a crash never leaves a half-applied transaction visible.
 *
 * Before SQLite touches it, the file is checked, so a bad one stops the start with a message that
 * names it and says what to do, and is never modified: not a SQLite file (garbage, damaged
 * header), shorter than its header says (truncated), another application's database, or a data
 * dir or file Caxton may not write. An empty (0-byte) file is taken as a new store, and said so.
 * Every failure is a CaxtonError (`configuration_error`, or `insufficient_storage` for a full disk).
 *
 * A data dir it creates is 0700 and a database file it creates 0600 (so are its -wal and -shm);
 * an existing file or directory keeps the mode the operator gave it.
 */
export function openDatabase(dataDir: string, file = 'caxton.db', opts: OpenOptions = {}): Db {
  const dir = resolve(dataDir);
  const path = join(dir, file);
  try {
    makePrivateDir(dir);
  } catch (e) {
    throw fsError(e, dir, `cannot create the data dir ${dir}`);
  }
  let size: number | undefined;
  try {
    size = statSync(path).size;
  } catch {
    size = undefined; // a new store
  }
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
    if (size !== undefined) accessSync(path, constants.R_OK | constants.W_OK);
  } catch (e) {
    throw fsError(
      e,
      size === undefined ? dir : path,
      size === undefined
        ? `cannot create the data file ${path}: the data dir ${dir} is not writable`
        : `cannot read and write the data file ${path}`,
    );
  }
  if (size !== undefined && size > 0) checkHeader(path, size);
  if (size === 0)
    opts.log?.warn(
      { file: path },
      `the data file ${path} is empty (0 bytes): starting a new, empty store. If it should hold agents and messages, stop the server and restore it from a backup`,
    );

  let db: Db;
  try {
    // SQLite would create the file 0644 (less the umask). Created here 0600 instead; SQLite then
    // gives the -wal and -shm it makes the database file's mode.
    if (size === undefined) createPrivateFile(path);
    db = new Database(path, sqliteAddon());
  } catch (e) {
    throw storeStartError(e, path);
  }
  try {
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .pluck()
      .all() as string[];
    const appId = db.pragma('application_id', { simple: true }) as number;
    if (
      (appId !== 0 && appId !== CAXTON_APPLICATION_ID) ||
      (tables.length > 0 && !tables.includes('schema_migrations'))
    ) {
      throw new CaxtonError(
        'configuration_error',
        `the data file ${path} is another application's SQLite database (${appId !== 0 && appId !== CAXTON_APPLICATION_ID ? `application id ${appId}` : `tables ${tables.slice(0, 5).join(', ')}${tables.length > 5 ? '...' : ''}, no Caxton schema`}); Caxton did not change it. Point data_dir (or --data-dir) at another directory, or move the file aside`,
        { file: path },
      );
    }
    if (tables.length === 0) {
      // A new database: auto_vacuum must be chosen before the first table exists. INCREMENTAL lets
      // retention hand freed pages back to the file system (Pruner), so the file shrinks too.
      db.pragma('auto_vacuum = INCREMENTAL');
      db.pragma(`application_id = ${CAXTON_APPLICATION_ID}`);
    } else if ((db.pragma('auto_vacuum', { simple: true }) as number) !== 2) {
      opts.log?.info(
        { file: path },
        'this data file was created before incremental vacuum: pages freed by retention are reused but the file does not shrink; to enable it, stop the server and run: sqlite3 caxton.db "PRAGMA auto_vacuum = INCREMENTAL; VACUUM;"',
      );
    }
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
    // Memory-mapped reads of index pages: about 1.4x the durable message throughput (docs/benchmarks.md).
    db.pragma('mmap_size = 268435456');
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
    // SQLite sets the mode of a -wal or -shm only when it creates it: one left by an earlier run
    // (a crash, an older version) may be looser than the database it belongs to.
    const dbMode = statSync(path).mode & 0o777;
    for (const side of [`${path}-wal`, `${path}-shm`]) restrictMode(side, dbMode);
  } catch (e) {
    db.close();
    throw storeStartError(e, path);
  }
  return db;
}

/**
 * Applies the migrations not yet recorded, all in one transaction: a component's schema is
 * created whole or not at all, and a fresh data dir commits once per component, not once per
 * migration. Each component owns its migrations (ids prefixed by component).
 */
export function migrate(db: Db, migrations: readonly Migration[]): void {
  const applied = new Set((db.prepare('SELECT id FROM schema_migrations').all() as { id: string }[]).map((r) => r.id));
  const pending = migrations.filter((m) => !applied.has(m.id));
  if (pending.length === 0) return;
  const record = db.prepare('INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)');
  db.transaction(() => {
    for (const m of pending) {
      db.exec(m.sql);
      record.run(m.id, new Date().toISOString());
    }
  })();
}

const HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/** The first 100 bytes: the SQLite magic, and a page count that fits in the file (not truncated). */
function checkHeader(path: string, size: number): void {
  const head = Buffer.alloc(100);
  let n = 0;
  const fd = openSync(path, 'r');
  try {
    n = readSync(fd, head, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  const what =
    'Caxton did not change it. Restore it from a backup, or move it aside (the server then starts with an empty store)';
  if (n < 100 || !head.subarray(0, 16).equals(HEADER)) {
    throw new CaxtonError(
      'configuration_error',
      `the data file ${path} is not a SQLite database (${n < 100 ? `only ${size} bytes` : 'its first bytes are not the SQLite header'}: damaged or overwritten). ${what}`,
      { file: path },
    );
  }
  const raw = head.readUInt16BE(16);
  const pageSize = raw === 1 ? 65536 : raw;
  const pages = head.readUInt32BE(28);
  // The page count in the header is valid when its "version valid for" matches the change counter,
  // and it says how long the file is only when no write-ahead log holds pages for it: a checkpoint
  // copies the log's pages in page order, page 1 (this header, with the new count) first, so one
  // interrupted by a crash leaves the file shorter than its header while the log, still whole,
  // holds the rest. SQLite reads those pages from the log when it opens the file.
  if (
    head.readUInt32BE(92) === head.readUInt32BE(24) &&
    pages > 0 &&
    pageSize >= 512 &&
    size < pages * pageSize &&
    !holdsFrames(`${path}-wal`, pageSize)
  ) {
    throw new CaxtonError(
      'configuration_error',
      `the data file ${path} is truncated (${size} bytes; its header says ${pages * pageSize}). ${what}`,
      { file: path, size, expected: pages * pageSize },
    );
  }
}

/** WAL files start with one of two magic numbers (the checksums' byte order). */
const WAL_MAGIC = new Set([0x377f0682, 0x377f0683]);
const WAL_HEADER = 32;
const WAL_FRAME_HEADER = 24;

/** Whether a write-ahead log beside the database holds at least one frame of its page size. */
function holdsFrames(wal: string, pageSize: number): boolean {
  let fd: number;
  try {
    fd = openSync(wal, 'r');
  } catch {
    return false;
  }
  try {
    const head = Buffer.alloc(WAL_HEADER);
    if (readSync(fd, head, 0, WAL_HEADER, 0) < WAL_HEADER) return false;
    return (
      WAL_MAGIC.has(head.readUInt32BE(0)) &&
      head.readUInt32BE(8) === pageSize &&
      fstatSync(fd).size >= WAL_HEADER + WAL_FRAME_HEADER + pageSize
    );
  } finally {
    closeSync(fd);
  }
}

/** A file-system failure on the data dir, in words that say what to do (disk full, read-only, permissions). */
export function fsError(e: unknown, path: string, what: string): CaxtonError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC')
    return new CaxtonError('insufficient_storage', `${what}: the disk is full. Free some space and start again`, {
      file: path,
    });
  if (code === 'EROFS')
    return new CaxtonError(
      'configuration_error',
      `${what}: it is on a read-only file system. Point data_dir (or --data-dir) at a writable directory`,
      { file: path },
    );
  return new CaxtonError(
    'configuration_error',
    `${what} (${code ?? 'error'}): fix its permissions (the user running caxton needs read and write access) or point data_dir (or --data-dir) at a writable directory`,
    { file: path },
  );
}

/** A SQLite failure while opening or migrating the store, as an error that names the file and says what to do. */
export function storeStartError(e: unknown, path: string): CaxtonError {
  if (e instanceof CaxtonError) return e;
  const code = String((e as { code?: unknown }).code ?? '');
  const msg = e instanceof Error ? e.message : String(e);
  if (code.startsWith('SQLITE_FULL'))
    return new CaxtonError(
      'insufficient_storage',
      `the disk holding the data file ${path} is full (${msg}). Free some space and start again; nothing was changed`,
      { file: path },
    );
  if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB')) {
    return new CaxtonError(
      'configuration_error',
      `the data file ${path} is damaged (${msg}). Restore it from a backup, or move it aside (the server then starts with an empty store)`,
      { file: path },
    );
  }
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new CaxtonError(
      'configuration_error',
      `the data file ${path} is locked by another process (${msg}): is another caxton serve using this data dir? Stop it, or give this one another data_dir`,
      { file: path },
    );
  }
  if (
    code.startsWith('SQLITE_READONLY') ||
    code.startsWith('SQLITE_CANTOPEN') ||
    code.startsWith('SQLITE_PERM') ||
    code.startsWith('SQLITE_AUTH')
  ) {
    return new CaxtonError(
      'configuration_error',
      `cannot open the data file ${path} for writing (${msg}): fix the permissions of the file and its directory (the user running caxton needs read and write access), or point data_dir (or --data-dir) at a writable directory`,
      { file: path },
    );
  }
  return new CaxtonError('configuration_error', `cannot open the data file ${path}: ${msg}`, {
    file: path,
    sqlite_code: code || undefined,
  });
}

/** Is `e` SQLite's "database or disk is full"? */
export function isDiskFull(e: unknown): boolean {
  return String((e as { code?: unknown } | null)?.code ?? '').startsWith('SQLITE_FULL');
}

/** The error a request gets when a write failed because the disk (or the database's page limit) is full. */
export function diskFullError(): CaxtonError {
  return new CaxtonError(
    'insufficient_storage',
    'the disk holding the data dir is full: nothing was stored. Free some space on the server, then retry',
    { retry_after: 30 },
  );
}
