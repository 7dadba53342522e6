/**
 * Checks requests to, and answers from, the stand-in LLM servers against the providers' published
 * OpenAPI specifications (test/fixtures/provider-specs), so a stand-in refuses what OpenAI or
 * Anthropic would refuse, in their own error shape, and cannot itself answer what they never would.
 *
 * Parsing the 3 MB OpenAI YAML and compiling its schemas takes seconds, too much for each of the
 * ~30 test files that start a stand-in: the validators (for the closure of a few schemas, with
 * descriptions dropped and OpenAPI 3.0's `nullable` turned into JSON Schema) are generated once as
 * ajv standalone code, cached in the OS temp directory under the YAML's hash, and loaded from there
 * (about 30 ms; the YAML parser and ajv's compiler are loaded only on a cache miss).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Ajv2020, ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import type Standalone from 'ajv/dist/standalone/index.js';
import type { parse as parseYaml } from 'yaml';

export type Provider = 'openai' | 'anthropic';

/** What a stand-in answers to a request the real service refuses. */
export interface Refusal {
  status: 400;
  /** The provider's own error body. */
  body: unknown;
  message: string;
}

type Json = Record<string, unknown>;

const requireHere = createRequire(import.meta.url);
const SPEC_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'provider-specs');

/** The schemas validated, per provider: requests first (their top-level names are collected too). */
const ROOTS: Record<
  Provider,
  { file: string; request: string; answers: Record<AnswerKind | 'error', string>; more: string[] }
> = {
  openai: {
    file: 'openai-openapi.yaml',
    request: 'CreateChatCompletionRequest',
    answers: {
      response: 'CreateChatCompletionResponse',
      chunk: 'CreateChatCompletionStreamResponse',
      error: 'ErrorResponse',
    },
    // The embeddings stand-in's request and answer (POST /embeddings).
    more: ['CreateEmbeddingRequest', 'CreateEmbeddingResponse'],
  },
  anthropic: {
    file: 'anthropic-openapi.yaml',
    request: 'CreateMessageParams',
    answers: { response: 'Message', chunk: 'MessageStreamEvent', error: 'ErrorResponse' },
    more: [],
  },
};

/** Bumped when the pruning or code generation below changes, so an old cache entry is not reused. */
const PRUNE_VERSION = 6;
const AJV_VERSION = (requireHere('ajv/package.json') as { version: string }).version;

interface Pruned {
  schemas: Record<string, unknown>;
  /** Top-level property names the request schema knows (through allOf, anyOf and $ref). */
  requestKeys: string[];
}

const DROPPED = new Set(['description', 'title', 'example', 'examples', 'discriminator', 'deprecated', 'default']);

/** Removes annotations and turns OpenAPI 3.0's `nullable: true` into JSON Schema. */
function prune(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(prune);
  if (node === null || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) {
    if (DROPPED.has(k) || k.startsWith('x-') || k === 'nullable') continue;
    // `$recursiveRef: "#"` (2019-09) in these files only ever means the schema it sits in.
    if (k === '$recursiveAnchor') continue;
    // An empty `type:` in YAML (Anthropic's Model) is null, which means no constraint.
    if (k === 'type' && v === null) continue;
    out[k] =
      k === 'properties' || k === 'patternProperties'
        ? Object.fromEntries(Object.entries(v as Json).map(([p, s]) => [p, prune(s)]))
        : prune(v);
  }
  if ((node as Json).nullable !== true) return out;
  if (typeof out.type === 'string') {
    out.type = [out.type, 'null'];
    if (Array.isArray(out.enum)) out.enum = [...(out.enum as unknown[]), null];
    return out;
  }
  return { anyOf: [out, { type: 'null' }] };
}

function refName(ref: unknown): string | undefined {
  return typeof ref === 'string' && ref.startsWith('#/components/schemas/')
    ? ref.slice('#/components/schemas/'.length)
    : undefined;
}

function closure(all: Record<string, unknown>, roots: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const queue = [...roots];
  while (queue.length > 0) {
    const name = queue.pop()!;
    if (name in out) continue;
    const schema = all[name];
    if (schema === undefined) throw new Error(`provider spec: no schema ${name}`);
    out[name] = schema;
    const visit = (n: unknown): void => {
      if (Array.isArray(n)) n.forEach(visit);
      else if (n !== null && typeof n === 'object') {
        for (const [k, v] of Object.entries(n as Json)) {
          if (k === '$ref') {
            const r = refName(v);
            if (r !== undefined) queue.push(r);
          } else visit(v);
        }
      }
    };
    visit(schema);
  }
  return out;
}

