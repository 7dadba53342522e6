/**
 * A minimal ONNX protobuf writer: just the messages and fields needed to write an inference
 * graph with initializers (field numbers from onnx.proto, IR version 8). No dependency: the
 * wire format is varints and length-delimited bytes.
 */

/** ONNX TensorProto.DataType values used here. */
export const DT = { FLOAT: 1, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10 } as const;
export type DataType = (typeof DT)[keyof typeof DT];

/** Protobuf bytes under construction: a list of chunks, concatenated once at the end. */
class Writer {
  private readonly chunks: Uint8Array[] = [];
  length = 0;

  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  varint(v: number | bigint): void {
    let n = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    while (n >= 0x80n) {
      out.push(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    out.push(Number(n));
    this.push(Uint8Array.from(out));
  }

  tag(field: number, wire: 0 | 2 | 5): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, v: number | bigint): void {
    this.tag(field, 0);
    this.varint(v);
  }

  float(field: number, v: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, 2);
    this.varint(b.length);
    this.push(b);
  }

  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, m: Writer): void {
    this.tag(field, 2);
    this.varint(m.length);
    for (const c of m.chunks) this.push(c);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };

export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, AttrValue>;
  domain?: string;
}

export interface Tensor {
  name: string;
  dataType: DataType;
  dims: number[];
  /** Little-endian raw bytes of the values. */
  raw: Uint8Array;
}

export interface ValueInfo {
  name: string;
  elemType: DataType;
  /** A number is a fixed dimension, a string a symbolic one. */
  shape: (number | string)[];
}

export interface Model {
  graphName: string;
  nodes: Node[];
  initializers: Tensor[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  opsets: { domain: string; version: number }[];
  producer: string;
  docString?: string;
}

function attribute(name: string, v: AttrValue): Writer {
  const w = new Writer();
  w.string(1, name);
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use { float } for non-integers`);
    w.int(3, v);
    w.int(20, 2); // INT
  } else if (typeof v === 'string') {
    w.string(4, v);
    w.int(20, 3); // STRING
  } else if (Array.isArray(v)) {
    for (const i of v) w.int(8, i);
    w.int(20, 7); // INTS
  } else if ('float' in v) {
    w.float(2, v.float);
    w.int(20, 1); // FLOAT
  } else {
    for (const f of v.floats) w.float(7, f);
    w.int(20, 6); // FLOATS
  }
  return w;
}

function node(n: Node, index: number): Writer {
  const w = new Writer();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, `${n.op}_${index}`);
  w.string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, attribute(k, v));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function tensor(t: Tensor): Writer {
  const w = new Writer();
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  w.string(8, t.name);
  w.bytes(9, t.raw);
  return w;
}

function valueInfo(v: ValueInfo): Writer {
  const shape = new Writer();
  for (const d of v.shape) {
    const dim = new Writer();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tt = new Writer();
  tt.int(1, v.elemType);
  tt.message(2, shape);
  const type = new Writer();
  type.message(1, tt);
  const w = new Writer();
  w.string(1, v.name);
  w.message(2, type);
  return w;
}

/** Serialize a model to ONNX ModelProto bytes. */
export function encodeModel(m: Model): Uint8Array {
  const g = new Writer();
  m.nodes.forEach((n, i) => g.message(1, node(n, i)));
  g.string(2, m.graphName);
  for (const t of m.initializers) g.message(5, tensor(t));
  for (const i of m.inputs) g.message(11, valueInfo(i));
  for (const o of m.outputs) g.message(12, valueInfo(o));

  const w = new Writer();
  w.int(1, 8); // ir_version
  w.string(2, m.producer);
  if (m.docString) w.string(6, m.docString);
  w.message(7, g);
  for (const o of m.opsets) {
    const os = new Writer();
    if (o.domain) os.string(1, o.domain);
    os.int(2, o.version);
    w.message(8, os);
  }
  return w.finish();
}
