import type { AgentDefinition } from '../agents/definition.js';
import type { InvokeRequest } from './types.js';

const PLACEHOLDER_RE = /\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}/g;

function text(v: unknown): string {
  if (v === undefined || v === null || typeof v === 'function' || typeof v === 'symbol') return '';
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

/**
 * Renders `{{request}}`, `{{context}}`, `{{memory_context}}`, `{{parameters.NAME}}` and
 * `{{agent.name}}`; request parameters override the agent's. Unknown placeholders render empty.
 */
export function renderTemplate(template: string, def: AgentDefinition, req: InvokeRequest, memoryContext = ''): string {
  const out = template.replace(PLACEHOLDER_RE, (_m, key: string) => {
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
  });
  return out.replace(/\n{3,}/g, '\n\n').trim();
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
