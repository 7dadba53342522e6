import { Ajv, type ValidateFunction } from 'ajv';
import { onUse } from '../lazy-schemas.js';
import type { ResponseFormat } from '../../llm/index.js';
import { CaxtonError } from '../../shared/errors.js';

/**
 * `response_format` on the way out: the model was asked for JSON (natively, or told in the system
 * prompt), and its reply is checked here — a reply that is not JSON or does not match the schema
 * is an error (502 invalid_structured_output), never passed on as if it were valid.
 */

/** A schema larger than this (as JSON text) is refused: compiling is code generation, and it runs on the event loop. */
export const MAX_SCHEMA_CHARS = 64 * 1024;

// One compiler, no caching: each request's schema is removed after compiling (Ajv keys its cache
// by the schema object, so every request would otherwise stay in memory). Formats are not
// checked (no formats package), and unknown keywords are ignored as OpenAI's own strict mode does not use them.
// Made on the first request that asks for a schema, not at import: building it compiles Ajv's
// meta-schema, which a start would otherwise pay for whether or not any request ever asks.
const compiler = onUse(() => new Ajv({ strict: false, allErrors: true, validateFormats: false, logger: false }));

export type ReplyCheck = (agent: string, content: string) => string;

/**
 * Compiles the request's format into a check of the reply (returning the reply's JSON text), or
 * undefined when no format was asked. A schema that does not compile is the caller's 400, naming
 * `param` (where the request carries the schema: chat completions' or the Responses API's).
 */
export function replyCheckFor(
  format: ResponseFormat | { type: 'text' } | undefined,
  param = 'response_format.json_schema.schema',
): ReplyCheck | undefined {
  if (format === undefined || format.type === 'text') return undefined;
  if (format.type === 'json_object') return (agent, content) => parseObject(agent, content, 'a JSON object');
  const given = format.json_schema.schema;
  if (given === undefined) return (agent, content) => parseObject(agent, content, 'a JSON object');
  if (JSON.stringify(given).length > MAX_SCHEMA_CHARS)
    throw new CaxtonError('invalid_request', `${param} is larger than ${MAX_SCHEMA_CHARS / 1024} KiB`, { param });
  // `$schema` names a draft (often 2020-12 from schema generators) that this compiler's default
  // draft-07 would refuse to look up; the keywords used by structured outputs are the same.
  const { $schema: _draft, ...schema } = given;
  let validate: ValidateFunction;
  try {
    validate = compiler().compile(schema);
  } catch (e) {
    throw new CaxtonError('invalid_request', `${param} is not a usable JSON Schema: ${(e as Error).message}`, {
      param,
    });
  } finally {
    compiler().removeSchema(schema);
  }
  const name = format.json_schema.name;
  return (agent, content) => {
    const text = parseObject(agent, content, `JSON matching the schema "${name}"`);
    if (!validate(JSON.parse(text))) {
      const errors = (validate.errors ?? [])
        .slice(0, 10)
        .map((e) => ({ path: e.instancePath || '/', message: e.message ?? 'invalid' }));
      throw new CaxtonError(
        'invalid_structured_output',
        `the agent "${agent}" replied with JSON that does not match the schema "${name}": ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`,
        {
          schema: name,
          errors,
          reply_excerpt: content.slice(0, 200),
        },
      );
    }
    return text;
  };
}

const FENCE_RE = /^```(?:json)?\s*\n([\s\S]*?)\n?```$/i;

/** The reply's JSON text. One surrounding Markdown code fence is removed (models add them despite being told not to). */
function parseObject(agent: string, content: string, wanted: string): string {
  const trimmed = content.trim();
  const text = FENCE_RE.exec(trimmed)?.[1]?.trim() ?? trimmed;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CaxtonError(
      'invalid_structured_output',
      `the agent "${agent}" was asked for ${wanted} but its reply is not JSON (${(e as Error).message})`,
      {
        reply_excerpt: content.slice(0, 200),
      },
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new CaxtonError(
      'invalid_structured_output',
      `the agent "${agent}" was asked for ${wanted} but its reply is JSON ${Array.isArray(value) ? 'array' : typeof value}, not an object`,
      {
        reply_excerpt: content.slice(0, 200),
      },
    );
  }
  return text;
}
