import { CaxtonError } from '../../shared/errors.js';

/** Turns texts into sentence embeddings: one L2-normalized vector per text, in input order. */
export interface Embedder {
  /** What produced the vectors, e.g. `local:all-MiniLM-L6-v2` or `openai:text-embedding-3-small`. */
  readonly model: string;
  readonly dimensions: number;
  embed(texts: string[]): Promise<Float32Array[]>;
  /** Frees the model or connection; `embed` fails afterwards. Idempotent. */
  close(): Promise<void>;
}

/** A text longer than this many characters is refused (the local model reads only the first 256 tokens anyway). */
export const DEFAULT_MAX_INPUT_CHARS = 65_536;

/**
 * Checks the input of `embed`: an array of non-blank strings, each at most `maxChars` long.
 * Errors name the offending index.
 */
export function validateTexts(texts: unknown, maxChars: number): asserts texts is string[] {
  if (!Array.isArray(texts)) throw new CaxtonError('invalid_request', 'embed() takes an array of strings');
  for (let i = 0; i < texts.length; i++) {
    const t: unknown = texts[i];
    if (typeof t !== 'string')
      throw new CaxtonError('invalid_request', `text ${i} is not a string (got ${t === null ? 'null' : typeof t})`, {
        index: i,
      });
    if (t.trim() === '')
      throw new CaxtonError('invalid_request', `text ${i} is empty: there is nothing to embed`, { index: i });
    if (t.length > maxChars) {
      throw new CaxtonError(
        'payload_too_large',
        `text ${i} has ${t.length} characters, more than the ${maxChars} an embedding input may have; split it into smaller entries`,
        {
          index: i,
          length: t.length,
          limit: maxChars,
        },
      );
    }
  }
}

export function closedError(model: string): CaxtonError {
  return new CaxtonError('not_ready', `embedder ${model} is closed`);
}

/** Scales a vector to unit length in place (a zero vector stays zero). */
export function l2normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i]! /= n;
  return v;
}
