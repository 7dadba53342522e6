/**
 * The OpenAI-compatible embedder: POST {base_url}/embeddings with `{model, input}` (OpenAI,
 * Ollama, vLLM, llama.cpp, LM Studio…). Shares the LLM clients' HTTP layer: per-attempt timeout,
 * bounded retries on 429/5xx/connection errors, failures as LlmError naming the model and cause.
 * Vectors are checked against the configured dimensions and L2-normalized, like the local ones.
 */
import { joinUrl, malformed, postJson, readApiKey, type HttpTarget } from '../../llm/provider-http.js';
import type { ProviderConfig } from '../../llm/types.js';
import { CaxtonError } from '../../shared/errors.js';
import { closedError, DEFAULT_MAX_INPUT_CHARS, l2normalize, validateTexts, type Embedder } from './types.js';

export interface OpenAiEmbedderOptions {
  kind: 'openai';
  base_url: string;
  model: string;
  /** Name of the environment variable holding the API key; omitted: no Authorization header. */
  api_key_env?: string;
  dimensions: number;
  /** Per-attempt timeout (default 30 s). */
  timeout_ms?: number;
  /** Retries after the first attempt (default 2). */
  max_retries?: number;
  /** Inputs per request (default 256; OpenAI accepts up to 2048). */
  max_batch?: number;
  max_input_chars?: number;
}

/** The provider name in error messages. */
const PROVIDER = 'embeddings';

export class OpenAiEmbedder implements Embedder {
  readonly model: string;
  readonly dimensions: number;
  private closed = false;
  private readonly target: HttpTarget;
  private readonly url: string;
  private readonly maxBatch: number;
  private readonly maxChars: number;

  constructor(private readonly opts: OpenAiEmbedderOptions) {
    if (!opts.base_url || !/^https?:\/\//.test(opts.base_url))
      throw new CaxtonError('invalid_config', `embedding base_url must be an http(s) URL, got "${opts.base_url}"`);
    if (!opts.model) throw new CaxtonError('invalid_config', 'embedding model is required for kind "openai"');
    if (!Number.isInteger(opts.dimensions) || opts.dimensions <= 0)
      throw new CaxtonError(
        'invalid_config',
        `embedding dimensions must be a positive integer, got ${opts.dimensions}`,
      );
    this.model = `openai:${opts.model}`;
    this.dimensions = opts.dimensions;
    const config: ProviderConfig = {
      type: 'openai',
      base_url: opts.base_url,
      ...(opts.api_key_env ? { api_key_env: opts.api_key_env } : {}),
      model: opts.model,
      timeout_ms: opts.timeout_ms ?? 30_000,
      max_retries: opts.max_retries ?? 2,
      retry_base_ms: 500,
    };
    this.target = { provider: PROVIDER, model: opts.model, baseUrl: opts.base_url, config };
    this.url = joinUrl(opts.base_url, '/embeddings');
    this.maxBatch = opts.max_batch ?? 256;
    this.maxChars = opts.max_input_chars ?? DEFAULT_MAX_INPUT_CHARS;
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    if (this.closed) throw closedError(this.model);
    validateTexts(texts, this.maxChars);
    const key = readApiKey(PROVIDER, this.opts.model, this.target.config);
    const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
    const out: Float32Array[] = [];
    for (let i = 0; i < texts.length; i += this.maxBatch) {
      const batch = texts.slice(i, i + this.maxBatch);
      const body = await postJson(this.target, {
        url: this.url,
        headers,
        body: { model: this.opts.model, input: batch, encoding_format: 'float' },
      });
      out.push(...this.parse(body, batch.length));
    }
    return out;
  }

  private parse(body: unknown, expected: number): Float32Array[] {
    const data = (body as { data?: unknown } | null)?.data;
    if (!Array.isArray(data)) throw malformed(this.target, 'the embeddings response has no "data" array');
    if (data.length !== expected)
      throw malformed(this.target, `the embeddings response has ${data.length} vectors for ${expected} inputs`);
    const out = new Array<Float32Array>(expected);
    data.forEach((item: unknown, pos) => {
      const { index, embedding } = (item ?? {}) as { index?: unknown; embedding?: unknown };
      const i = typeof index === 'number' ? index : pos;
      if (!Number.isInteger(i) || i < 0 || i >= expected || out[i])
        throw malformed(this.target, `the embeddings response has a bad or repeated index ${String(index)}`);
      if (!Array.isArray(embedding) || !embedding.every((v) => typeof v === 'number' && Number.isFinite(v))) {
        throw malformed(
          this.target,
          `vector ${i} of the embeddings response is not an array of numbers (base64 encoding is not supported)`,
        );
      }
      if (embedding.length !== this.dimensions) {
        throw malformed(
          this.target,
          `vector ${i} has ${embedding.length} dimensions, the configuration says ${this.dimensions}`,
        );
      }
      out[i] = l2normalize(Float32Array.from(embedding as number[]));
    });
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
