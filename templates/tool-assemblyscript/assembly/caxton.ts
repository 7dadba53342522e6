// Caxton's AssemblyScript SDK for tool modules: input/output helpers, errors, HTTP, Caxton's file
// and SQLite host functions and a small JSON reader/writer. Everything else (config, vars,
// logging) comes from Extism's AssemblyScript PDK (`@extism/as-pdk`), whose ABI Caxton implements.
import { Host, Memory } from "@extism/as-pdk";

@external("extism:host/env", "error_set")
declare function error_set(offset: u64): void;
@external("extism:host/env", "length")
declare function length(offset: u64): u64;
@external("extism:host/user", "caxton_file_read")
declare function caxton_file_read(path: u64): u64;
@external("extism:host/user", "caxton_file_write")
declare function caxton_file_write(path: u64, data: u64): void;
@external("extism:host/user", "caxton_file_list")
declare function caxton_file_list(path: u64): u64;
@external("extism:host/user", "caxton_sqlite_query")
declare function caxton_sqlite_query(request: u64): u64;
@external("extism:host/env", "alloc")
declare function kernel_alloc(n: u64): u64;
@external("extism:host/env", "store_u8")
declare function store_u8(offset: u64, v: u8): void;
@external("extism:host/env", "store_u64")
declare function store_u64(offset: u64, v: u64): void;
@external("extism:host/env", "http_request")
declare function http_request(request: u64, body: u64): u64;
@external("extism:host/env", "http_status_code")
declare function http_status_code(): i32;
@external("extism:host/env", "http_headers")
declare function http_headers(): u64;

/** The call's input (the tool arguments as a JSON text). */
export function input(): string {
  return Host.inputString();
}

/** Sets the call's output (what the model sees). */
export function output(text: string): void {
  Host.output(Uint8Array.wrap(String.UTF8.encode(text)));
}

/** Reports an error to the model; return its result from the exported function. */
export function fail(message: string): i32 {
  const m = Memory.allocateString(message);
  error_set(m.offset);
  return 1;
}

function readBlock(offset: u64): string {
  if (offset == 0) return "";
  return new Memory(offset, length(offset)).toString();
}

/** Copies bytes into a new kernel memory block, 8 bytes per host call. */
export function allocBytes(data: Uint8Array): Memory {
  const n = data.length;
  const offset = kernel_alloc(<u64>n);
  let i = 0;
  for (; i + 8 <= n; i += 8) store_u64(offset + <u64>i, load<u64>(data.dataStart + <usize>i));
  for (; i < n; i++) store_u8(offset + <u64>i, data[i]);
  return new Memory(offset, <u64>n);
}

/** A string as UTF-8 in a new kernel memory block. */
export function allocString(text: string): Memory {
  return allocBytes(Uint8Array.wrap(String.UTF8.encode(text)));
}

/** An HTTP response: status, headers (a JSON object text) and body bytes. */
export class HttpResponse {
  constructor(public status: i32, public headers: string, public body: Uint8Array) {}

  text(): string {
    return String.UTF8.decode(this.body.buffer);
  }
}

/**
 * HTTP to the hosts both the manifest (`[permissions] allowed_hosts`) and the operator allow.
 * Redirects are not followed; a refused host, a network error or the deadline ends the call.
 */
export class Http {
  /** `headers` is a JSON object text ("{}" for none); `body` is sent unless null. */
  static request(method: string, url: string, headers: string = "{}", body: string | null = null): HttpResponse {
    const req = '{"method":' + Json.quote(method) + ',"url":' + Json.quote(url) + ',"headers":' + headers + "}";
    const bodyOffset: u64 = body != null ? allocString(body).offset : 0;
    const res = http_request(allocString(req).offset, bodyOffset);
    const status = http_status_code();
    const h = http_headers();
    const bytes = res == 0 ? new Uint8Array(0) : new Memory(res, length(res)).toUint8Array();
    return new HttpResponse(status, h == 0 ? "{}" : readBlock(h), bytes);
  }
}

/**
 * Read-only SQLite on the databases the manifest declares (`[permissions] databases`) and the
 * operator maps to files. `request` is a JSON text: {"database": "/db/x.db", "sql": "SELECT ...",
 * "params": [..] | {..}, "max_rows": 100}. Returns the answer's JSON text:
 * {"columns", "rows", "row_count", "truncated"} or {"error"} for an SQL error. A refused
 * database or a statement that would write ends the call.
 */
export class Sqlite {
  static query(request: string): string {
    return readBlock(caxton_sqlite_query(allocString(request).offset));
  }
}

/**
 * Files under the roots the manifest declares in [permissions.paths] and the operator maps to
 * directories. Paths are absolute guest paths ("/data/notes.txt"). A refused or failed access
 * ends the call with an error (path traversal, symlink escape, missing file...).
 */
export class Files {
  static read(path: string): string {
    return readBlock(caxton_file_read(Memory.allocateString(path).offset));
  }

  static write(path: string, data: string): void {
    caxton_file_write(allocString(path).offset, allocString(data).offset);
  }

