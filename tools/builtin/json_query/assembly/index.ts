// Built-in tool server "json_query": a JSONPath query (RFC 9535 subset) over a JSON document.
// Tool `query`. Syntax: see ../../README.md ("json_query") and the tool description in caxton-tool.toml.
import { Builder, jsonEquals, JValue, K, parseJson, lastError, quote } from "../../shared/json";
import { args, fail, output } from "../../shared/tool";

enum Sel { Name, Index, Wildcard, Slice, Filter }
enum Op { Or, And, Not, Cmp, Exists, Literal, Path }
enum Cmp { Eq, Ne, Lt, Le, Gt, Ge }

class Selector {
  kind: Sel = Sel.Name;
  name: string = "";
  index: i32 = 0;
  hasStart: bool = false;
  start: i32 = 0;
  hasEnd: bool = false;
  end: i32 = 0;
  step: i32 = 1;
  filter: Expr | null = null;
}

class Segment {
  descendant: bool = false;
  selectors: Array<Selector> = [];
}

class Expr {
  op: Op = Op.Literal;
  left: Expr | null = null;
  right: Expr | null = null;
  cmp: Cmp = Cmp.Eq;
  lit: JValue | null = null;
  /** For Path: relative to the current node (@) or the root ($). */
  absolute: bool = false;
  path: Array<Segment> = [];
}

/** A member name in a normalized path (RFC 9535 §2.7): single quotes, escapes for ' \\ and controls. */
function normalName(key: string): string {
  const b = new Builder().add("'");
  let from = 0;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x20 && c != 0x27 && c != 0x5c) continue;
    if (i > from) b.add(key.substring(from, i));
    from = i + 1;
    if (c == 0x27) b.add("\\'");
    else if (c == 0x5c) b.add("\\\\");
    else if (c == 0x08) b.add("\\b");
    else if (c == 0x0c) b.add("\\f");
    else if (c == 0x0a) b.add("\\n");
    else if (c == 0x0d) b.add("\\r");
    else if (c == 0x09) b.add("\\t");
    else b.add("\\u" + c.toString(16).padStart(4, "0"));
  }
  if (from < key.length) b.add(key.substring(from));
  return b.add("'").toString();
}

/** A node found by the query, with what is needed to spell its path. */
class Node {
  constructor(public v: JValue, public parent: Node | null, public key: string, public index: i32) {}

  path(): string {
    const parts = new Array<string>();
    let n: Node | null = this;
    while (n != null && n.parent != null) {
      parts.push(n.index >= 0 ? "[" + n.index.toString() + "]" : "[" + normalName(n.key) + "]");
      n = n.parent;
    }
    parts.reverse();
    return "$" + parts.join("");
  }
}

// ── parsing ──────────────────────────────────────────────────────────────────

class QueryParser {
  i: i32 = 0;
  error: string = "";

  constructor(public s: string) {}

  fail(msg: string): void {
    if (this.error.length == 0) this.error = "invalid \"query\" at character " + (this.i + 1).toString() + ": " + msg + " (query: " + this.s + ")";
  }

  get ok(): bool {
    return this.error.length == 0;
  }

  peek(): i32 {
    return this.i < this.s.length ? this.s.charCodeAt(this.i) : -1;
  }

