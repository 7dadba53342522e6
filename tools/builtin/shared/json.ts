// JSON for the built-in tool servers: a strict parser that reports errors (with line and column)
// instead of aborting — AssemblyScript has no exceptions — a value model and a serializer that
// builds its text in pieces (string `+=` in a loop is quadratic).

export enum K { Null, Bool, Num, Str, Arr, Obj }

/**
 * Builds a string in one growing UTF-16 buffer (doubling). Not an array of pieces: under the
 * incremental GC a large array that keeps receiving new strings is re-scanned whole at every
 * marking step (its write barrier turns it grey again), which makes long outputs quadratic.
 */
export class Builder {
  buf: ArrayBuffer = new ArrayBuffer(256);
  /** Bytes used. */
  used: i32 = 0;

  add(s: string): Builder {
    const n = s.length << 1;
    if (n == 0) return this;
    const need = this.used + n;
    if (need > this.buf.byteLength) {
      let cap = this.buf.byteLength << 1;
      while (cap < need) cap <<= 1;
      const next = new ArrayBuffer(cap);
      memory.copy(changetype<usize>(next), changetype<usize>(this.buf), <usize>this.used);
      this.buf = next;
    }
    memory.copy(changetype<usize>(this.buf) + <usize>this.used, changetype<usize>(s), <usize>n);
    this.used = need;
    return this;
  }

  /** Characters (UTF-16 code units) added so far. */
  get length(): i32 {
    return this.used >> 1;
  }

  toString(): string {
    return String.UTF16.decodeUnsafe(changetype<usize>(this.buf), <usize>this.used);
  }
}

/** A JSON value. Arrays keep `items`; objects keep `keys`/`vals` in order. */
export class JValue {
  kind: K = K.Null;
  b: bool = false;
  n: f64 = 0;
  s: string = "";
  items: Array<JValue> | null = null;
  keys: Array<string> | null = null;
  vals: Array<JValue> | null = null;

  static nul(): JValue {
    return new JValue();
  }
  static bool(b: bool): JValue {
    const v = new JValue();
    v.kind = K.Bool;
    v.b = b;
    return v;
  }
  static num(n: f64): JValue {
    const v = new JValue();
    v.kind = K.Num;
    v.n = n;
    return v;
  }
  static str(s: string): JValue {
    const v = new JValue();
    v.kind = K.Str;
    v.s = s;
    return v;
  }
  static arr(): JValue {
    const v = new JValue();
    v.kind = K.Arr;
    v.items = [];
    return v;
  }
  static obj(): JValue {
    const v = new JValue();
    v.kind = K.Obj;
    v.keys = [];
    v.vals = [];
    return v;
  }

  get isNull(): bool { return this.kind == K.Null; }
  get isArr(): bool { return this.kind == K.Arr; }
  get isObj(): bool { return this.kind == K.Obj; }
  get isStr(): bool { return this.kind == K.Str; }
  get isNum(): bool { return this.kind == K.Num; }

  /** Number of items (array) or members (object); 0 otherwise. */
  get size(): i32 {
    if (this.kind == K.Arr) return this.items!.length;
    if (this.kind == K.Obj) return this.keys!.length;
    return 0;
  }

  at(i: i32): JValue {
    return this.items!.at(i);
  }

  push(v: JValue): JValue {
    this.items!.push(v);
    return this;
  }

  /** The member `key` (the last one, if repeated), or null. */
  get(key: string): JValue | null {
    if (this.kind != K.Obj) return null;
    const keys = this.keys!;
    for (let i = keys.length - 1; i >= 0; i--) if (keys[i] == key) return this.vals![i];
    return null;
  }

  /** Adds a member (no duplicate check: use for keys known to be distinct). */
  set(key: string, v: JValue): JValue {
    this.keys!.push(key);
    this.vals!.push(v);
    return this;
  }

  getString(key: string, fallback: string = ""): string {
    const v = this.get(key);
    return v != null && v.kind == K.Str ? v.s : fallback;
  }

