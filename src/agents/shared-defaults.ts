import { isDeepStrictEqual } from 'node:util';
import type { AgentDefinition } from './definition.js';
import type { AgentOrigin } from './registry.js';
import { agentDocumentSchema } from './schema.js';

/** The tables most agents leave as they are: every agent holding one as its default shares one copy. */
const TABLES = [
  'llm',
  'memory',
  'parameters',
  'limits',
  'conversation',
  'execution',
  'messaging',
  'metadata',
] as const satisfies readonly (keyof AgentDefinition)[];

type Tables = Pick<AgentDefinition, (typeof TABLES)[number]>;

let defaults: Tables | undefined;

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** The default tables, parsed from the smallest valid document once, frozen (a change would reach every agent). */
function defaultTables(): Tables {
  if (defaults) return defaults;
  const def = agentDocumentSchema.parse({ name: 'defaults', system_prompt: 'defaults' });
  const t = {} as Record<string, unknown>;
  for (const k of TABLES) t[k] = deepFreeze(def[k]);
  return (defaults = t as Tables);
}

/**
 * Points the tables of `def` that equal their defaults at one shared, frozen copy: an agent that
 * leaves its memory, limits or messaging settings alone costs no object of its own for them,
 * whether it came from a file, the API, the store or another node.
 */
export function shareDefaultTables(def: AgentDefinition): void {
  const d = defaultTables();
  const target = def as unknown as Record<string, unknown>;
  for (const k of TABLES) {
    const v = target[k];
    if (v !== d[k] && isDeepStrictEqual(v, d[k])) target[k] = d[k];
  }
}

const API_ORIGIN: AgentOrigin = Object.freeze({ kind: 'api' });

/** One origin object for every API agent (a file agent's names its own path). */
export function sharedOrigin(origin: AgentOrigin): AgentOrigin {
  return origin.kind === 'api' ? API_ORIGIN : origin;
}
