/**
 * Reading a safetensors file (an 8-byte little-endian header length, a JSON header, then the raw
 * tensor bytes) and up-casting its fp16 tensors to fp32.
 */

export interface SafeTensor {
  dtype: string;
  shape: number[];
  /** The tensor's bytes, a view into the file buffer. */
  bytes: Uint8Array;
}

export function readSafetensors(file: Uint8Array): Map<string, SafeTensor> {
  if (file.length < 8) throw new Error('not a safetensors file: shorter than its header');
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (8 + headerLen > file.length) throw new Error('not a safetensors file: header length past the end');
  const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + headerLen))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLen;
  const out = new Map<string, SafeTensor>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [start, end] = t.data_offsets;
    if (base + end > file.length) throw new Error(`safetensors tensor ${name} runs past the end of the file`);
    out.set(name, { dtype: t.dtype, shape: t.shape, bytes: file.subarray(base + start, base + end) });
  }
  return out;
}

let halfTable: Float32Array | undefined;

/** All 65,536 fp16 values as fp32, so conversion is one table look-up per value. */
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  halfTable = t;
  return t;
}

/** A tensor's values as fp32 (fp16 and fp32 tensors). */
export function toFloat32(t: SafeTensor): Float32Array {
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (t.dtype === 'F32') {
    const copy = new Uint8Array(t.bytes); // aligned copy
    return new Float32Array(copy.buffer, 0, count);
  }
  if (t.dtype !== 'F16') throw new Error(`unsupported safetensors dtype ${t.dtype}`);
  const table = halfToFloatTable();
  const out = new Float32Array(count);
  const b = t.bytes;
  for (let i = 0; i < count; i++) out[i] = table[b[2 * i]! | (b[2 * i + 1]! << 8)]!;
  return out;
}
