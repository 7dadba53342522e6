/**
 * The messaging benches' receivers: `agent-0` … `agent-99`, each offering one of `cap-0` …
 * `cap-19`, each taking up to 64 deliveries at a time; and a `sink` that takes what it is sent.
 */
import { parseAgent, type AgentDefinition, type AgentRegistry } from '../../src/agents/index.js';
import type { CaxtonServer } from '../../src/server/index.js';

export const AGENTS = 100;
export const CAPABILITIES = 20;

export function agentDef(name: string, capabilities: string[]): AgentDefinition {
  const r = parseAgent(
    `name = "${name}"\ncapabilities = [${capabilities.map((c) => `"${c}"`).join(', ')}]\nsystem_prompt = "bench"\n[messaging]\nmax_concurrency = 64\n`,
    { format: 'toml' },
  );
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.definition;
}

function deploy(registry: AgentRegistry, definition: AgentDefinition): void {
  const now = new Date().toISOString();
  registry.upsert({
    definition,
    format: 'toml',
    origin: { kind: 'api' },
    revision: 1,
    deployed_at: now,
    updated_at: now,
  });
}

/** Deploys the receivers in `registry` (so named receivers and capabilities route). */
export function fillRegistry(registry: AgentRegistry): void {
  for (let i = 0; i < AGENTS; i++) deploy(registry, agentDef(`agent-${i}`, [`cap-${i % CAPABILITIES}`]));
}

/** The agent `sink` (capability `sink`) on a server, its messages taken by a handler that does nothing. */
export function registerSink(server: CaxtonServer): void {
  deploy(server.registry, agentDef('sink', ['sink']));
  server.bus.registerHandler('sink', () => undefined);
}
