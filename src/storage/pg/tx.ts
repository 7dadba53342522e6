import type pg from 'pg';
import { CaxtonError } from '../../shared/errors.js';

/**
 * Gives every connection `pool` opens an `error` listener of its own, for as long as it lives, so
 * that a connection never emits `error` with no listener (which ends the process). Why: pg-pool
 * removes its listener from a connection it hands out, and a connection released by `pool.query`
 * inside the reply's read is handed to a waiting caller at once, while that caller attaches its
 * own listener a tick later; a server's "terminating connection" that arrived in the same read as
 * the last reply then found no listener, and `pg_ctl stop -m fast` under traffic crashed a node
 * (test/cluster/pg-restart.e2e.test.ts, test/storage/pg/tx.test.ts; brianc/node-postgres#2762).
 * The listener does nothing more: the query in flight fails on its own, a connection that failed
 * is no longer queryable and pg-pool drops it when it is released, and an idle one's failure still
 * reaches the pool's `error` listeners.
 */
export function guardConnections(pool: pg.Pool): pg.Pool {
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/**
 * Runs `fn` in one transaction on a connection of `pool` (`begin`: the BEGIN statement to send
 * first, or null to send `deferred`, a plain BEGIN by default, with the first statement of the batch).
 * While the connection is held it has an `error` listener of its own: pg-pool removes the pool's
 * from a checked-out connection, and a connection that dies between two statements (a database
 * restart, a cut link) would otherwise emit an unhandled `error` and end the process. A connection
 * that failed, or whose ROLLBACK failed, is released as broken, so the pool replaces it.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  begin: string | null,
  fn: (c: pg.PoolClient, started: pg.QueryResult | pg.QueryResult[], batch: StatementBatch) => Promise<T>,
  deferred = 'BEGIN',
): Promise<T> {
  const c = await pool.connect();
  let broken: Error | undefined;
  const onError = (e: Error) => (broken = e);
  c.on('error', onError);
  try {
    // null: nothing to read first, so BEGIN goes with the batch's first statement (no round trip of its own).
    const started = begin === null ? [] : ((await c.query(begin)) as pg.QueryResult | pg.QueryResult[]);
    const batch = new StatementBatch(c, { tail: Promise.resolve(), ...(begin === null && { head: deferred }) });
    const out = await fn(c, started, batch);
    // The writes still waiting go with the COMMIT, in one round trip (unless `fn` ended the batch itself).
    if (!batch.ended) await batch.end('COMMIT');
    return out;
  } catch (e) {
    if (!broken)
      await c.query('ROLLBACK').catch((err: unknown) => (broken = err instanceof Error ? err : new Error(String(err))));
    throw e;
  } finally {
    c.off('error', onError);
    c.release(broken);
  }
}

/** A value written into a statement of a batch. */
export type Literal = string | number | boolean | null | undefined;

/**
 * The statements of one transaction, sent fewer at a time: a write whose result nobody reads
 * waits, and goes with the next statement that is read, or with the COMMIT, as one simple query
 * (each round trip to PostgreSQL costs more than the statement it carries: a conversation step
 * is mostly small writes). A simple query takes no parameters, so waiting statements carry their
 * values as literals (`literal`), and the error of a write arrives with the statement sent after it
 * (the transaction fails whole either way).
 *
 * A group's writes (`adopt`) go with its COMMIT merged where they can be (`mergeWrites`): the
 * steps' INSERTs of one statement become one multi-row INSERT, which PostgreSQL parses and plans
 * once (measured: 148 µs of a backend's CPU for a step's three INSERTs, 59 µs merged over 25 steps).
 */
export class StatementBatch {
  readonly #c: pg.PoolClient;
  #waiting: Write[] = [];
  #wrote = false;
  #failed = false;
  #ended = false;
  /**
   * The statements sent on this connection, in order: the batches of a group's steps share it (pg
   * wants one query at a time). `head`: a statement not sent yet (a deferred BEGIN) that goes in
   * front of whatever is sent first on the line.
   */
  readonly #line: Line;

  constructor(c: pg.PoolClient, line: Line = { tail: Promise.resolve() }) {
    this.#c = c;
    this.#line = line;
  }

  /** Another batch on the same connection and line (a step of a group), its writes its own until adopted. */
  fork(): StatementBatch {
    return new StatementBatch(this.#c, this.#line);
  }

  /** Whether it holds writes not sent yet. */
  get waiting(): boolean {
    return this.#waiting.length > 0;
  }

  /** Whether some of its writes were sent (they are in the transaction, whatever this batch does next). */
  get wrote(): boolean {
    return this.#wrote;
  }

  /** Whether a statement it sent failed (the transaction is aborted). */
  get failed(): boolean {
    return this.#failed;
  }

  /** A write whose result is not read: sent with the next statement. */
  later(sql: string, values: readonly Literal[]): void {
    // Written into SQL now, so a value that cannot be (a NUL) fails the step that wrote it, here.
    const shape = rowInsert(sql);
    this.#waiting.push(
      shape
        ? { sql, shape, row: `(${inline(shape.row, values)})`, owner: this }
        : { sql, text: inline(sql, values), owner: this },
    );
  }

  /** Takes over the writes `other` has waiting (a group's steps: all go with the group's COMMIT). */
  adopt(other: StatementBatch): void {
    this.#waiting.push(...other.#waiting.splice(0));
  }

  /** A statement whose result is read: sent now, after the writes waiting (alone and with parameters when none wait). */
  async now<R extends pg.QueryResultRow>(sql: string, values: readonly Literal[]): Promise<pg.QueryResult<R>> {
    try {
      const waiting = this.#waiting.splice(0);
      if (waiting.length > 0) this.#wrote = true;
      return await this.#send(async (head) => {
        if (head === undefined && waiting.length === 0) return this.#c.query<R>(sql, values as unknown[]);
        const text = [...(head === undefined ? [] : [head]), ...mergeWrites(waiting), inline(sql, values)].join(';\n');
        const results = (await this.#c.query(text)) as unknown as pg.QueryResult<R>[];
        return results[results.length - 1]!;
      });
    } catch (e) {
      this.#failed = true;
      throw e;
    }
  }

  #send<T>(query: (head: string | undefined) => Promise<T>): Promise<T> {
    const line = this.#line;
    const run = () => {
      const head = line.head;
      line.head = undefined;
      return query(head);
    };
    const out = line.tail.then(run, run);
    line.tail = out.catch(() => {});
    return out;
  }

  /** Whether the transaction's COMMIT was sent (`end` or `endWith`). */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Sends the writes waiting, then `last` (the COMMIT). PostgreSQL answers a COMMIT of a
   * transaction a failed statement aborted with ROLLBACK, not an error: that is thrown here.
   */
  async end(last: 'COMMIT'): Promise<void> {
    await this.endWith(null, last);
  }

  /**
   * Sends the writes waiting, then `sql` (whose result is returned: a write that says what it
   * changed), then `last`, in one round trip. Call it at most once, from the batch that holds the
   * transaction's writes (every fork adopted).
   */
  async endWith(sql: string, last: 'COMMIT'): Promise<pg.QueryResult>;
  async endWith(sql: null, last: 'COMMIT'): Promise<undefined>;
  async endWith(sql: string | null, last: 'COMMIT'): Promise<pg.QueryResult | undefined> {
    this.#ended = true;
    const head = this.#line.head;
    this.#line.head = undefined;
    const writes = mergeWrites(this.#waiting.splice(0));
    const text = [...(head === undefined ? [] : [head]), ...writes, ...(sql === null ? [] : [sql]), last].join(';\n');
    const out = (await this.#c.query(text)) as pg.QueryResult | pg.QueryResult[];
    const all = Array.isArray(out) ? out : [out];
    if (all[all.length - 1]?.command === 'ROLLBACK') throw new RolledBack();
    return sql === null ? undefined : all[all.length - 2];
  }
}

/** The order of the statements sent on one connection, and a statement to send in front of the next (see StatementBatch). */
interface Line {
  tail: Promise<unknown>;
  head?: string | undefined;
}

/** A write waiting in a batch (its template, and its text or its one row as SQL), with the batch (a step) that made it. */
type Write = { sql: string; owner: object } & (
  { text: string; shape?: undefined; row?: undefined } | { shape: RowInsert; row: string; text?: undefined }
);

/** An INSERT whose one row is placeholders and plain literals: `head` + `(row)` + `tail`. */
interface RowInsert {
  head: string;
  row: string;
  tail: string;
}

const ROW_INSERT =
  /^(\s*INSERT INTO [^\s(]+\s*\([^()]*\)\s*VALUES\s*)\(([^()]*)\)(\s*(?:ON CONFLICT\s*\([^()]*\)\s*DO (?:NOTHING|UPDATE SET [^()]*))?\s*)$/;
/** An UPDATE from one row of VALUES (`UPDATE t AS x SET … FROM (VALUES (row)) AS v(…) WHERE …`): more rows update more rows. */
const ROW_UPDATE =
  /^(\s*UPDATE [^\s(]+ AS \w+ SET [^()]*\s+FROM \(VALUES\s*)\(([^()]*)\)(\)\s*AS \w+\s*\([^()]*\)\s*WHERE [^()]*)$/;
const shapes = new Map<string, RowInsert | null>();

/** `sql` as a one-row INSERT (or UPDATE from VALUES) that can take more rows, or null; remembered per template (a few fixed strings). */
function rowInsert(sql: string): RowInsert | null {
  let shape = shapes.get(sql);
  if (shape === undefined) {
    const m = ROW_INSERT.exec(sql) ?? ROW_UPDATE.exec(sql);
    shape = m && !/\bRETURNING\b/i.test(m[3]!) ? { head: m[1]!, row: m[2]!, tail: m[3]! } : null;
    if (shapes.size >= 256) shapes.clear();
    shapes.set(sql, shape);
  }
  return shape;
}

/**
 * The statements of `writes`, in order, with INSERTs of one template merged into one multi-row
 * INSERT (and UPDATEs from one row of VALUES into one UPDATE from all the rows) where no step's
 * own order changes: a write joins the latest statement of its template
 * only if that statement comes after every statement its step already has (so each step's writes
 * run in the order it made them, and a statement holds at most one row of each step). Steps of a
 * group are of distinct conversations and write distinct rows, so moving one step's write before
 * another step's is what running the steps in another order would do. A merged statement that
 * fails fails the group, whose steps then run alone (PgMessageStore), as an unmerged one would.
 */
export function mergeWrites(writes: readonly Write[]): string[] {
  const out: { text?: string; shape?: RowInsert; rows?: string[] }[] = [];
  const lastOf = new Map<object, number>();
  const latest = new Map<string, number>();
  for (const w of writes) {
    const { shape, row } = w;
    const after = lastOf.get(w.owner) ?? -1;
    if (shape) {
      const at = latest.get(w.sql);
      if (at !== undefined && at > after) {
        out[at]!.rows!.push(row);
        lastOf.set(w.owner, at);
        continue;
      }
      latest.set(w.sql, out.length);
      lastOf.set(w.owner, out.length);
      out.push({ shape, rows: [row] });
      continue;
    }
    lastOf.set(w.owner, out.length);
    out.push({ text: w.text });
  }
  return out.map((s) => s.text ?? `${s.shape!.head}${s.rows!.join(', ')}${s.shape!.tail}`);
}

/** The COMMIT found the transaction aborted by a statement that failed before it: nothing was stored. */
export class RolledBack extends Error {
  constructor() {
    super('PostgreSQL rolled the transaction back: a statement in it had failed');
  }
}

/** A template split at its placeholders: `parts[0]`, value `at[0]`, `parts[1]`, … (one per template, remembered). */
interface Template {
  parts: string[];
  at: number[];
}
const templates = new Map<string, Template>();

function templateOf(sql: string): Template {
  let t = templates.get(sql);
  if (t === undefined) {
    const parts: string[] = [];
    const at: number[] = [];
    let from = 0;
    for (const m of sql.matchAll(/\$(\d+)/g)) {
      parts.push(sql.slice(from, m.index));
      at.push(Number(m[1]) - 1);
      from = m.index + m[0].length;
    }
    parts.push(sql.slice(from));
    t = { parts, at };
    // A few fixed templates in practice; a caller building texts would otherwise grow it without bound.
    if (templates.size >= 512) templates.clear();
    templates.set(sql, t);
  }
  return t;
}

/**
 * `sql` with each `$n` replaced by the literal of `values[n - 1]` (the templates hold no other `$`).
 * The template is split once and the pieces joined per call: a regular expression's replace with a
 * callback per placeholder cost 1.7 % of a node's CPU under one POST per message.
 */
function inline(sql: string, values: readonly Literal[]): string {
  const { parts, at } = templateOf(sql);
  let out = parts[0]!;
  for (let i = 0; i < at.length; i++) {
    const v = at[i]!;
    if (v >= values.length) throw new Error(`statement refers to $${v + 1} but has ${values.length} values`);
    out += literal(values[v]) + parts[i + 1]!;
  }
  return out;
}

/**
 * Integer ids as one PostgreSQL array literal (`{1,2,3}`), for a `$n::bigint[]` parameter: given an
 * array, the driver writes the literal itself, every element through its escaping (two regular
 * expressions each), which showed in a node's profile under one POST per message.
 */
export function intArray(ids: readonly number[]): string {
  for (const id of ids) if (!Number.isSafeInteger(id)) throw new Error(`${id} is not an integer id`);
  return `{${ids.join(',')}}`;
}

/** One value as SQL: NULL, a finite number as written, a boolean, or an escaped string literal. */
export function literal(v: Literal): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`${v} is not a number PostgreSQL stores`);
    return String(v);
  }
  return escapeLiteral(v);
}

/**
 * `text` as a PostgreSQL string literal (for the one multi-statement query that cannot take
 * parameters), as pg's `escapeLiteral` writes it: quotes doubled, and with a backslash the `E''`
 * form with backslashes doubled, so it reads the same whatever standard_conforming_strings says.
 * A NUL, which no text column can hold, is refused.
 */
export function escapeLiteral(text: string): string {
  if (text.includes('\0'))
    throw new CaxtonError(
      'invalid_request',
      'text stored in the cluster state cannot contain a NUL character (U+0000): remove it',
    );
  const quoted = text.includes("'") ? text.replaceAll("'", "''") : text;
  return text.includes('\\') ? ` E'${quoted.replaceAll('\\', '\\\\')}'` : `'${quoted}'`;
}
