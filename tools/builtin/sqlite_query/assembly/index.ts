// Built-in tool server "sqlite_query": read-only SQL on the SQLite databases the operator maps
// under "/db" (one file, or a directory of database files). Tools `query` and `tables`.
// The host (src/tools/servers/sqlite-access.ts) opens the file read-only, allows only statements
// that read and return rows, binds parameters and caps rows and bytes; a refused database or a
// writing statement ends the call with a clear error, and an SQL error comes back as the error.
import { Builder, JValue, K, parseJson, lastError, quote } from "../../shared/json";
import { args, fail, output, Sqlite } from "../../shared/tool";

function databaseProblem(db: string): string {
  if (db.length == 0) return "\"database\" must not be empty; give the database's path under /db, e.g. \"/db/sales.db\"";
  if (db.charCodeAt(0) != 0x2f) return "\"database\" must be an absolute path under /db (e.g. \"/db/" + db + "\"), not " + quote(db);
  return "";
}

/** Runs `request` (JSON text) on the host; null (after fail()) on an SQL error. */
function run(request: string): JValue | null {
  const answer = Sqlite.query(request);
  const v = parseJson(answer, "answer from the host");
  if (v == null) {
    fail(lastError);
    return null;
  }
  const err = v.get("error");
  if (err != null && err.isStr) {
    fail(err.s);
    return null;
  }
  return v;
}

/**
 * Tool `query`: {"database", "sql", "params"?: [..] | {..}, "max_rows"?: 1000, "format"?:
 * "objects"|"arrays"} → {"columns", "rows", "row_count", "truncated"}.
 */
export function query(): i32 {
  const a = args();
  const db = a.getString("database");
  const bad = databaseProblem(db);
  if (bad.length > 0) return fail(bad);
  const sql = a.getString("sql");
  if (sql.trim().length == 0) return fail("\"sql\" is empty; give one read-only statement, e.g. \"SELECT * FROM t LIMIT 10\"");
  const format = a.getString("format", "objects");
  if (format != "objects" && format != "arrays") return fail("\"format\" must be \"objects\" or \"arrays\", not " + quote(format));
  const req = new Builder().add('{"database":').add(quote(db)).add(',"sql":').add(quote(sql));
  const params = a.get("params");
  if (params != null && params.kind != K.Null) {
    if (params.kind != K.Arr && params.kind != K.Obj) return fail("\"params\" must be an array (for ? placeholders) or an object (for :name placeholders)");
    const n = params.size;
    for (let i = 0; i < n; i++) {
      const p = params.kind == K.Arr ? params.at(i) : params.vals![i];
      if (p.kind == K.Arr || p.kind == K.Obj) {
        const where = params.kind == K.Arr ? "params[" + i.toString() + "]" : "params." + params.keys![i];
        return fail("\"" + where + "\" must be a string, number, boolean or null");
      }
    }
    req.add(',"params":').add(params.stringify());
  }
  if (a.has("max_rows")) req.add(',"max_rows":').add((<i64>a.getNumber("max_rows", 1000)).toString());
  req.add("}");
  const v = run(req.toString());
  if (v == null) return 1;
  if (format == "arrays") {
    output(v.stringify());
    return 0;
  }
  const cols = v.get("columns")!;
  const rows = v.get("rows")!;
  const out = JValue.arr();
  for (let r = 0; r < rows.size; r++) {
    const row = rows.at(r);
    const o = JValue.obj();
    for (let c = 0; c < cols.size; c++) o.set(cols.at(c).s, c < row.size ? row.at(c) : JValue.nul());
    out.push(o);
  }
  const res = JValue.obj();
  res.set("columns", cols).set("rows", out).set("row_count", v.get("row_count")!).set("truncated", v.get("truncated")!);
  output(res.stringify());
  return 0;
}

/** Tool `tables`: {"database"} → {"tables": [{"name", "type", "sql"}]} (tables and views). */
export function tables(): i32 {
  const a = args();
  const db = a.getString("database");
  const bad = databaseProblem(db);
  if (bad.length > 0) return fail(bad);
  const sql = "SELECT name, type, sql FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name";
  const v = run('{"database":' + quote(db) + ',"sql":' + quote(sql) + ',"max_rows":10000}');
  if (v == null) return 1;
  const rows = v.get("rows")!;
  const out = JValue.arr();
  for (let r = 0; r < rows.size; r++) {
    const row = rows.at(r);
    out.push(JValue.obj().set("name", row.at(0)).set("type", row.at(1)).set("sql", row.at(2)));
  }
  output(JValue.obj().set("tables", out).stringify());
  return 0;
}