  ws(): void {
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d) this.i++;
      else break;
    }
  }

  eat(text: string): bool {
    if (this.s.startsWith(text, this.i)) {
      this.i += text.length;
      return true;
    }
    return false;
  }

  describe(): string {
    return this.i >= this.s.length ? "the end of the query" : "'" + String.fromCharCode(this.s.charCodeAt(this.i)) + "'";
  }

  /** The whole query: `$` (optional) then segments. */
  query(): Array<Segment> {
    this.ws();
    const segs = new Array<Segment>();
    if (this.peek() == 0x24) this.i++;
    else if (this.peek() != 0x2e && this.peek() != 0x5b && this.i < this.s.length) {
      // a bare path such as "store.book[0]": the first name as a child of the root
      const name = this.name();
      if (!this.ok) return segs;
      const seg = new Segment();
      const sel = new Selector();
      sel.name = name;
      seg.selectors.push(sel);
      segs.push(seg);
    }
    this.segments(segs, false);
    this.ws();
    if (this.ok && this.i < this.s.length) this.fail("unexpected " + this.describe());
    return segs;
  }

  /** Segments until something that cannot continue a path. Inside filters, stops at operators. */
  segments(segs: Array<Segment>, inFilter: bool): void {
    while (this.ok) {
      if (!inFilter) this.ws();
      const c = this.peek();
      if (c == 0x2e) {
        const seg = new Segment();
        this.i++;
        if (this.peek() == 0x2e) {
          this.i++;
          seg.descendant = true;
          if (this.peek() == 0x5b) {
            this.bracket(seg);
            segs.push(seg);
            continue;
          }
        }
        if (this.peek() == 0x2a) {
          this.i++;
          const sel = new Selector();
          sel.kind = Sel.Wildcard;
          seg.selectors.push(sel);
        } else {
          const sel = new Selector();
          sel.name = this.name();
          seg.selectors.push(sel);
        }
        segs.push(seg);
      } else if (c == 0x5b) {
        const seg = new Segment();
        this.bracket(seg);
        segs.push(seg);
      } else return;
    }
  }

  name(): string {
    const start = this.i;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c == 0x5f || c == 0x24 || c >= 0x80 || (this.i > start && ((c >= 0x30 && c <= 0x39) || c == 0x2d));
      if (!ok) break;
      this.i++;
    }
    if (this.i == start) this.fail("expected a member name, '*' or '[' but found " + this.describe());
    return this.s.substring(start, this.i);
  }

  bracket(seg: Segment): void {
    this.i++; // [
    while (this.ok) {
      this.ws();
      seg.selectors.push(this.selector());
      if (!this.ok) return;
      this.ws();
      if (this.eat("]")) return;
      if (!this.eat(",")) {
        this.fail("expected ',' or ']' but found " + this.describe());
        return;
      }
    }
  }

  int(): i32 {
    const start = this.i;
    if (this.peek() == 0x2d) this.i++;
    const digits = this.i;
    while (this.i < this.s.length && this.s.charCodeAt(this.i) >= 0x30 && this.s.charCodeAt(this.i) <= 0x39) this.i++;
    if (this.i == digits) {
      this.i = start;
      this.fail("expected an integer but found " + this.describe());
      return 0;
    }
    if (this.i - digits > 9) {
      this.fail("integer too large");
      return 0;
    }
    return I32.parseInt(this.s.substring(start, this.i));
  }

  isIntStart(): bool {
    const c = this.peek();
    return (c >= 0x30 && c <= 0x39) || c == 0x2d;
  }

  selector(): Selector {
    const sel = new Selector();
    const c = this.peek();
    if (c == 0x27 || c == 0x22) {
      sel.name = this.stringLit();
      return sel;
    }
    if (c == 0x2a) {
      this.i++;
      sel.kind = Sel.Wildcard;
      return sel;
    }
    if (c == 0x3f) {
      this.i++;
      this.ws();
      sel.kind = Sel.Filter;
      sel.filter = this.or();
      return sel;
    }
    if (this.isIntStart() || c == 0x3a) {
      if (c != 0x3a) {
        const n = this.int();
        this.ws();
        if (this.peek() != 0x3a) {
          sel.kind = Sel.Index;
          sel.index = n;
          return sel;
        }
        sel.hasStart = true;
        sel.start = n;
      }
      sel.kind = Sel.Slice;
      this.i++; // first ':'
      this.ws();
      if (this.isIntStart()) {
        sel.hasEnd = true;
        sel.end = this.int();
        this.ws();
      }
      if (this.eat(":")) {
        this.ws();
        if (this.isIntStart()) sel.step = this.int();
      }
      return sel;
    }
    this.fail("expected a name in quotes, an index, a slice, '*' or a filter '?...' but found " + this.describe());
    return sel;
  }

  stringLit(): string {
    const q = this.s.charCodeAt(this.i);
    const start = this.i;
    this.i++;
    const b = new Builder();
    let from = this.i;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c == q) {
        b.add(this.s.substring(from, this.i));
        this.i++;
        return b.toString();
      }
      if (c == 0x5c && this.i + 1 < this.s.length) {
        b.add(this.s.substring(from, this.i));
        const e = this.s.charCodeAt(this.i + 1);
        if (e == 0x6e) b.add("\n");
        else if (e == 0x74) b.add("\t");
        else b.add(String.fromCharCode(e));
        this.i += 2;
        from = this.i;
        continue;
      }
      this.i++;
    }
    this.i = start;
    this.fail("unterminated string");
    return "";
  }

  // filter expressions: or → and → unary → comparison / primary

  or(): Expr {
    let left = this.and();
    while (this.ok) {
      this.ws();
      if (!this.eat("||")) break;
      const e = new Expr();
      e.op = Op.Or;
      e.left = left;
      e.right = this.and();
      left = e;
    }
    return left;
  }

  and(): Expr {
    let left = this.unary();
    while (this.ok) {
      this.ws();
      if (!this.eat("&&")) break;
      const e = new Expr();
      e.op = Op.And;
      e.left = left;
      e.right = this.unary();
      left = e;
    }
    return left;
  }

  unary(): Expr {
    this.ws();
    if (this.peek() == 0x21 && !this.s.startsWith("!=", this.i)) {
      this.i++;
      const e = new Expr();
      e.op = Op.Not;
      e.left = this.unary();
      return e;
    }
    if (this.peek() == 0x28) {
      this.i++;
      const inner = this.or();
      this.ws();
      if (!this.eat(")")) this.fail("expected ')' but found " + this.describe());
      return inner;
    }
    const left = this.operand();
    if (!this.ok) return left;
    this.ws();
    let cmp: Cmp = Cmp.Eq;
    let found = true;
    if (this.eat("==")) cmp = Cmp.Eq;
    else if (this.eat("!=")) cmp = Cmp.Ne;
    else if (this.eat("<=")) cmp = Cmp.Le;
    else if (this.eat(">=")) cmp = Cmp.Ge;
    else if (this.eat("<")) cmp = Cmp.Lt;
    else if (this.eat(">")) cmp = Cmp.Gt;
    else if (this.peek() == 0x3d) {
      this.fail("use '==' to compare, not '='");
      return left;
    } else found = false;
    if (!found) {
      if (left.op == Op.Literal) this.fail("a filter needs a comparison or a path to test (e.g. ?(@.price > 10) or ?(@.isbn))");
      if (left.op == Op.Path) left.op = Op.Exists;
      return left;
    }
    this.ws();
    const right = this.operand();
    const e = new Expr();
    e.op = Op.Cmp;
    e.cmp = cmp;
    e.left = left;
    e.right = right;
    return e;
  }

  operand(): Expr {
    const e = new Expr();
    const c = this.peek();
    if (c == 0x40 || c == 0x24) {
      this.i++;
      e.op = Op.Path;
      e.absolute = c == 0x24;
      this.segments(e.path, true);
      return e;
    }
    e.op = Op.Literal;
    if (c == 0x27 || c == 0x22) {
      e.lit = JValue.str(this.stringLit());
      return e;
    }
    if (this.eat("true")) { e.lit = JValue.bool(true); return e; }
    if (this.eat("false")) { e.lit = JValue.bool(false); return e; }
    if (this.eat("null")) { e.lit = JValue.nul(); return e; }
    if (this.isIntStart()) {
      const start = this.i;
      if (this.peek() == 0x2d) this.i++;
      while (this.i < this.s.length) {
        const d = this.s.charCodeAt(this.i);
        if ((d >= 0x30 && d <= 0x39) || d == 0x2e || d == 0x65 || d == 0x45 || ((d == 0x2b || d == 0x2d) && (this.s.charCodeAt(this.i - 1) | 0x20) == 0x65)) this.i++;
        else break;
      }
      const v = parseJson(this.s.substring(start, this.i));
      if (v == null || v.kind != K.Num) {
        this.i = start;
        this.fail("invalid number");
        return e;
      }
      e.lit = v;
      return e;
    }
    this.fail("expected @, $, a string, a number, true, false or null but found " + this.describe());
    return e;
  }
}