/** Replaces `$recursiveRef: "#"` with a $ref to the named schema it appears in. */
function resolveRecursive(name: string, node: unknown): unknown {
  if (Array.isArray(node)) return node.map((x) => resolveRecursive(name, x));
  if (node === null || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) {
    if (k === '$recursiveRef') out.$ref = `#/components/schemas/${name}`;
    else out[k] = resolveRecursive(name, v);
  }
  return out;
}

function topLevelKeys(schemas: Record<string, unknown>, node: unknown, seen = new Set<unknown>()): string[] {
  if (node === null || typeof node !== 'object' || seen.has(node)) return [];
  seen.add(node);
  const n = node as Json;
  const keys = Object.keys((n.properties as Json | undefined) ?? {});
  const r = refName(n.$ref);
  if (r !== undefined) keys.push(...topLevelKeys(schemas, schemas[r], seen));
  for (const k of ['allOf', 'anyOf', 'oneOf'])
    if (Array.isArray(n[k])) for (const s of n[k] as unknown[]) keys.push(...topLevelKeys(schemas, s, seen));
  return keys;
}

/**
 * What the Messages API accepts today that the copy of its spec (2024-11) predates: `tool_choice`
 * `{type: "none"}` (added 2025-02). Without it the stand-in would refuse a request the API accepts.
 */
function amendAnthropic(schemas: Record<string, unknown>): void {
  const choice = schemas.ToolChoice as { oneOf?: unknown[] } | undefined;
  if (!Array.isArray(choice?.oneOf)) throw new Error('provider spec: Anthropic ToolChoice is not a oneOf');
  choice.oneOf.push({
    type: 'object',
    additionalProperties: false,
    properties: { type: { const: 'none', type: 'string' } },
    required: ['type'],
  });
}

function build(provider: Provider, yamlText: string): Pruned {
  const { parse } = requireHere('yaml') as { parse: typeof parseYaml };
  const spec = parse(yamlText) as { components: { schemas: Record<string, unknown> } };
  const { request, answers, more } = ROOTS[provider];
  const picked = closure(spec.components.schemas, [request, ...Object.values(answers), ...more]);
  const schemas = Object.fromEntries(
    Object.entries(picked).map(([name, s]) => [name, prune(resolveRecursive(name, s))]),
  );
  if (provider === 'anthropic') amendAnthropic(schemas);
  return { schemas, requestKeys: [...new Set(topLevelKeys(schemas, schemas[request]))].sort() };
}

interface Compiled {
  /** One validator per schema in ROOTS, by schema name. */
  validators: Record<string, ValidateFunction>;
  requestKeys: string[];
}

const loaded = new Map<Provider, Compiled>();

/** ajv's code for the validators of ROOTS, as a CommonJS module that runs from any directory. */
function generate(provider: Provider, yamlText: string): string {
  const pruned = build(provider, yamlText);
  // Loaded here only: a cache hit needs neither ajv's compiler nor the YAML parser.
  const { Ajv2020: Ajv } = requireHere('ajv/dist/2020') as { Ajv2020: typeof Ajv2020 };
  const generateCode = (requireHere('ajv/dist/standalone') as typeof Standalone).default;
  // strict off: the specs carry OpenAPI keywords (readOnly, format names ajv does not define).
  const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: false, code: { source: true } });
  ajv.addSchema({ $id: `${provider}.json`, components: { schemas: pruned.schemas } });
  const names = [ROOTS[provider].request, ...Object.values(ROOTS[provider].answers), ...ROOTS[provider].more];
  for (const name of names) ajv.addSchema({ $id: name, $ref: `${provider}.json#/components/schemas/${name}` });
  const code = generateCode(ajv, Object.fromEntries(names.map((n) => [n, n])));
  // The module lives in the temp directory: ajv's runtime helpers are required by absolute path.
  const portable = code.replace(
    /require\("(ajv\/dist\/runtime\/[^"]+)"\)/g,
    (_, m: string) => `require(${JSON.stringify(requireHere.resolve(m))})`,
  );
  return `${portable}\nexports.requestKeys = ${JSON.stringify(pruned.requestKeys)};\n`;
}

/**
 * The compiled validators, from the temp-directory cache (keyed by the YAML's hash), generated and
 * cached on a miss.
 */
