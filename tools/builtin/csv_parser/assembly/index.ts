// Built-in tool server "csv_parser": CSV text (RFC 4180) → JSON rows. Tool `parse`.
import { Builder, quote } from "../../shared/json";
import { args, fail, output } from "../../shared/tool";

/** One CSV record reader; on malformed input `record` returns null and `error` says where. */
class Csv {
  i: i32 = 0;
  line: i32 = 1;
  lineStart: i32 = 0;
  error: string = "";
  /** Line on which the last record started. */
  recordLine: i32 = 1;
  /** Whether the last record was a blank line (one empty, unquoted field). */
  blank: bool = false;

  constructor(public s: string, public d: i32, public trim: bool) {}

  err(msg: string): Array<string> | null {
    this.error = "line " + this.line.toString() + ", column " + (this.i - this.lineStart + 1).toString() + ": " + msg;
    return null;
  }

  newline(at: i32): void {
    this.line++;
    this.lineStart = at;
  }

  /** The next record, or null at the end of the input (error empty) or on malformed input. */
  record(): Array<string> | null {
    const s = this.s;
    const n = s.length;
    if (this.i >= n) return null;
    this.recordLine = this.line;
    const fields = new Array<string>();
    let anyQuoted = false;
    while (true) {
      if (this.i < n && s.charCodeAt(this.i) == 0x22) {
        anyQuoted = true;
        const openLine = this.line;
        this.i++;
        const b = new Builder();
        let from = this.i;
        while (true) {
          if (this.i >= n) {
            this.error = "line " + openLine.toString() + ": unterminated quoted field (the closing quote is missing)";
            return null;
          }
          const c = s.charCodeAt(this.i);
          if (c == 0x22) {
            b.add(s.substring(from, this.i));
            if (this.i + 1 < n && s.charCodeAt(this.i + 1) == 0x22) {
              b.add('"');
              this.i += 2;
              from = this.i;
              continue;
            }
            this.i++;
            break;
          }
          if (c == 0x0a) this.newline(this.i + 1);
          else if (c == 0x0d && !(this.i + 1 < n && s.charCodeAt(this.i + 1) == 0x0a)) this.newline(this.i + 1);
          this.i++;
        }
        fields.push(b.toString());
        if (this.i < n) {
          const c = s.charCodeAt(this.i);
          if (c != this.d && c != 0x0a && c != 0x0d) {
            return this.err("unexpected " + show(c) + " after the closing quote of a field (a quote inside a quoted field must be doubled: \"\")");
          }
        }
      } else {
        const start = this.i;
        while (this.i < n) {
          const c = s.charCodeAt(this.i);
          if (c == this.d || c == 0x0a || c == 0x0d) break;
          if (c == 0x22) return this.err("a quote inside an unquoted field (quote the whole field and double the quote: \"a \"\"b\"\"\")");
          this.i++;
        }
        const f = s.substring(start, this.i);
        fields.push(this.trim ? f.trim() : f);
      }
      if (this.i >= n) break;
      const c = s.charCodeAt(this.i);
      this.i++;
      if (c == this.d) continue;
      if (c == 0x0d && this.i < n && s.charCodeAt(this.i) == 0x0a) this.i++;
      this.newline(this.i);
      break;
    }
    this.blank = fields.length == 1 && !anyQuoted && fields[0].length == 0;
    return fields;
  }
}

function show(c: i32): string {
  if (c < 0x20) return "control character U+" + c.toString(16).padStart(4, "0");
  return "character '" + String.fromCharCode(c) + "'";
}

function isDigit(c: i32): bool {
  return c >= 0x30 && c <= 0x39;
}

/** Whether `s` is a number in JSON's grammar (so the text itself is valid JSON, precision kept). */
function isJsonNumber(s: string): bool {
  const n = s.length;
  let i = 0;
  if (i < n && s.charCodeAt(i) == 0x2d) i++;
  if (i >= n) return false;
  if (s.charCodeAt(i) == 0x30) i++;
  else if (isDigit(s.charCodeAt(i))) {
    while (i < n && isDigit(s.charCodeAt(i))) i++;
  } else return false;
  if (i < n && s.charCodeAt(i) == 0x2e) {
    i++;
    const start = i;
    while (i < n && isDigit(s.charCodeAt(i))) i++;
    if (i == start) return false;
  }
  if (i < n && (s.charCodeAt(i) | 0x20) == 0x65) {
    i++;
    if (i < n && (s.charCodeAt(i) == 0x2b || s.charCodeAt(i) == 0x2d)) i++;
    const start = i;
    while (i < n && isDigit(s.charCodeAt(i))) i++;
    if (i == start) return false;
  }
  return i == n;
}