// ── evaluation ───────────────────────────────────────────────────────────────

class Eval {
  count: i32 = 0;
  constructor(public root: JValue, public limit: i32) {}

  run(segs: Array<Segment>, start: Node): Array<Node> {
    let nodes: Array<Node> = [start];
    for (let k = 0; k < segs.length; k++) {
      const next = new Array<Node>();
      const seg = segs[k];
      for (let n = 0; n < nodes.length; n++) {
        if (seg.descendant) this.descend(nodes[n], seg, next);
        else this.apply(nodes[n], seg, next);
        if (next.length > this.limit) return next;
      }
      nodes = next;
    }
    return nodes;
  }

  descend(node: Node, seg: Segment, out: Array<Node>): void {
    this.apply(node, seg, out);
    if (out.length > this.limit) return;
    const v = node.v;
    if (v.kind == K.Arr) {
      for (let i = 0; i < v.size; i++) this.descend(new Node(v.at(i), node, "", i), seg, out);
    } else if (v.kind == K.Obj) {
      for (let i = 0; i < v.keys!.length; i++) this.descend(new Node(v.vals![i], node, v.keys![i], -1), seg, out);
    }
  }

  apply(node: Node, seg: Segment, out: Array<Node>): void {
    for (let s = 0; s < seg.selectors.length; s++) this.select(node, seg.selectors[s], out);
  }

