/**
 * Read-only SQLite for tool modules (`caxton_sqlite_query`, ADR 9 addendum). SQLite cannot run
 * inside the sandbox, so the host runs the query — only on database files the manifest declares
 * (`[permissions] databases = ["/db"]`) and the operator maps to a file or a directory
 * (`ToolServerGrants.databases`), checked like file paths: absolute, no `..`, and after `realpath`
 * still the granted file or inside the granted directory.
 *
 * Read-only three times over: the connection is opened `{ readonly: true, fileMustExist: true }`
 * with `PRAGMA query_only = ON` and `trusted_schema = OFF`, and the one prepared statement must be
 * read-only (`sqlite3_stmt_readonly`) and return rows — anything else is refused (`denied`).
 * Parameters are bound, never spliced. Rows and bytes are capped; the deadline is checked between
 * rows. better-sqlite3 offers no interrupt or progress handler, so a single step that runs long
 * (a huge sort, an unbounded recursive CTE that returns nothing) cannot be stopped: it holds the
 * server thread until SQLite finishes. Grant only databases whose size makes that acceptable.
 */
import { realpathSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import Database from 'better-sqlite3';
import { HostTrap } from './errors.js';

export interface DatabaseRoot {
  /** Guest-side path as the manifest declares it (`/db` or `/db/sales.db`), normalized. */
  guest: string;
  /** realpath of the granted host file or directory. */
  host: string;
  /** A single database file, or a directory whose database files are all granted. */
  kind: 'file' | 'dir';
}

export interface SqliteQueryOptions {
  /** Most bytes of JSON the answer may take (kernel memory room, output limit). */
  maxBytes: number;
  /** performance.now() instant after which no more rows are read. */
  deadline: number;
}

/** Rows returned at most, whatever the guest asks. */
export const SQLITE_MAX_ROWS = 10_000;
export const SQLITE_DEFAULT_ROWS = 1_000;

/** Resolves an operator grant (a file or a directory) for `guest`. Throws a readable Error. */
export function resolveDatabaseRoot(guest: string, hostPath: string): DatabaseRoot {
  let real: string;
  try {
    real = realpathSync(hostPath);
  } catch {
    throw new Error(`"${hostPath}" does not exist`);
  }
  const st = statSync(real);
  if (st.isDirectory()) return { guest, host: real, kind: 'dir' };
  if (st.isFile()) return { guest, host: real, kind: 'file' };
  throw new Error(`"${hostPath}" is neither a file nor a directory`);
}

const inside = (real: string, root: string) => real.startsWith(root.endsWith(sep) ? root : root + sep);
const segments = (p: string) => p.split('/').filter((s) => s !== '' && s !== '.');

type Param = number | string | null | bigint;

function bindable(v: unknown, where: string): Param {
  if (v === null || typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) && Number.isSafeInteger(v) ? BigInt(v) : v;
  if (typeof v === 'boolean') return v ? 1n : 0n;
  throw new HostTrap('denied', `sqlite: parameter ${where} must be a string, number, boolean or null`);
}

function jsonValue(v: unknown): unknown {
  if (typeof v === 'bigint')
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (v instanceof Uint8Array) return { base64: Buffer.from(v).toString('base64') };
  return v;
}

export class SqliteAccess {
  /** Longest guest path first. */
  readonly #roots: DatabaseRoot[];

  constructor(roots: readonly DatabaseRoot[]) {
    this.#roots = [...roots].sort((a, b) => b.guest.length - a.guest.length);
  }

  get roots(): readonly DatabaseRoot[] {
    return this.#roots;
  }

  #list(): string {
    return this.#roots.map((r) => (r.kind === 'dir' ? `${r.guest}/*` : r.guest)).join(', ');
  }

  /** The real host file for a guest database path, or a 'denied' / 'io_error' HostTrap. */
  resolve(guestPath: string): string {
    if (this.#roots.length === 0) throw new HostTrap('denied', 'SQLite access is not granted to this tool server');
    if (guestPath.includes('\0')) throw new HostTrap('denied', 'database path contains a NUL byte');
    if (!guestPath.startsWith('/'))
      throw new HostTrap('denied', `database path "${guestPath}" must be absolute (granted: ${this.#list()})`);
    const segs = segments(guestPath);
    if (segs.includes('..'))
      throw new HostTrap('denied', `database path "${guestPath}" contains "..": path traversal is not allowed`);
    for (const root of this.#roots) {
      const rs = segments(root.guest);
      if (!rs.every((s, i) => segs[i] === s)) continue;
      const rest = segs.slice(rs.length);
      if (root.kind === 'file' ? rest.length !== 0 : rest.length === 0) continue;
      let real: string;
      try {
        real = realpathSync(join(root.host, ...rest));
      } catch {
        throw new HostTrap('io_error', `database "${guestPath}" does not exist`);
      }
      if (root.kind === 'file' ? real !== root.host : !inside(real, root.host)) {
        throw new HostTrap(
          'denied',
          `database path "${guestPath}" resolves outside its grant ${root.guest} (through a symlink): access denied`,
        );
      }
      if (!statSync(real).isFile()) throw new HostTrap('io_error', `database "${guestPath}" is not a regular file`);
      return real;
    }
    throw new HostTrap('denied', `database path "${guestPath}" is not granted (granted: ${this.#list()})`);
  }

  /**
   * Runs one read-only statement. `request` is the guest's JSON: `{database, sql, params?,
   * max_rows?}`. Returns the answer as JSON bytes: `{columns, rows, row_count, truncated}` (rows
   * are arrays in column order; integers beyond 2^53 come back as strings, blobs as
   * `{"base64": ...}`), or `{error}` for an SQL error the model can fix. Refusals throw HostTrap.
   */
  query(request: unknown, opts: SqliteQueryOptions): Uint8Array {
    const req = (typeof request === 'object' && request !== null ? request : {}) as Record<string, unknown>;
    if (typeof req.database !== 'string') throw new HostTrap('denied', 'sqlite: the request has no "database" path');
    if (typeof req.sql !== 'string') throw new HostTrap('denied', 'sqlite: the request has no "sql" text');
    const file = this.resolve(req.database);
    const maxRows =
      typeof req.max_rows === 'number' && req.max_rows >= 0
        ? Math.min(Math.floor(req.max_rows), SQLITE_MAX_ROWS)
        : SQLITE_DEFAULT_ROWS;
    let params: Param[] | Record<string, Param> = [];
    if (Array.isArray(req.params)) params = req.params.map((v, i) => bindable(v, `${i + 1}`));
    else if (typeof req.params === 'object' && req.params !== null)
      params = Object.fromEntries(Object.entries(req.params).map(([k, v]) => [k, bindable(v, `"${k}"`)]));
    else if (req.params !== undefined && req.params !== null)
      throw new HostTrap('denied', 'sqlite: "params" must be an array (positional ?) or an object (named :name)');

    const answer = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
    let db: Database.Database;
    try {
      db = new Database(file, { readonly: true, fileMustExist: true });
    } catch (e) {
      throw new HostTrap('io_error', `database "${req.database}" cannot be opened: ${(e as Error).message}`);
    }
    try {
      db.pragma('query_only = ON');
      db.pragma('trusted_schema = OFF');
      let stmt: Database.Statement;
      try {
        stmt = db.prepare(req.sql);
      } catch (e) {
        return answer({ error: `SQL error: ${(e as Error).message}` });
      }
      if (!stmt.readonly)
        throw new HostTrap(
          'denied',
          'sqlite: the statement would modify the database; only read-only statements are allowed',
        );
      if (!stmt.reader)
        throw new HostTrap(
          'denied',
          'sqlite: only statements that return rows are allowed (SELECT, WITH ... SELECT, read-only PRAGMA, EXPLAIN)',
        );
      const columns = stmt.columns().map((c) => c.name);
      stmt.raw(true).safeIntegers(true);
      const rows: string[] = [];
      let bytes = 64 + JSON.stringify(columns).length;
      let truncated = false;
      let timedOut = false;
      try {
        const it = Array.isArray(params) ? stmt.iterate(...params) : stmt.iterate(params);
        for (const row of it as Iterable<unknown[]>) {
          if (rows.length >= maxRows) {
            truncated = true;
            break;
          }
          const text = JSON.stringify(row.map(jsonValue));
          const size = Buffer.byteLength(text) + 1;
          if (bytes + size > opts.maxBytes) {
            truncated = true;
            break;
          }
          rows.push(text);
          bytes += size;
          if (performance.now() > opts.deadline) {
            timedOut = true;
            break;
          }
        }
      } catch (e) {
        if (e instanceof HostTrap) throw e;
        return answer({ error: `SQL error: ${(e as Error).message}` });
      }
      if (timedOut)
        throw new HostTrap('timeout', `sqlite: the query exceeded the call's deadline after ${rows.length} rows`);
      const out = `{"columns":${JSON.stringify(columns)},"rows":[${rows.join(',')}],"row_count":${rows.length},"truncated":${truncated}}`;
      return new TextEncoder().encode(out);
    } finally {
      db.close();
    }
  }
}