function compiled(provider: Provider): Compiled {
  let c = loaded.get(provider);
  if (c !== undefined) return c;
  const yamlText = readFileSync(join(SPEC_DIR, ROOTS[provider].file), 'utf8');
  const hash = createHash('sha256')
    .update(yamlText)
    .update(`${PRUNE_VERSION} ajv ${AJV_VERSION}`)
    .digest('hex')
    .slice(0, 24);
  const dir = join(tmpdir(), 'caxton-provider-specs');
  const file = join(dir, `${provider}-${hash}.cjs`);
  let mod: Record<string, unknown>;
  try {
    mod = requireHere(file) as Record<string, unknown>;
  } catch {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Written aside and renamed: two test workers may generate it at the same time.
    const aside = `${file}.${process.pid}.tmp`;
    writeFileSync(aside, generate(provider, yamlText));
    renameSync(aside, file);
    mod = requireHere(file) as Record<string, unknown>;
  }
  const { requestKeys, ...validators } = mod;
  c = { validators: validators as Record<string, ValidateFunction>, requestKeys: requestKeys as string[] };
  loaded.set(provider, c);
  return c;
}

function validator(provider: Provider, name: string): ValidateFunction {
  const v = compiled(provider).validators[name];
  if (v === undefined) throw new Error(`provider spec: no validator for ${name}`);
  return v;
}

/** The most specific of ajv's errors (anyOf reports each branch's error, then its own). */
function mostSpecific(
  provider: Provider,
  errors: ErrorObject[] | null | undefined,
): { param: string; message: string } {
  const list = errors ?? [];
  // Deepest first; at one depth a constraint (maxItems, pattern…) says more than a branch's type.
  const vague = new Set(['type', 'anyOf', 'oneOf', 'const', 'enum', 'if']);
  const rank = (e: ErrorObject): number => e.instancePath.split('/').length * 2 + (vague.has(e.keyword) ? 0 : 1);
  const best = list.reduce<ErrorObject | undefined>(
    (a, e) => (a === undefined || rank(e) > rank(a) ? e : a),
    undefined,
  );
  if (best === undefined) return { param: '', message: 'invalid request' };
  const parts = best.instancePath.split('/').slice(1);
  const param =
    provider === 'openai'
      ? parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('')
      : parts.join('.');
  const extra =
    best.keyword === 'additionalProperties'
      ? ` (${String((best.params as { additionalProperty?: string }).additionalProperty)})`
      : '';
  return { param, message: `${best.message ?? 'is invalid'}${extra}` };
}

export function refusalBody(provider: Provider, message: string, param: string | null = null): unknown {
  return provider === 'openai'
    ? { error: { message, type: 'invalid_request_error', param, code: null } }
    : { type: 'error', error: { type: 'invalid_request_error', message } };
}

function refuse(provider: Provider, message: string, param: string | null = null): Refusal {
  return { status: 400, body: refusalBody(provider, message, param), message };
}

const OPENAI_TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const ANTHROPIC_TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * What OpenAI's Chat Completions API refuses that its schema cannot say: tool messages that answer
 * no earlier tool call, tool calls left unanswered, tool names it does not accept, a tool_choice that
 * names no tool.
 */
function openaiRules(body: Json): Refusal | undefined {
  const tools = Array.isArray(body.tools) ? (body.tools as Json[]) : [];
  const names = new Set<string>();
  for (const [i, t] of tools.entries()) {
    const name = (t.function as Json | undefined)?.name ?? (t.custom as Json | undefined)?.name;
    if (typeof name !== 'string') continue;
    if (!OPENAI_TOOL_NAME.test(name))
      return refuse(
        'openai',
        `Invalid 'tools[${i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$' of at most 64 characters.`,
        `tools[${i}].function.name`,
      );
    if (names.has(name)) return refuse('openai', `Invalid 'tools': duplicate function name '${name}'.`, 'tools');
    names.add(name);
  }
  const choice = body.tool_choice;
  if (choice !== undefined && tools.length === 0)
    return refuse(
      'openai',
      "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
      'tool_choice',
    );
  if (choice !== null && typeof choice === 'object') {
    const named = ((choice as Json).function as Json | undefined)?.name;
    if (typeof named === 'string' && !names.has(named))
      return refuse('openai', `Tool choice 'function' '${named}' not found in 'tools' parameter.`, 'tool_choice');
  }
  const messages = Array.isArray(body.messages) ? (body.messages as Json[]) : [];
  const pending: string[] = [];
  for (const [i, m] of messages.entries()) {
    if (m.role === 'tool') {
      const at = pending.indexOf(String(m.tool_call_id));
      if (at < 0)
        return refuse(
          'openai',
          `Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'. No tool call has the id '${String(m.tool_call_id)}'.`,
          `messages.[${i}].role`,
        );
      pending.splice(at, 1);
      continue;
    }
    if (pending.length > 0)
      return refuse(
        'openai',
        `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${pending.join(', ')}`,
        `messages.[${i}].role`,
      );
    if (m.role === 'assistant' && Array.isArray(m.tool_calls)) {
      for (const [j, c] of (m.tool_calls as Json[]).entries()) {
        const name = (c.function as Json | undefined)?.name;
        if (typeof name === 'string' && !OPENAI_TOOL_NAME.test(name))
          return refuse(
            'openai',
            `Invalid 'messages[${i}].tool_calls[${j}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.`,
            `messages[${i}].tool_calls[${j}].function.name`,
          );
        if (typeof c.id === 'string') pending.push(c.id);
      }
    }
  }
  if (pending.length > 0)
    return refuse(
      'openai',
      `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${pending.join(', ')}`,
      'messages',
    );
  return undefined;
}