  select(node: Node, sel: Selector, out: Array<Node>): void {
    const v = node.v;
    switch (sel.kind) {
      case Sel.Name: {
        if (v.kind != K.Obj) return;
        const keys = v.keys!;
        for (let i = keys.length - 1; i >= 0; i--) {
          if (keys[i] == sel.name) {
            out.push(new Node(v.vals![i], node, keys[i], -1));
            return;
          }
        }
        return;
      }
      case Sel.Wildcard: {
        if (v.kind == K.Arr) for (let i = 0; i < v.size; i++) out.push(new Node(v.at(i), node, "", i));
        else if (v.kind == K.Obj) for (let i = 0; i < v.keys!.length; i++) out.push(new Node(v.vals![i], node, v.keys![i], -1));
        return;
      }
      case Sel.Index: {
        if (v.kind != K.Arr) return;
        const i = sel.index < 0 ? v.size + sel.index : sel.index;
        if (i >= 0 && i < v.size) out.push(new Node(v.at(i), node, "", i));
        return;
      }
      case Sel.Slice: {
        if (v.kind != K.Arr || sel.step == 0) return;
        const len = v.size;
        const step = sel.step;
        let lo: i32, hi: i32;
        const st = sel.hasStart ? (sel.start < 0 ? len + sel.start : sel.start) : step > 0 ? 0 : len - 1;
        const en = sel.hasEnd ? (sel.end < 0 ? len + sel.end : sel.end) : step > 0 ? len : -len - 1;
        if (step > 0) {
          lo = min(max(st, 0), len);
          hi = min(max(en, 0), len);
          for (let i = lo; i < hi; i += step) out.push(new Node(v.at(i), node, "", i));
        } else {
          hi = min(max(st, -1), len - 1);
          lo = min(max(en, -1), len - 1);
          for (let i = hi; i > lo; i += step) out.push(new Node(v.at(i), node, "", i));
        }
        return;
      }
      default: {
        const f = sel.filter!;
        if (v.kind == K.Arr) {
          for (let i = 0; i < v.size; i++) {
            const child = new Node(v.at(i), node, "", i);
            if (this.test(f, child)) out.push(child);
          }
        } else if (v.kind == K.Obj) {
          for (let i = 0; i < v.keys!.length; i++) {
            const child = new Node(v.vals![i], node, v.keys![i], -1);
            if (this.test(f, child)) out.push(child);
          }
        }
      }
    }
  }

