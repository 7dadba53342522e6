/**
 * What the central scope checks cost per request (docs/security.md, the scope rules): a principal
 * with a realistic scope (20 agent globs, 10 capability globs, 10 tool globs) beside an unscoped
 * one, on the same checks in the same run.
 *
 * Each check is one line of CHECKS: a name, how many calls make one sample, and the call for a
 * principal. Variants run in alternated rounds of equal length (unscoped, scoped, unscoped, ...)
 * so machine noise hits both alike; each sample is the mean of a batch of calls (one call is
 * below what one hrtime reading resolves), p50 and p99 are over the samples. A batch is kept to
 * tens of microseconds so few samples span a preemption on a busy machine.
 *
 * Targets: a check on every request adds at most 1 µs (5% of the 20 µs budget of authenticating
 * an API key); routing one send at most 50 µs and filtering a page of 100 messages at most 1 ms,
 * both small beside the SQLite write or read they come with.
 *
 * The send and read rules are the functions of src/auth the bus and the message reads call
 * (checkSend's routing filter, messageVisible).
 */
import {
  assertAgentAllowed,
  checkSend,
  inScope,
  messageVisible,
  type Principal,
  type PrincipalScope,
} from '../src/auth/index.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt, summarize, type Summary } from './lib/stats.js';

const ROUNDS = 20;
const SAMPLES_PER_ROUND = 200;
const PROVIDERS = 50;
const PAGE = 100;

const principal = (scope: PrincipalScope): Principal => ({
  id: 'key:bench',
  kind: 'key',
  name: 'bench',
  role: 'developer',
  scope,
});

/** Teams named by prefix, a few exact names: the scope an operator writes for one department. */
const TEAMS = [
  'support',
  'sales',
  'billing',
  'search',
  'ops',
  'legal',
  'hr',
  'marketing',
  'research',
  'data',
  'web',
  'mobile',
  'infra',
  'security',
  'finance',
];
const SCOPED = principal({
  agents: [...TEAMS.map((t) => `${t}-*`), 'triage', 'router', 'summarizer', 'translator', 'reviewer'],
  capabilities: TEAMS.slice(0, 10).map((t) => `${t}.*`),
  memory: ['workspace', 'agent:support-*', 'agent:sales-*'],
  tools: [
    'csv_parser.*',
    'json_query.*',
    'calculator',
    'current_time',
    'read_graph',
    'search_nodes',
    'open_nodes',
    'create_entities',
    'send_message',
    'web.fetch',
  ],
});
const UNSCOPED = principal({});

/** In-scope agent names matched late in the glob list (the scan's worst case among allowed names). */
const NAMES = Array.from({ length: 1_000 }, (_, i) => `${TEAMS[10 + (i % 5)]}-agent-${i}`);
/** Providers of one capability: most in scope, some outside (`partner-…`). */
const PROVIDER_LIST = Array.from({ length: PROVIDERS }, (_, i) =>
  i % 5 === 4 ? `partner-${i}` : `${TEAMS[i % TEAMS.length]}-worker-${i}`,
);

interface StoredMessage {
  message: { sender: string; receivers: string[] };
  routed_to: string[];
}
/** A page of stored messages between agents of the scope, some from outside parties, a few naming an agent outside it. */
const MESSAGES: StoredMessage[] = Array.from({ length: PAGE }, (_, i) => {
  const a = NAMES[i]!;
  const b = i % 10 === 9 ? `partner-${i}` : NAMES[(i * 7) % NAMES.length]!;
  const sender = i % 3 === 0 ? 'key:ci' : a;
  return { message: { sender, receivers: [b] }, routed_to: [b] };
});

/** Capability routing under the send rule, as the router applies it: the filter checkSend returns. */
function sendFilter(p: Principal, providers: readonly string[]): readonly string[] {
  const scope = checkSend(p, { receivers: [] });
  return scope === undefined ? providers : providers.filter((a) => scope.allows(a));
}

interface Check {
  name: string;
  /** Calls per sample. */
  batch: number;
  /** One call for `p`; `i` varies the input. The result keeps the call observable. */
  call: (p: Principal, i: number) => unknown;
  /** Most added cost per call over the unscoped principal, ns, at p50. */
  target: number;
}