  getNumber(key: string, fallback: f64): f64 {
    const v = this.get(key);
    return v != null && v.kind == K.Num ? v.n : fallback;
  }

  getBool(key: string, fallback: bool): bool {
    const v = this.get(key);
    return v != null && v.kind == K.Bool ? v.b : fallback;
  }

  /** Whether `key` is present with a value other than null. */
  has(key: string): bool {
    const v = this.get(key);
    return v != null && v.kind != K.Null;
  }

  stringify(): string {
    const b = new Builder();
    write(this, b);
    return b.toString();
  }
}

/** Structural equality (numbers by value, objects regardless of member order). */
export function jsonEquals(a: JValue, b: JValue): bool {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case K.Null: return true;
    case K.Bool: return a.b == b.b;
    case K.Num: return a.n == b.n;
    case K.Str: return a.s == b.s;
    case K.Arr: {
      if (a.size != b.size) return false;
      for (let i = 0; i < a.size; i++) if (!jsonEquals(a.at(i), b.at(i))) return false;
      return true;
    }
    default: {
      if (a.size != b.size) return false;
      const keys = a.keys!;
      for (let i = 0; i < keys.length; i++) {
        const other = b.get(keys[i]);
        if (other == null || !jsonEquals(a.vals![i], other)) return false;
      }
      return true;
    }
  }
}

/** A number as JSON: integers without a fraction, NaN and infinities as null. */
export function numText(n: f64): string {
  if (!isFinite(n)) return "null";
  if (n == Math.floor(n) && Math.abs(n) < 9007199254740992.0) {
    if (n == 0) return "0";
    return (<i64>n).toString();
  }
  return n.toString();
}

/** `n` rounded to `digits` decimals, without trailing zeros ("1.5", "2", "-0.25"). */
export function fixed(n: f64, digits: i32): string {
  if (!isFinite(n)) return "0";
  const scale = Math.pow(10, <f64>digits);
  const r = Math.round(Math.abs(n) * scale);
  if (r == 0) return "0";
  const neg = n < 0;
  if (r >= 9007199254740992.0) return numText(n);
  let t = (<i64>r).toString();
  if (digits > 0) {
    while (t.length <= digits) t = "0" + t;
    const intPart = t.substring(0, t.length - digits);
    let frac = t.substring(t.length - digits);
    let end = frac.length;
    while (end > 0 && frac.charCodeAt(end - 1) == 0x30) end--;
    frac = frac.substring(0, end);
    t = frac.length > 0 ? intPart + "." + frac : intPart;
  }
  return neg ? "-" + t : t;
}

export function quote(s: string): string {
  const b = new Builder();
  quoteInto(s, b);
  return b.toString();
}

function quoteInto(s: string, b: Builder): void {
  b.add('"');
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c != 0x22 && c != 0x5c) continue;
    if (i > from) b.add(s.substring(from, i));
    from = i + 1;
    if (c == 0x22) b.add('\\"');
    else if (c == 0x5c) b.add("\\\\");
    else if (c == 0x0a) b.add("\\n");
    else if (c == 0x0d) b.add("\\r");
    else if (c == 0x09) b.add("\\t");
    else b.add("\\u" + c.toString(16).padStart(4, "0"));
  }
  if (from < s.length) b.add(from == 0 ? s : s.substring(from));
  b.add('"');
}

function write(v: JValue, b: Builder): void {
  switch (v.kind) {
    case K.Null: b.add("null"); break;
    case K.Bool: b.add(v.b ? "true" : "false"); break;
    case K.Num: b.add(numText(v.n)); break;
    case K.Str: quoteInto(v.s, b); break;
    case K.Arr: {
      b.add("[");
      const items = v.items!;
      for (let i = 0; i < items.length; i++) {
        if (i > 0) b.add(",");
        write(items[i], b);
      }
      b.add("]");
      break;
    }
    default: {
      b.add("{");
      const keys = v.keys!;
      const vals = v.vals!;
      for (let i = 0; i < keys.length; i++) {
        if (i > 0) b.add(",");
        quoteInto(keys[i], b);
        b.add(":");
        write(vals[i], b);
      }
      b.add("}");
    }
  }
}