  /** The names in a directory, as a JSON array. */
  static list(path: string): string {
    return readBlock(caxton_file_list(Memory.allocateString(path).offset));
  }
}

// ── JSON ─────────────────────────────────────────────────────────────────────────────────────

export enum JsonKind { Null, Bool, Number, String, Array, Object }

/** A parsed JSON value. */
export class Json {
  kind: JsonKind = JsonKind.Null;
  bool: bool = false;
  num: f64 = 0;
  str: string = "";
  arr: Array<Json> = [];
  keys: Array<string> = [];
  vals: Array<Json> = [];

  /** The member `key` of an object (null when absent or not an object). */
  get(key: string): Json | null {
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] == key) return this.vals[i];
    return null;
  }

  /** The string member `key`, or `fallback`. */
  getString(key: string, fallback: string = ""): string {
    const v = this.get(key);
    return v != null && v.kind == JsonKind.String ? v.str : fallback;
  }

  /** The number member `key`, or `fallback`. */
  getNumber(key: string, fallback: f64 = 0): f64 {
    const v = this.get(key);
    return v != null && v.kind == JsonKind.Number ? v.num : fallback;
  }

  static parse(text: string): Json {
    const p = new JsonParser(text);
    const v = p.value();
    p.ws();
    if (p.i != text.length) throw new Error("JSON: unexpected text after the value");
    return v;
  }

  /** A JSON string literal for `s`. */
  static quote(s: string): string {
    let out = '"';
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c == 0x22) out += '\\"';
      else if (c == 0x5c) out += "\\\\";
      else if (c == 0x0a) out += "\\n";
      else if (c == 0x0d) out += "\\r";
      else if (c == 0x09) out += "\\t";
      else if (c < 0x20) out += "\\u" + c.toString(16).padStart(4, "0");
      else out += String.fromCharCode(c);
    }
    return out + '"';
  }
}

class JsonParser {
  i: i32 = 0;
  constructor(public s: string) {}

  ws(): void {
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09) this.i++;
      else break;
    }
  }

  value(): Json {
    this.ws();
    if (this.i >= this.s.length) throw new Error("JSON: unexpected end");
    const c = this.s.charCodeAt(this.i);
    const v = new Json();
    if (c == 0x7b) {
      v.kind = JsonKind.Object;
      this.i++;
      this.ws();
      if (this.s.charCodeAt(this.i) == 0x7d) { this.i++; return v; }
      while (true) {
        this.ws();
        if (this.s.charCodeAt(this.i) != 0x22) throw new Error("JSON: expected a key");
        v.keys.push(this.string());
        this.ws();
        if (this.s.charCodeAt(this.i) != 0x3a) throw new Error("JSON: expected ':'");
        this.i++;
        v.vals.push(this.value());
        this.ws();
        const d = this.s.charCodeAt(this.i++);
        if (d == 0x7d) return v;
        if (d != 0x2c) throw new Error("JSON: expected ',' or '}'");
      }
    }
    if (c == 0x5b) {
      v.kind = JsonKind.Array;
      this.i++;
      this.ws();
      if (this.s.charCodeAt(this.i) == 0x5d) { this.i++; return v; }
      while (true) {
        v.arr.push(this.value());
        this.ws();
        const d = this.s.charCodeAt(this.i++);
        if (d == 0x5d) return v;
        if (d != 0x2c) throw new Error("JSON: expected ',' or ']'");
      }
    }
    if (c == 0x22) { v.kind = JsonKind.String; v.str = this.string(); return v; }
    if (this.s.startsWith("true", this.i)) { this.i += 4; v.kind = JsonKind.Bool; v.bool = true; return v; }
    if (this.s.startsWith("false", this.i)) { this.i += 5; v.kind = JsonKind.Bool; return v; }
    if (this.s.startsWith("null", this.i)) { this.i += 4; return v; }
    const start = this.i;
    while (this.i < this.s.length) {
      const d = this.s.charCodeAt(this.i);
      if ((d >= 0x30 && d <= 0x39) || d == 0x2d || d == 0x2b || d == 0x2e || d == 0x65 || d == 0x45) this.i++;
      else break;
    }
    if (start == this.i) throw new Error("JSON: unexpected character");
    v.kind = JsonKind.Number;
    v.num = parseFloat(this.s.substring(start, this.i));
    return v;
  }

  string(): string {
    this.i++; // opening quote
    let out = "";
    let from = this.i;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c == 0x22) {
        out += this.s.substring(from, this.i);
        this.i++;
        return out;
      }
      if (c == 0x5c) {
        out += this.s.substring(from, this.i);
        const e = this.s.charCodeAt(this.i + 1);
        this.i += 2;
        if (e == 0x6e) out += "\n";
        else if (e == 0x74) out += "\t";
        else if (e == 0x72) out += "\r";
        else if (e == 0x62) out += "\b";
        else if (e == 0x66) out += "\f";
        else if (e == 0x75) {
          out += String.fromCharCode(<i32>parseInt(this.s.substring(this.i, this.i + 4), 16));
          this.i += 4;
        } else out += String.fromCharCode(e);
        from = this.i;
      } else this.i++;
    }
    throw new Error("JSON: unterminated string");
  }
}