const CHECKS: Check[] = [
  {
    name: 'agent scope of one request (assertAgentAllowed)',
    batch: 100,
    target: 1_000,
    call: (p, i) => assertAgentAllowed(p, NAMES[i % NAMES.length]!),
  },
  {
    name: 'tool scope of one call (inScope, 10 globs)',
    batch: 100,
    target: 1_000,
    call: (p, i) => inScope(p.scope.tools, i % 2 === 0 ? 'json_query.query' : 'web.fetch'),
  },
  {
    name: `capability routing over ${PROVIDERS} providers`,
    batch: 2,
    target: 50_000,
    call: (p) => sendFilter(p, PROVIDER_LIST).length,
  },
  {
    name: `message visibility over a page of ${PAGE} messages`,
    batch: 1,
    target: 1_000_000,
    call: (p) => MESSAGES.filter((m) => messageVisible(p, m)).length,
  },
];

/** Alternated rounds: per round, SAMPLES_PER_ROUND samples of `batch` calls for each principal in turn. */
function measure(check: Check): { unscoped: Summary; scoped: Summary } {
  const principals = [UNSCOPED, SCOPED];
  const out = [new Float64Array(ROUNDS * SAMPLES_PER_ROUND), new Float64Array(ROUNDS * SAMPLES_PER_ROUND)];
  let sink = 0;
  let i = 0;
  for (const p of principals) for (let k = 0; k < 20 * check.batch; k++) if (check.call(p, i++) !== undefined) sink++; // warm up
  for (let r = 0; r < ROUNDS; r++)
    for (let v = 0; v < principals.length; v++)
      for (let s = 0; s < SAMPLES_PER_ROUND; s++) {
        const t0 = process.hrtime.bigint();
        for (let k = 0; k < check.batch; k++) if (check.call(principals[v]!, i++) !== undefined) sink++;
        out[v]![r * SAMPLES_PER_ROUND + s] = Number(process.hrtime.bigint() - t0) / check.batch;
      }
  if (sink < 0) console.error(sink);
  return { unscoped: summarize(out[0]!), scoped: summarize(out[1]!) };
}

const ns = (v: number) => (v >= 1_000 ? `${fmt(v / 1000, 1)} µs` : `${fmt(v, 1)} ns`);

export const scopeSuite: Suite = {
  name: 'scope',
  description:
    'central scope checks per request: agent and tool scope, capability routing, message visibility, scoped beside unscoped',
  async run(): Promise<SuiteReport> {
    const rows: Row[] = [];
    const raw: Record<string, unknown> = {};
    // The fixtures hold what the rules expect: some providers and messages are outside the scope.
    const routed = sendFilter(SCOPED, PROVIDER_LIST).length;
    const visible = MESSAGES.filter((m) => messageVisible(SCOPED, m)).length;
    if (routed === PROVIDERS || routed === 0 || visible === PAGE || visible === 0)
      throw new Error(
        `scope bench fixtures are not mixed: ${routed}/${PROVIDERS} providers, ${visible}/${PAGE} messages in scope`,
      );
    for (const check of CHECKS) {
      const m = measure(check);
      const added = m.scoped.p50 - m.unscoped.p50;
      raw[check.name] = m;
      rows.push({
        metric: `${check.name}: per call p50 / p99 (added p50)`,
        value: `${ns(m.scoped.p50)} / ${ns(m.scoped.p99)} (+${ns(Math.max(0, added))})`,
        baseline: `unscoped: ${ns(m.unscoped.p50)} / ${ns(m.unscoped.p99)}`,
        target: `added ≤ ${ns(check.target)}`,
        verdict: added <= check.target ? 'pass' : 'fail',
      });
    }
    return {
      rows,
      notes: [
        `Scoped principal: ${SCOPED.scope.agents!.length} agent globs, ${SCOPED.scope.capabilities!.length} capability globs, ${SCOPED.scope.tools!.length} tool globs; ${routed} of ${PROVIDERS} providers and ${visible} of ${PAGE} messages in its scope.`,
        `${ROUNDS} alternated rounds of ${SAMPLES_PER_ROUND} samples per principal; each sample is the mean of the check's batch of calls.`,
      ],
      raw: { rounds: ROUNDS, samples_per_round: SAMPLES_PER_ROUND, ...raw },
    };
  },
};
