import type { ServerConfig } from '../config/index.js';
import { describeError } from '../shared/errors.js';
import {
  DEFAULT_MODEL_ALIASES,
  LlmError,
  ProviderRegistry,
  resolveModelName,
  ScriptedProvider,
  type CheckedScript,
  type ProviderConfig,
  type ProviderFacts,
  type ResolveDefaults,
} from '../llm/index.js';
import { builtinTools } from '../tools/index.js';
import type { ExecutionDeps } from './run-agent.js';

/** The serializable part of the configuration an execution needs (crosses into workers and processes). */
export interface LlmSetup {
  providers: Record<string, ProviderConfig>;
  defaults: ResolveDefaults;
}

export function llmSetup(cfg: ServerConfig): LlmSetup {
  const providers: Record<string, ProviderConfig> = {};
  for (const [name, p] of Object.entries(cfg.llm.providers)) {
    providers[name] = {
      type: p.type,
      timeout_ms: p.timeout,
      max_retries: p.max_retries,
      retry_base_ms: p.retry_base,
      ...(p.base_url !== undefined && { base_url: p.base_url }),
      ...(p.api_key_env !== undefined && { api_key_env: p.api_key_env }),
      ...(p.model !== undefined && { model: p.model }),
      ...(p.headers !== undefined && { headers: p.headers }),
      ...(p.script !== undefined && { script: p.script }),
      ...(p.latency > 0 && { latency_ms: p.latency }),
    };
  }
  const names = Object.keys(providers);
  const defaultProvider = cfg.llm.default_provider ?? (names.length === 1 ? names[0]! : '');
  return {
    providers,
    defaults: { provider: defaultProvider, modelAliases: { ...DEFAULT_MODEL_ALIASES, ...cfg.llm.model_aliases } },
  };
}

/** Provider clients and the built-in tools for a setup. */
export function buildDeps(setup: LlmSetup): ExecutionDeps {
  const providers = ProviderRegistry.fromConfig(setup.providers);
  return {
    providers,
    tools: builtinTools(providers, setup.defaults.provider || undefined),
    llmDefaults: setup.defaults,
  };
}

/**
 * The setup a worker thread or child process receives, per execution: each scripted provider's
 * reply file read and checked here (re-read only when it changed, as in this process), so the
 * isolated side loads no TOML parser or schema library. The same object comes back while no
 * script changed.
 */
export function setupShipper(setup: LlmSetup, providers: ProviderRegistry): () => Promise<LlmSetup> {
  const scripted = Object.entries(setup.providers).filter(
    ([, p]) => p.type === 'scripted' && p.script !== undefined && p.script_checked === undefined,
  );
  if (scripted.length === 0) return () => Promise.resolve(setup);
  let last: { parts: (CheckedScript | string | undefined)[]; setup: LlmSetup } | undefined;
  const read = async (name: string): Promise<CheckedScript | string | undefined> => {
    const provider = providers.has(name) ? providers.get(name) : undefined;
    if (!(provider instanceof ScriptedProvider)) return undefined;
    try {
      return await provider.checkedScript();
    } catch (e) {
      return e instanceof LlmError ? e.reason : describeError(e);
    }
  };
  return async () => {
    const parts = await Promise.all(scripted.map(([name]) => read(name)));
    if (last && parts.every((part, i) => part === last!.parts[i])) return last.setup;
    const shipped: Record<string, ProviderConfig> = { ...setup.providers };
    scripted.forEach(([name, config], i) => {
      const part = parts[i];
      if (typeof part === 'string') shipped[name] = { ...config, script_error: part };
      else if (part !== undefined) shipped[name] = { ...config, script_checked: part };
    });
    last = { parts, setup: { ...setup, providers: shipped } };
    return last.setup;
  };
}

/**
 * The deploy-time check of an agent's model: the warning text when its model alias or
 * Claude model id cannot be served as written by the configured providers and the run will fall
 * back (see resolveModelName); undefined when it resolves, or when no provider is configured at
 * all (then nothing can run and the executor says so).
 */
export function modelCheck(setup: LlmSetup): (llm: { provider?: string; model?: string }) => string | undefined {
  const facts = (name: string): ProviderFacts | undefined => {
    const p = Object.hasOwn(setup.providers, name) ? setup.providers[name] : undefined;
    return p && { type: p.type, defaultModel: p.model ?? (p.type === 'scripted' ? 'scripted' : undefined) };
  };
  const all = () => Object.keys(setup.providers).map((n): [string, ProviderFacts] => [n, facts(n)!]);
  return (llm) => {
    if (Object.keys(setup.providers).length === 0 || llm.model === undefined) return undefined;
    return resolveModelName(llm, setup.defaults.provider, setup.defaults.modelAliases, facts, all).fallback;
  };
}
