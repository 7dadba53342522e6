import { existsSync } from 'node:fs';
import type { ServerConfig } from '../config/index.js';
import type { ConfigProblem } from '../api/readiness.js';

/**
 * What in the configuration will make runs fail although the server serves: no provider at all, a
 * provider whose key is not in the server's environment, a scripted provider whose file is missing, a provider with
 * no default model. The server still starts and /ready stays about serving; these are reported at
 * start, by GET /health (names only: it is public) and by the status overview, each with its fix.
 * Evaluated on each call: a script file created later clears its problem without a restart.
 */
export function configProblems(config: ServerConfig, env: NodeJS.ProcessEnv = process.env): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (Object.keys(config.llm.providers).length === 0)
    problems.push({
      name: 'llm.providers',
      problem: 'no LLM provider is configured: every agent run fails',
      fix: 'add a provider to caxton.toml, e.g. [llm.providers.openai] with type = "openai", api_key_env = "OPENAI_API_KEY" and model = "gpt-4o-mini" (docs/providers.md), then restart the server',
    });
  for (const [name, p] of Object.entries(config.llm.providers)) {
    const field = `llm.providers.${name}`;
    if (p.api_key_env !== undefined && (env[p.api_key_env] ?? '').trim() === '') {
      problems.push({
        name: field,
        problem: `provider "${name}" has no API key: the environment variable ${p.api_key_env} is not set for the server process`,
        fix: `set ${p.api_key_env} in the environment of the server (\`export ${p.api_key_env}=...\` in the shell or service that runs \`caxton serve\`), then restart the server; the CLI's environment does not reach it`,
      });
    }
    if (p.type === 'scripted' && p.script !== undefined && !existsSync(p.script)) {
      problems.push({
        name: field,
        problem: `provider "${name}" is scripted, but its script ${p.script} does not exist`,
        fix: `create ${p.script} (see docs/scripted-provider.md), or point script = "..." in [${field}] at the right file and restart the server`,
      });
    }
    if (p.type !== 'scripted' && p.model === undefined) {
      problems.push({
        name: field,
        problem: `provider "${name}" has no default model: an agent that names no model cannot run on it`,
        fix: `add model = "MODEL" to [${field}] (a model the provider serves), then restart the server`,
      });
    }
  }
  const types = new Set(Object.values(config.llm.providers).map((p) => p.type as string));
  for (const [alias, mapped] of Object.entries(config.llm.model_aliases)) {
    const target = mapped as { provider?: string; model: string };
    if (
      target.provider === undefined ||
      Object.hasOwn(config.llm.providers, target.provider) ||
      types.has(target.provider)
    )
      continue;
    problems.push({
      name: `llm.model_aliases.${alias}`,
      problem: `model "${alias}" is mapped to provider "${target.provider}", which is not configured: agents asking for "${alias}" fall back to the default provider`,
      fix: `add [llm.providers.${target.provider}], or name a configured provider (${Object.keys(config.llm.providers).join(', ') || 'none yet'}) in [llm.model_aliases] ${alias}, then restart the server`,
    });
  }
  return problems;
}
