import { rng, shuffle } from './random.js';

/**
 * Generates realistic agent definitions: a name, a ~80-character description, 2–3 capabilities
 * from a pool of 500, 2 tools, a ~300-character system prompt, an [llm] and a [memory] table.
 * Capabilities are dealt from a reshuffled deck, so every capability ends up with about the same
 * number of providers (≈ agents × 2.5 / 500, i.e. ≈ 50 at 10,000 agents).
 */

const DOMAINS = [
  'data',
  'billing',
  'support',
  'search',
  'translation',
  'code',
  'security',
  'legal',
  'hr',
  'finance',
  'marketing',
  'sales',
  'logistics',
  'inventory',
  'weather',
  'travel',
  'health',
  'education',
  'media',
  'research',
  'devops',
  'network',
  'storage',
  'identity',
  'compliance',
] as const;

const ACTIVITIES = [
  'analysis',
  'reporting',
  'summarization',
  'extraction',
  'classification',
  'validation',
  'monitoring',
  'forecasting',
  'routing',
  'enrichment',
  'review',
  'planning',
  'scheduling',
  'auditing',
  'indexing',
  'triage',
  'generation',
  'optimization',
  'notification',
  'reconciliation',
] as const;

/** 25 domains × 20 activities = 500 capabilities, e.g. "billing-forecasting". */
const CAPABILITY_POOL: readonly string[] = DOMAINS.flatMap((d) => ACTIVITIES.map((a) => `${d}-${a}`));

/** Tools a bare server offers (built-ins), so every generated agent validates and deploys as it is. */
const TOOLS = ['calculator', 'current_time', 'todo.write', 'web.fetch', 'llm.chat'] as const;
const MODELS = ['gpt-4o-mini', 'gpt-4.1-mini', 'claude-haiku-4-5', 'llama3.1:8b'] as const;
const TONES = ['concise', 'friendly', 'formal', 'precise', 'patient'] as const;

export interface AgentPlan {
  readonly count: number;
  /** Capability indexes (into CAPABILITY_POOL) of agent i: `caps[i*3 .. i*3+ncaps[i]]`. */
  readonly caps: Uint16Array;
  readonly ncaps: Uint8Array;
  /** Providers per capability index. */
  readonly providers: Uint32Array;
  /**
   * The order to deploy in: a seeded permutation, because real names do not arrive sorted (and a
   * registry that sorts on every change looks much better when they do).
   */
  readonly order: Uint32Array;
  readonly seed: number;
}

export function planAgents(count: number, seed = 42): AgentPlan {
  const rand = rng(seed);
  const caps = new Uint16Array(count * 3);
  const ncaps = new Uint8Array(count);
  const providers = new Uint32Array(CAPABILITY_POOL.length);
  const deck: number[] = [];
  const draw = () => {
    if (deck.length === 0)
      deck.push(
        ...shuffle(
          rand,
          CAPABILITY_POOL.map((_, i) => i),
        ),
      );
    return deck.pop()!;
  };
  for (let i = 0; i < count; i++) {
    const n = rand() < 0.5 ? 2 : 3;
    const chosen: number[] = [];
    while (chosen.length < n) {
      const c = draw();
      if (!chosen.includes(c)) chosen.push(c);
    }
    chosen.forEach((c, k) => {
      caps[i * 3 + k] = c;
      providers[c]!++;
    });
    ncaps[i] = n;
  }
  const order = Uint32Array.from(
    shuffle(
      rand,
      Array.from({ length: count }, (_, i) => i),
    ),
  );
  return { count, caps, ncaps, providers, order, seed };
}

export const agentName = (i: number): string => `agent-${String(i + 1).padStart(5, '0')}`;

function capabilitiesOf(plan: AgentPlan, i: number): string[] {
  const out: string[] = [];
  for (let k = 0; k < plan.ncaps[i]!; k++) out.push(CAPABILITY_POOL[plan.caps[i * 3 + k]!]!);
  return out;
}

const fit = (s: string, len: number) => (s.length >= len ? s.slice(0, len - 1).trimEnd() + '.' : s.padEnd(len, '.'));

/** The TOML text of agent i, built on demand (the benchmark never holds all 10,000 at once). */
export function agentToml(plan: AgentPlan, i: number): string {
  const rand = rng(plan.seed * 1_000_003 + i);
  const name = agentName(i);
  const caps = capabilitiesOf(plan, i);
  const t1 = Math.floor(rand() * TOOLS.length);
  const t2 = (t1 + 1 + Math.floor(rand() * (TOOLS.length - 1))) % TOOLS.length;
  const tools = [TOOLS[t1]!, TOOLS[t2]!];
  const human = caps.map((c) => c.replace('-', ' '));
  const description = fit(
    `Handles ${human.join(', ')} requests for team ${1 + (i % 97)} and escalates what it cannot resolve`,
    80,
  );
  const tone = TONES[i % TONES.length]!;
  const prompt = fit(
    `You are ${name}, a ${tone} assistant specialised in ${human.join(' and ')}. ` +
      `Use ${tools.join(' and ')} when the request needs fresh data, cite the sources you used, and never invent figures. ` +
      `When a request falls outside ${human[0]}, say so briefly and suggest which capability should handle it instead. ` +
      `Keep answers under 300 words unless asked for more detail.`,
    300,
  );
  const temperature = Math.round(rand() * 10) / 10;
  return `name = "${name}"
version = "1.${i % 10}.0"
description = "${description}"
capabilities = [${caps.map((c) => `"${c}"`).join(', ')}]
tools = [${tools.map((t) => `"${t}"`).join(', ')}]

system_prompt = '''
${prompt}
'''

[llm]
model = "${MODELS[i % MODELS.length]}"
temperature = ${temperature.toFixed(1)}
max_tokens = ${512 * (1 + (i % 4))}

[memory]
enabled = ${i % 3 !== 0}
scope = "${i % 5 === 0 ? 'workspace' : 'agent'}"
search_limit = ${3 + (i % 8)}
min_similarity = 0.${5 + (i % 4)}
`;
}