function value(f: string, infer: bool): string {
  if (!infer) return quote(f);
  if (f.length == 0) return "null";
  if (isJsonNumber(f)) return f;
  const lower = f.toLowerCase();
  if (lower == "true" || lower == "false") return lower;
  return quote(f);
}

/**
 * Tool `parse`: {"text", "delimiter"?: ",", "header"?: true, "output"?: "objects"|"arrays",
 * "infer_types"?: false, "trim"?: false, "skip_empty_lines"?: true, "relax_column_count"?: false,
 * "max_rows"?: 100000} → {"columns"?: [...], "rows": [...], "row_count", "truncated"}.
 */
export function parse(): i32 {
  const a = args();
  let text = a.getString("text");
  if (text.length > 0 && text.charCodeAt(0) == 0xfeff) text = text.substring(1);
  let delim = a.getString("delimiter", ",");
  if (delim == "\\t" || delim == "tab") delim = "\t";
  if (delim.length != 1) return fail("\"delimiter\" must be a single character (e.g. \",\", \";\", \"\\t\" or \"|\"), not " + quote(delim));
  const d = delim.charCodeAt(0);
  if (d == 0x22 || d == 0x0a || d == 0x0d) return fail("\"delimiter\" cannot be a quote or a line break");
  const header = a.getBool("header", true);
  const format = a.getString("output", header ? "objects" : "arrays");
  if (format != "objects" && format != "arrays") return fail("\"output\" must be \"objects\" or \"arrays\", not " + quote(format));
  if (format == "objects" && !header) return fail("\"output\": \"objects\" needs a header row (\"header\": true); use \"arrays\" without one");
  const infer = a.getBool("infer_types", false);
  const skipEmpty = a.getBool("skip_empty_lines", true);
  const relax = a.getBool("relax_column_count", false);
  const maxRows = <i32>Math.min(a.getNumber("max_rows", 100000), 1000000);

  const csv = new Csv(text, d, a.getBool("trim", false));
  let columns: Array<string> | null = null;
  let expected = -1;
  let expectedLine = 0;
  const out = new Builder();
  let rows = 0;
  let truncated = false;
  while (true) {
    const rec = csv.record();
    if (rec == null) {
      if (csv.error.length > 0) return fail("malformed CSV: " + csv.error);
      break;
    }
    if (csv.blank && skipEmpty) continue;
    if (header && columns == null) {
      const names = new Array<string>();
      for (let k = 0; k < rec.length; k++) {
        let name = rec[k];
        if (name.length == 0) name = "column_" + (k + 1).toString();
        let unique = name;
        for (let n = 2; names.includes(unique); n++) unique = name + "_" + n.toString();
        names.push(unique);
      }
      columns = names;
      expected = names.length;
      expectedLine = csv.recordLine;
      continue;
    }
    if (expected < 0) {
      expected = rec.length;
      expectedLine = csv.recordLine;
    } else if (rec.length != expected && !relax) {
      return fail(
        "malformed CSV: line " + csv.recordLine.toString() + " has " + rec.length.toString() + " fields, but " +
          (header ? "the header (line " : "line ") + expectedLine.toString() + (header ? ")" : "") + " has " + expected.toString() +
          " (quote fields that contain the delimiter, or pass \"relax_column_count\": true)",
      );
    }
    if (rows >= maxRows) {
      truncated = true;
      break;
    }
    out.add(rows > 0 ? "," : "");
    if (format == "objects") {
      const cols = columns!;
      out.add("{");
      for (let k = 0; k < cols.length; k++) {
        if (k > 0) out.add(",");
        out.add(quote(cols[k])).add(":").add(k < rec.length ? value(rec[k], infer) : infer ? "null" : '""');
      }
      out.add("}");
    } else {
      out.add("[");
      const width = relax || expected < 0 ? rec.length : expected;
      for (let k = 0; k < width; k++) {
        if (k > 0) out.add(",");
        out.add(k < rec.length ? value(rec[k], infer) : infer ? "null" : '""');
      }
      out.add("]");
    }
    rows++;
  }
  const res = new Builder().add("{");
  if (columns != null) {
    const cols = columns;
    res.add('"columns":[');
    for (let k = 0; k < cols.length; k++) res.add(k > 0 ? "," : "").add(quote(cols[k]));
    res.add("],");
  }
  res.add('"rows":[').add(out.toString()).add('],"row_count":').add(rows.toString()).add(',"truncated":').add(truncated ? "true" : "false").add("}");
  output(res.toString());
  return 0;
}