const MAX_DEPTH = 256;

/** Strict JSON (RFC 8259). On failure `parse` returns null and `error` says what and where. */
export class JsonParser {
  i: i32 = 0;
  depth: i32 = 0;
  error: string | null = null;

  constructor(public s: string, public what: string = "JSON") {}

  parse(): JValue | null {
    if (this.s.length > 0 && this.s.charCodeAt(0) == 0xfeff) this.i = 1;
    const v = this.value();
    if (v == null) return null;
    this.ws();
    if (this.i < this.s.length) return this.fail("unexpected " + this.describe() + " after the value");
    return v;
  }

  /** Line and column (1-based) of offset `at`. */
  position(at: i32): string {
    let line = 1;
    let col = 1;
    const end = min(at, this.s.length);
    for (let k = 0; k < end; k++) {
      if (this.s.charCodeAt(k) == 0x0a) {
        line++;
        col = 1;
      } else col++;
    }
    return "line " + line.toString() + ", column " + col.toString();
  }

  fail(msg: string): JValue | null {
    if (this.error == null) this.error = "invalid " + this.what + ": " + msg + " at " + this.position(this.i);
    return null;
  }

  describe(): string {
    if (this.i >= this.s.length) return "end of input";
    const c = this.s.charCodeAt(this.i);
    if (c < 0x20) return "control character U+" + c.toString(16).padStart(4, "0");
    return "character '" + String.fromCharCode(c) + "'";
  }

  ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09) this.i++;
      else break;
    }
  }

  value(): JValue | null {
    this.ws();
    if (this.i >= this.s.length) return this.fail("unexpected end of input (expected a value)");
    const c = this.s.charCodeAt(this.i);
    if (c == 0x7b) return this.object();
    if (c == 0x5b) return this.array();
    if (c == 0x22) {
      const str = this.string();
      return str == null ? null : JValue.str(str);
    }
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    if (this.s.startsWith("true", this.i)) { this.i += 4; return JValue.bool(true); }
    if (this.s.startsWith("false", this.i)) { this.i += 5; return JValue.bool(false); }
    if (this.s.startsWith("null", this.i)) { this.i += 4; return JValue.nul(); }
    return this.fail("unexpected " + this.describe() + " (expected a value)");
  }

  object(): JValue | null {
    if (++this.depth > MAX_DEPTH) return this.fail("nested deeper than " + MAX_DEPTH.toString() + " levels");
    this.i++;
    const v = JValue.obj();
    this.ws();
    if (this.i < this.s.length && this.s.charCodeAt(this.i) == 0x7d) {
      this.i++;
      this.depth--;
      return v;
    }
    while (true) {
      this.ws();
      if (this.i >= this.s.length || this.s.charCodeAt(this.i) != 0x22) return this.fail("expected a string key, found " + this.describe());
      const key = this.string();
      if (key == null) return null;
      this.ws();
      if (this.i >= this.s.length || this.s.charCodeAt(this.i) != 0x3a) return this.fail("expected ':' after a key, found " + this.describe());
      this.i++;
      const m = this.value();
      if (m == null) return null;
      v.set(key, m);
      this.ws();
      if (this.i >= this.s.length) return this.fail("unexpected end of input (expected ',' or '}')");
      const d = this.s.charCodeAt(this.i);
      if (d == 0x7d) {
        this.i++;
        this.depth--;
        return v;
      }
      if (d != 0x2c) return this.fail("expected ',' or '}', found " + this.describe());
      this.i++;
    }
  }

  array(): JValue | null {
    if (++this.depth > MAX_DEPTH) return this.fail("nested deeper than " + MAX_DEPTH.toString() + " levels");
    this.i++;
    const v = JValue.arr();
    this.ws();
    if (this.i < this.s.length && this.s.charCodeAt(this.i) == 0x5d) {
      this.i++;
      this.depth--;
      return v;
    }
    while (true) {
      const item = this.value();
      if (item == null) return null;
      v.push(item);
      this.ws();
      if (this.i >= this.s.length) return this.fail("unexpected end of input (expected ',' or ']')");
      const d = this.s.charCodeAt(this.i);
      if (d == 0x5d) {
        this.i++;
        this.depth--;
        return v;
      }
      if (d != 0x2c) return this.fail("expected ',' or ']', found " + this.describe());
      this.i++;
    }
  }

  digits(): i32 {
    const start = this.i;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c < 0x30 || c > 0x39) break;
      this.i++;
    }
    return this.i - start;
  }

  number(): JValue | null {
    const start = this.i;
    if (this.s.charCodeAt(this.i) == 0x2d) this.i++;
    if (this.i < this.s.length && this.s.charCodeAt(this.i) == 0x30) this.i++;
    else if (this.digits() == 0) return this.fail("invalid number (expected a digit)");
    if (this.i < this.s.length && this.s.charCodeAt(this.i) == 0x2e) {
      this.i++;
      if (this.digits() == 0) return this.fail("invalid number (expected a digit after '.')");
    }
    if (this.i < this.s.length && (this.s.charCodeAt(this.i) | 0x20) == 0x65) {
      this.i++;
      if (this.i < this.s.length && (this.s.charCodeAt(this.i) == 0x2b || this.s.charCodeAt(this.i) == 0x2d)) this.i++;
      if (this.digits() == 0) return this.fail("invalid number (expected a digit in the exponent)");
    }
    return JValue.num(parseFloat(this.s.substring(start, this.i)));
  }

  hex4(): i32 {
    if (this.i + 4 > this.s.length) return -1;
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = this.s.charCodeAt(this.i + k);
      let d = -1;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) d = (c | 0x20) - 0x61 + 10;
      if (d < 0) return -1;
      v = (v << 4) | d;
    }
    return v;
  }

  /** A string literal at `i` (on its opening quote); null on error. */
  string(): string | null {
    const s = this.s;
    this.i++;
    let b: Builder | null = null;
    let from = this.i;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c == 0x22) {
        const tail = s.substring(from, this.i);
        this.i++;
        if (b == null) return tail;
        b.add(tail);
        return b.toString();
      }
      if (c < 0x20) {
        this.fail("unescaped control character in a string");
        return null;
      }
      if (c == 0x5c) {
        if (b == null) b = new Builder();
        b.add(s.substring(from, this.i));
        if (this.i + 1 >= s.length) break;
        const e = s.charCodeAt(this.i + 1);
        this.i += 2;
        if (e == 0x6e) b.add("\n");
        else if (e == 0x74) b.add("\t");
        else if (e == 0x72) b.add("\r");
        else if (e == 0x62) b.add("\b");
        else if (e == 0x66) b.add("\f");
        else if (e == 0x22) b.add('"');
        else if (e == 0x5c) b.add("\\");
        else if (e == 0x2f) b.add("/");
        else if (e == 0x75) {
          const u = this.hex4();
          if (u < 0) {
            this.fail("invalid \\u escape (expected 4 hex digits)");
            return null;
          }
          b.add(String.fromCharCode(u));
          this.i += 4;
        } else {
          this.i -= 1;
          this.fail("invalid escape '\\" + String.fromCharCode(e) + "'");
          return null;
        }
        from = this.i;
      } else this.i++;
    }
    this.fail("unterminated string");
    return null;
  }
}

/** Parses `text`; on error returns null and sets `lastError`. */
export let lastError: string = "";
export function parseJson(text: string, what: string = "JSON"): JValue | null {
  const p = new JsonParser(text, what);
  const v = p.parse();
  lastError = v == null ? p.error! : "";
  return v;
}
