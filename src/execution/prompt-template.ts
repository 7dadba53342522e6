import type { AgentDefinition } from '../agents/definition.js';
import type { InvokeRequest } from './types.js';

const PLACEHOLDER_RE = /\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}/g;

function text(v: unknown): string {
  if (v === undefined || v === null || typeof v === 'function' || typeof v === 'symbol') return '';
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

/** A template cut at its placeholders: `texts` has one more entry than `keys`. */
interface CompiledTemplate {
  texts: string[];
  keys: string[];
}

/** Templates are few (one per agent version, mostly the default), so this bound is never reached in practice. */
const MAX_COMPILED = 1_000;
const compiled = new Map<string, CompiledTemplate>();

/** The template cut once per distinct text: a request then joins its pieces, with no regular expression. */
function compileTemplate(template: string): CompiledTemplate {
  let c = compiled.get(template);
  if (c !== undefined) return c;
  c = { texts: [], keys: [] };
  let at = 0;
  for (const m of template.matchAll(PLACEHOLDER_RE)) {
    c.texts.push(template.slice(at, m.index));
    c.keys.push(m[1]!);
    at = m.index + m[0].length;
  }
  c.texts.push(template.slice(at));
  if (compiled.size >= MAX_COMPILED) compiled.clear();
  compiled.set(template, c);
  return c;
}

function valueOf(key: string, def: AgentDefinition, req: InvokeRequest, memoryContext: string): string {
  if (key === 'request') return req.request;
  if (key === 'context') return text(req.context);
  if (key === 'memory_context') return memoryContext;
  if (key === 'agent.name') return def.name;
  if (key === 'agent.description') return def.description;
  // Only the parameters' own keys: `{{parameters.toString}}` or `{{parameters.__proto__}}` must
  // not reach Object.prototype (a function rendered "undefined"); they render as missing.
  if (key.startsWith('parameters.')) {
    const name = key.slice('parameters.'.length);
    if (req.parameters !== undefined && Object.hasOwn(req.parameters, name)) return text(req.parameters[name]);
    return Object.hasOwn(def.parameters, name) ? text(def.parameters[name]) : '';
  }
  return '';
}

/**
 * Renders `{{request}}`, `{{context}}`, `{{memory_context}}`, `{{parameters.NAME}}` and
 * `{{agent.name}}`; request parameters override the agent's. Unknown placeholders render empty.
 * Runs of blank lines become one and the ends are trimmed, in what the values bring too.
 */
export function renderTemplate(template: string, def: AgentDefinition, req: InvokeRequest, memoryContext = ''): string {
  const { texts, keys } = compileTemplate(template);
  let out = texts[0]!;
  for (let i = 0; i < keys.length; i++) out += valueOf(keys[i]!, def, req, memoryContext) + texts[i + 1]!;
  return (out.includes('\n\n\n') ? out.replace(/\n{3,}/g, '\n\n') : out).trim();
}

const MEMORY_RE = /\{\{\s*memory_context\s*\}\}/;

/**
 * The system prompt: `{{memory_context}}` replaced by the memories found for the request (only
 * that placeholder: system prompts are otherwise sent as written). An agent with memories whose
 * prompts name the placeholder nowhere gets them appended to the system prompt.
 */
export function renderSystemPrompt(def: AgentDefinition, memoryContext = ''): string {
  if (MEMORY_RE.test(def.system_prompt))
    return def.system_prompt
      .replace(new RegExp(MEMORY_RE.source, 'g'), memoryContext)
      .replace(/\n{3,}/g, '\n\n')
      .trim();
  if (memoryContext !== '' && !MEMORY_RE.test(def.user_prompt_template))
    return `${def.system_prompt}\n\n${memoryContext}`;
  return def.system_prompt;
}
