import { relative } from 'node:path';
import {
  AgentDirectoryWatcher,
  DEPLOY_CHECK_CODES,
  listsNoTools,
  unlistedToolsOf,
  type AgentRegistry,
  type AgentService,
  type FileStatus,
} from '../../agents/index.js';
import type { Logger, Metrics } from '../../observability/index.js';
import type { AgentEvents } from '../../observability/agent-event-recorder.js';
import type { Component } from './component.js';

export interface AgentFilesComponent extends Component {
  /** What the initial load of agents_dir found, one status per file. */
  readonly statuses: FileStatus[];
}

/** Loads `agents_dir`, then watches it; keeps caxton_agents_deployed per origin. */
export async function watchAgentFiles(opts: {
  agentsDir: string;
  registry: AgentRegistry;
  service: AgentService;
  events: AgentEvents | undefined;
  logger: Logger;
  metrics: Metrics;
}): Promise<AgentFilesComponent> {
  const { registry, events, logger, metrics } = opts;
  const watcher = new AgentDirectoryWatcher(opts.agentsDir, opts.service, {
    onApplied: (s) => {
      if (s.state === 'invalid') {
        metrics.agentEvents.inc({ event: 'invalid_file' });
        events?.invalidFile(s.path, s.agent, s.errors ?? []);
        logger.warn(
          { file: s.path, agent: s.agent, errors: s.errors },
          s.agent ? 'agent file is invalid; the last good version keeps running' : 'agent file is invalid; not loaded',
        );
      } else if (s.state === 'loaded') {
        logger.info({ file: s.path, agent: s.agent }, 'agent file loaded');
        const def = s.agent !== undefined ? registry.get(s.agent)?.definition : undefined;
        if (def && listsNoTools(def)) {
          const tools = unlistedToolsOf(def, opts.service.unlistedTools);
          logger.info(
            { file: s.path, agent: s.agent, tools, setting: 'agents.claude.unlisted_tools' },
            tools.length > 0
              ? `agent "${s.agent}" lists no tools: as Claude Code gives such an agent every tool, it gets the ${tools.length} tools this server grants ([agents.claude] unlisted_tools = "granted"): ${tools.join(', ')}`
              : `agent "${s.agent}" lists no tools and gets none: this server grants none to such agents ([agents.claude] unlisted_tools, [workspace], [web])`,
          );
        }
        // A model the providers cannot serve as written is worth a line at warn level.
        // So is a provider or tool it names that the server cannot resolve.
        for (const w of s.errors ?? [])
          if (DEPLOY_CHECK_CODES.has(w.code))
            logger.warn({ file: s.path, agent: s.agent, field: w.field, code: w.code }, w.message);
      }
    },
    onRemoved: (p) => logger.info({ file: p }, 'agent file removed'),
    onSkipped: (skipped) => {
      const skills = skipped.filter((f) => f.kind === 'skill').length;
      const commands = skipped.length - skills;
      const what = [
        skills > 0 && `${skills} skill file${skills === 1 ? '' : 's'}`,
        commands > 0 && `${commands} slash-command file${commands === 1 ? '' : 's'}`,
      ]
        .filter(Boolean)
        .join(' and ');
      logger.info(
        { agents_dir: opts.agentsDir, skills, commands, files: skipped.map((f) => relative(opts.agentsDir, f.path)) },
        `agents_dir: skipped ${what} (SKILL.md, skills/ and commands/ hold skills and slash commands, not agents)`,
      );
    },
    onError: (e, c) => logger.error({ err: e, file: c.path }, c.what),
  });
  const statuses = watcher.loadAll();
  try {
    await watcher.start();
  } catch (e) {
    await watcher.close();
    throw e;
  }
  // Agents per origin, kept from registry events (O(1) per change, so bulk deploys stay linear).
  const initial = registry.list().agents;
  const perOrigin = { file: 0, api: 0, a2a: 0 };
  for (const a of initial) perOrigin[a.origin.kind]++;
  const setGauge = () => {
    metrics.agentsDeployed.set({ origin: 'file' }, perOrigin.file);
    metrics.agentsDeployed.set({ origin: 'api' }, perOrigin.api);
    if (perOrigin.a2a > 0) metrics.agentsDeployed.set({ origin: 'a2a' }, perOrigin.a2a);
  };
  registry.on('change', (e) => {
    if (e.type !== 'deployed') perOrigin[(e.type === 'updated' ? e.previous : e.agent).origin.kind]--;
    if (e.type !== 'removed') perOrigin[e.agent.origin.kind]++;
    setGauge();
  });
  setGauge();
  return { name: 'agent files', statuses, close: () => watcher.close() };
}
