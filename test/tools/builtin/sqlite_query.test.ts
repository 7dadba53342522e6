/**
 * Built-in `sqlite_query`: read-only SQL on real SQLite files (better-sqlite3) that the operator
 * maps under /db — a directory or a single file. Writes are refused and leave the file unchanged.
 */
import { readFileSync, symlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp.js';
import { loadBuiltin, type Loaded } from './helpers.js';

let base: string;
let dbDir: string;
let salesFile: string;
let sql: Loaded;

interface Answer {
  columns: string[];
  rows: unknown[];
  row_count: number;
  truncated: boolean;
}

beforeAll(() => {
  base = makeTempDir('caxton-builtin-sqlite-');
  dbDir = join(base, 'db');
  mkdirSync(dbDir);
  salesFile = join(dbDir, 'sales.db');
  const db = new Database(salesFile);
  db.exec(`CREATE TABLE sales (id INTEGER PRIMARY KEY, month TEXT NOT NULL, amount REAL, big INTEGER, data BLOB);
           CREATE VIEW big_sales AS SELECT month, amount FROM sales WHERE amount > 100;`);
  const ins = db.prepare('INSERT INTO sales (month, amount, big, data) VALUES (?, ?, ?, ?)');
  ins.run('Jan', 120.5, 9007199254740993n, Buffer.from('hi'));
  ins.run('Feb', 80, 1, null);
  ins.run('Mar', 200, 2, null);
  db.close();
  const secret = new Database(join(base, 'secret.db'));
  secret.exec("CREATE TABLE s (v TEXT); INSERT INTO s VALUES ('TOP SECRET')");
  secret.close();
  symlinkSync(join(base, 'secret.db'), join(dbDir, 'escape.db'));
  writeFileSync(join(dbDir, 'notes.txt'), 'not a database');
  sql = loadBuiltin('sqlite_query', { databases: { '/db': dbDir } });
});
afterAll(removeTempDirs);

const failure = async (tool: string, args: Record<string, unknown>) => {
  const r = await sql.call(tool, args);
  expect(r.is_error).toBe(true);
  return r.content;
};

describe('sqlite_query', () => {
  it('declares query and tables and the database grant /db', () => {
    expect(sql.server.tools.map((t) => t.name)).toEqual(['sqlite_query.query', 'sqlite_query.tables']);
    expect(sql.server.manifest.permissions.databases).toEqual(['/db']);
    expect(sql.server.warnings).toEqual([]);
  });

  it('returns rows as objects (default) or arrays; big integers as strings, blobs as base64', async () => {
    const r = await sql.json<Answer>('query', {
      database: '/db/sales.db',
      sql: 'SELECT month, amount, big, data FROM sales ORDER BY id',
    });
    expect(r).toEqual({
      columns: ['month', 'amount', 'big', 'data'],
      rows: [
        { month: 'Jan', amount: 120.5, big: '9007199254740993', data: { base64: 'aGk=' } },
        { month: 'Feb', amount: 80, big: 1, data: null },
        { month: 'Mar', amount: 200, big: 2, data: null },
      ],
      row_count: 3,
      truncated: false,
    });
    const a = await sql.json<Answer>('query', {
      database: '/db/sales.db',
      sql: 'SELECT month, amount FROM big_sales ORDER BY month',
      format: 'arrays',
    });
    expect(a).toEqual({
      columns: ['month', 'amount'],
      rows: [
        ['Jan', 120.5],
        ['Mar', 200],
      ],
      row_count: 2,
      truncated: false,
    });
  });

  it('binds positional and named parameters and caps rows', async () => {
    expect(
      (
        await sql.json<Answer>('query', {
          database: '/db/sales.db',
          sql: 'SELECT month FROM sales WHERE amount > ? AND month != ?',
          params: [100, 'Mar'],
        })
      ).rows,
    ).toEqual([{ month: 'Jan' }]);
    expect(
      (
        await sql.json<Answer>('query', {
          database: '/db/sales.db',
          sql: 'SELECT count(*) AS n FROM sales WHERE month = :m',
          params: { m: "Feb' OR 1=1 --" },
        })
      ).rows,
    ).toEqual([{ n: 0 }]);
    expect(
      await sql.json<Answer>('query', {
        database: '/db/sales.db',
        sql: 'SELECT id FROM sales ORDER BY id',
        max_rows: 2,
      }),
    ).toEqual({
      columns: ['id'],
      rows: [{ id: 1 }, { id: 2 }],
      row_count: 2,
      truncated: true,
    });
  });

  it('lists tables and views', async () => {
    expect(await sql.json('tables', { database: '/db/sales.db' })).toEqual({
      tables: [
        {
          name: 'big_sales',
          type: 'view',
          sql: 'CREATE VIEW big_sales AS SELECT month, amount FROM sales WHERE amount > 100',
        },
        {
          name: 'sales',
          type: 'table',
          sql: expect.stringMatching(/^CREATE TABLE sales \(id INTEGER PRIMARY KEY/) as unknown,
        },
      ],
    });
  });

  it('refuses every statement that would write; the file is unchanged', async () => {
    const before = readFileSync(salesFile);
    for (const stmt of [
      "INSERT INTO sales (month) VALUES ('Apr')",
      'DELETE FROM sales',
      'UPDATE sales SET amount = 0',
      'DROP TABLE sales',
      'CREATE TABLE t (x)',
      'PRAGMA user_version = 7',
    ]) {
      expect(await failure('query', { database: '/db/sales.db', sql: stmt })).toBe(
        'tool "sqlite_query.query" failed (denied): sqlite: the statement would modify the database; only read-only statements are allowed',
      );
    }
    expect(await failure('query', { database: '/db/sales.db', sql: "ATTACH DATABASE '/tmp/x.db' AS x" })).toMatch(
      /\(denied\): sqlite: /,
    );
    expect(await failure('query', { database: '/db/sales.db', sql: 'BEGIN' })).toMatch(
      /\(denied\): sqlite: only statements that return rows are allowed/,
    );
    expect(readFileSync(salesFile).equals(before)).toBe(true);
    expect(
      (await sql.json<Answer>('query', { database: '/db/sales.db', sql: 'SELECT count(*) AS n FROM sales' })).rows,
    ).toEqual([{ n: 3 }]);
  });

  it('reports SQL errors as the error, naming the problem', async () => {
    expect(await failure('query', { database: '/db/sales.db', sql: 'SELECT nope FROM sales' })).toBe(
      'tool "sqlite_query.query" failed (error): SQL error: no such column: nope',
    );
    expect(await failure('query', { database: '/db/sales.db', sql: 'SELEC 1' })).toMatch(
      /\(error\): SQL error: near "SELEC": syntax error/,
    );
    expect(await failure('query', { database: '/db/notes.txt', sql: 'SELECT 1 FROM sqlite_master' })).toMatch(
      /\(error\): SQL error: file is not a database/,
    );
  });

  it('refuses databases outside the grant: other paths, "..", symlink escapes', async () => {
    expect(await failure('query', { database: '/etc/passwd', sql: 'SELECT 1' })).toBe(
      'tool "sqlite_query.query" failed (denied): database path "/etc/passwd" is not granted (granted: /db/*)',
    );
    expect(await failure('query', { database: join(base, 'secret.db'), sql: 'SELECT * FROM s' })).toMatch(
      /\(denied\): database path ".*secret\.db" is not granted/,
    );
    expect(await failure('query', { database: '/db/../secret.db', sql: 'SELECT * FROM s' })).toMatch(
      /\(denied\): database path "\/db\/\.\.\/secret\.db" contains "\.\.": path traversal is not allowed/,
    );
    const escape = await failure('query', { database: '/db/escape.db', sql: 'SELECT * FROM s' });
    expect(escape).toMatch(
      /\(denied\): database path "\/db\/escape\.db" resolves outside its grant \/db \(through a symlink\)/,
    );
    expect(escape).not.toContain('TOP SECRET');
    expect(await failure('tables', { database: '/db/missing.db' })).toBe(
      'tool "sqlite_query.tables" failed (io_error): database "/db/missing.db" does not exist',
    );
    expect((await sql.json<Answer>('query', { database: '/db/sales.db', sql: 'SELECT 1 AS one' })).rows).toEqual([
      { one: 1 },
    ]);
  });

  it('a single-file grant is the database "/db"', async () => {
    const one = loadBuiltin('sqlite_query', { databases: { '/db': salesFile } });
    expect((await one.json<Answer>('query', { database: '/db', sql: 'SELECT count(*) AS n FROM sales' })).rows).toEqual(
      [{ n: 3 }],
    );
    expect((await one.call('query', { database: '/db/sales.db', sql: 'SELECT 1' })).content).toMatch(
      /\(denied\): database path "\/db\/sales\.db" is not granted \(granted: \/db\)/,
    );
  });

  it('refuses everything when the operator maps no database', async () => {
    const ungranted = loadBuiltin('sqlite_query');
    expect(ungranted.server.warnings.map((w) => w.message).join()).toMatch(
      /asks for database \/db, which the operator has not mapped/,
    );
    expect((await ungranted.call('query', { database: '/db/sales.db', sql: 'SELECT 1' })).content).toMatch(
      /\(denied\): SQLite access is not granted to this tool server/,
    );
  });

  it('malformed input gets a clear error naming the field', async () => {
    expect(await failure('query', { sql: 'SELECT 1' })).toMatch(
      /\(invalid_input\): .*must have required property 'database'/,
    );
    expect(await failure('query', { database: '/db/sales.db' })).toMatch(
      /\(invalid_input\): .*must have required property 'sql'/,
    );
    expect(await failure('query', { database: '/db/sales.db', sql: 'SELECT ?', params: [[1]] })).toMatch(
      /\(invalid_input\): .*\/params\/0 must be string,number,boolean,null/,
    );
    expect(await failure('query', { database: '/db/sales.db', sql: 'SELECT ?', params: 'x' })).toMatch(
      /\(invalid_input\): .*\/params must be array,object/,
    );
    expect(await failure('query', { database: '/db/sales.db', sql: 'SELECT 1', max_rows: 1e6 })).toMatch(
      /\(invalid_input\): .*\/max_rows must be <= 10000/,
    );
    expect(await failure('query', { database: '/db/sales.db', sql: 'SELECT 1', format: 'csv' })).toMatch(
      /\(invalid_input\): .*\/format must be equal to one of the allowed values/,
    );
    expect(await failure('query', { database: 'sales.db', sql: 'SELECT 1' })).toBe(
      'tool "sqlite_query.query" failed (error): "database" must be an absolute path under /db (e.g. "/db/sales.db"), not "sales.db"',
    );
    expect(await failure('query', { database: '/db/sales.db', sql: '   ' })).toMatch(/\(error\): "sql" is empty/);
  });
});