  /** The single value an operand denotes, or null for "nothing" (missing or not a single node). */
  value(e: Expr, current: Node): JValue | null {
    if (e.op == Op.Literal) return e.lit;
    const found = this.run(e.path, e.absolute ? new Node(this.root, null, "", -1) : current);
    return found.length == 1 ? found[0].v : null;
  }

  test(e: Expr, current: Node): bool {
    switch (e.op) {
      case Op.Or: return this.test(e.left!, current) || this.test(e.right!, current);
      case Op.And: return this.test(e.left!, current) && this.test(e.right!, current);
      case Op.Not: return !this.test(e.left!, current);
      case Op.Exists: return this.run(e.path, e.absolute ? new Node(this.root, null, "", -1) : current).length > 0;
      case Op.Cmp: {
        const a = this.value(e.left!, current);
        const b = this.value(e.right!, current);
        switch (e.cmp) {
          case Cmp.Eq: return equal(a, b);
          case Cmp.Ne: return !equal(a, b);
          case Cmp.Lt: return less(a, b);
          case Cmp.Le: return less(a, b) || equal(a, b);
          case Cmp.Gt: return less(b, a);
          default: return less(b, a) || equal(a, b);
        }
      }
      default: return false;
    }
  }
}

function equal(a: JValue | null, b: JValue | null): bool {
  if (a == null || b == null) return a == null && b == null;
  return jsonEquals(a, b);
}

function less(a: JValue | null, b: JValue | null): bool {
  if (a == null || b == null) return false;
  if (a.kind == K.Num && b.kind == K.Num) return a.n < b.n;
  if (a.kind == K.Str && b.kind == K.Str) return a.s < b.s;
  return false;
}

/**
 * Tool `query`: {"query": "$.store.book[?(@.price < 10)].title", "document": <any JSON>} or
 * {"query", "json": "<JSON text>"}, "paths"?: false, "max_results"?: 10000 →
 * {"count", "results": [...], "paths"?: ["$['store']['book'][0]['title']", ...]}.
 */
export function query(): i32 {
  const a = args();
  const q = a.getString("query");
  if (q.trim().length == 0) return fail("\"query\" is empty; e.g. \"$.items[*].name\"");
  const doc = a.get("document");
  const text = a.get("json");
  if (text != null && doc != null) return fail("give the document either as \"document\" (any JSON value) or as \"json\" (JSON text), not both");
  let root: JValue;
  if (text != null) {
    if (text.kind != K.Str) return fail("\"json\" must be a string holding JSON text (pass a JSON value as \"document\")");
    const parsed = parseJson(text.s, "\"json\" text");
    if (parsed == null) return fail(lastError);
    root = parsed;
  } else {
    if (doc == null) return fail("pass the document as \"document\" (any JSON value) or as \"json\" (JSON text)");
    root = doc;
  }
  const parser = new QueryParser(q);
  const segs = parser.query();
  if (!parser.ok) return fail(parser.error);
  const limit = <i32>Math.min(Math.max(a.getNumber("max_results", 10000), 0), 1000000);
  const ev = new Eval(root, limit);
  const found = ev.run(segs, new Node(root, null, "", -1));
  const truncated = found.length > limit;
  const n = truncated ? limit : found.length;
  const b = new Builder();
  b.add('{"count":').add(n.toString()).add(',"truncated":').add(truncated ? "true" : "false").add(',"results":[');
  for (let i = 0; i < n; i++) b.add(i > 0 ? "," : "").add(found[i].v.stringify());
  b.add("]");
  if (a.getBool("paths", false)) {
    b.add(',"paths":[');
    for (let i = 0; i < n; i++) b.add(i > 0 ? "," : "").add(quote(found[i].path()));
    b.add("]");
  }
  b.add("}");
  output(b.toString());
  return 0;
}