function blocks(m: Json): Json[] {
  return Array.isArray(m.content) ? (m.content as Json[]) : [];
}

/**
 * What Anthropic's Messages API refuses that its schema cannot say: tool_result blocks that answer
 * no tool_use of the assistant turn just before, or that follow other content in their message,
 * tool_use blocks left unanswered in the next turn, tool blocks in a request that defines no tools,
 * empty messages (but a final assistant one), tool names it does not accept, a tool_choice that
 * names no tool.
 */
function anthropicRules(body: Json): Refusal | undefined {
  const tools = Array.isArray(body.tools) ? (body.tools as Json[]) : [];
  const names = new Set<string>();
  for (const [i, t] of tools.entries()) {
    const name = t.name;
    if (typeof name !== 'string') continue;
    if (!ANTHROPIC_TOOL_NAME.test(name))
      return refuse('anthropic', `tools.${i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'`);
    if (names.has(name)) return refuse('anthropic', 'tools: Tool names must be unique.');
    names.add(name);
  }
  const choice = body.tool_choice as Json | undefined;
  if (choice !== undefined && tools.length === 0 && choice.type !== 'none')
    return refuse('anthropic', 'tool_choice may only be specified while providing tools.');
  if (choice?.type === 'tool' && !names.has(String(choice.name)))
    return refuse('anthropic', `tool_choice.name: Tool '${String(choice.name)}' not found in tools`);
  const messages = Array.isArray(body.messages) ? (body.messages as Json[]) : [];
  const usesTools = messages.some((m) => blocks(m).some((b) => b.type === 'tool_use' || b.type === 'tool_result'));
  if (usesTools && tools.length === 0)
    return refuse('anthropic', 'Requests which include `tool_use` or `tool_result` blocks must define tools.');
  for (const [i, m] of messages.entries()) {
    const empty = m.content === '' || (Array.isArray(m.content) && m.content.length === 0);
    if (empty && !(m.role === 'assistant' && i === messages.length - 1))
      return refuse(
        'anthropic',
        `messages.${i}: all messages must have non-empty content except for the optional final assistant message`,
      );
    const results = blocks(m).filter((b) => b.type === 'tool_result');
    const firstOther = blocks(m).findIndex((b) => b.type !== 'tool_result');
    if (results.length > 0 && firstOther >= 0 && firstOther < blocks(m).findLastIndex((b) => b.type === 'tool_result'))
      return refuse(
        'anthropic',
        `messages.${i}.content.${firstOther}: \`tool_result\` blocks must come before any other content in a user message`,
      );
    if (results.length > 0) {
      const prev = i > 0 ? messages[i - 1]! : undefined;
      const asked = new Set(
        prev?.role === 'assistant' ? blocks(prev).flatMap((b) => (b.type === 'tool_use' ? [String(b.id)] : [])) : [],
      );
      const stray = results.map((b) => String(b.tool_use_id)).filter((id) => !asked.has(id));
      if (stray.length > 0)
        return refuse(
          'anthropic',
          `messages.${i}.content.0: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${stray.join(', ')}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`,
        );
    }
    if (m.role !== 'assistant') continue;
    const uses = blocks(m).flatMap((b) => (b.type === 'tool_use' ? [String(b.id)] : []));
    if (uses.length === 0) continue;
    const next = messages[i + 1];
    const answered = new Set(
      next?.role === 'user'
        ? blocks(next).flatMap((b) => (b.type === 'tool_result' ? [String(b.tool_use_id)] : []))
        : [],
    );
    const open = uses.filter((id) => !answered.has(id));
    if (open.length > 0)
      return refuse(
        'anthropic',
        `messages.${i + 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${open.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`,
      );
  }
  return undefined;
}

/** Undefined when the real service would accept this request body; else its 400 answer. */
export function checkRequest(provider: Provider, body: unknown): Refusal | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    return refuse(
      provider,
      provider === 'openai'
        ? 'We could not parse the JSON body of your request.'
        : 'The request body is not valid JSON.',
    );
  const known = new Set(compiled(provider).requestKeys);
  for (const key of Object.keys(body)) {
    if (known.has(key)) continue;
    return provider === 'openai'
      ? refuse(provider, `Unrecognized request argument supplied: ${key}`)
      : refuse(provider, `${key}: Extra inputs are not permitted`);
  }
  const validate = validator(provider, ROOTS[provider].request);
  if (!validate(body)) {
    const { param, message } = mostSpecific(provider, validate.errors);
    return provider === 'openai'
      ? refuse(provider, `Invalid '${param}': ${message}.`, param || null)
      : refuse(provider, `${param}: ${message}`);
  }
  return provider === 'openai' ? openaiRules(body as Json) : anthropicRules(body as Json);
}

/**
 * Undefined when OpenAI would accept this embeddings request (`POST /embeddings`); else its 400
 * answer. Unknown top-level parameters are refused as for chat completions.
 */
export function checkEmbeddingRequest(body: unknown): Refusal | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    return refuse('openai', 'We could not parse the JSON body of your request.');
  const validate = validator('openai', 'CreateEmbeddingRequest');
  const known = new Set(['input', 'model', 'encoding_format', 'dimensions', 'user']);
  for (const key of Object.keys(body))
    if (!known.has(key)) return refuse('openai', `Unrecognized request argument supplied: ${key}`);
  if (validate(body)) return undefined;
  const { param, message } = mostSpecific('openai', validate.errors);
  return refuse('openai', `Invalid '${param}': ${message}.`, param || null);
}

/** Throws when an embeddings stand-in's answer is not one OpenAI could send. */
export function assertValidEmbeddingAnswer(value: unknown): void {
  const validate = validator('openai', 'CreateEmbeddingResponse');
  if (validate(value)) return;
  const { param, message } = mostSpecific('openai', validate.errors);
  throw new Error(
    `stand-in embeddings answer is not a valid CreateEmbeddingResponse: ${param || '(root)'} ${message}: ${JSON.stringify(value).slice(0, 300)}`,
  );
}

export type AnswerKind = 'response' | 'chunk';

/** Throws when a stand-in's answer (a whole response, or one stream chunk/event) is not one the real service could send. */
export function assertValidAnswer(provider: Provider, kind: AnswerKind, value: unknown): void {
  const type = (value as { type?: unknown } | null)?.type;
  // Anthropic's streams also carry `ping` and `error` events (its streaming guide), which the
  // schema's MessageStreamEvent leaves out; an error event's data is an ErrorResponse, as is
  // the error object OpenAI sends in place of a chunk when a stream fails.
  if (provider === 'anthropic' && kind === 'chunk' && type === 'ping' && Object.keys(value as object).length === 1)
    return;
  const streamError =
    kind === 'chunk' &&
    (provider === 'anthropic' ? type === 'error' : (value as { error?: unknown } | null)?.error !== undefined);
  const name = ROOTS[provider].answers[streamError ? 'error' : kind];
  const validate = validator(provider, name);
  if (validate(value)) return;
  const { param, message } = mostSpecific(provider, validate.errors);
  throw new Error(
    `stand-in ${provider} answer is not a valid ${name}: ${param || '(root)'} ${message}: ${JSON.stringify(value).slice(0, 500)}`,
  );
}

/**
 * Loads and compiles every validator now, so the cost (a few hundred ms, more on a loaded machine)
 * falls when a stand-in starts, not inside the first request's client timeout.
 */
export function warmUp(): void {
  for (const provider of ['openai', 'anthropic'] as const) {
    validator(provider, ROOTS[provider].request);
    for (const name of Object.values(ROOTS[provider].answers)) validator(provider, name);
  }
}

/** Which API a request path is for, if any. */
export function apiOf(path: string): Provider | undefined {
  const p = path.split('?')[0] ?? '';
  if (p.endsWith('/chat/completions')) return 'openai';
  if (p.endsWith('/v1/messages')) return 'anthropic';
  return undefined;
}
