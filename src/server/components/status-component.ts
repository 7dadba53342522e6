import { hostname } from 'node:os';
import { clusterApi, observabilityApi, type ClusterView, type Lifecycle } from '../../api/index.js';
import type { AgentService } from '../../agents/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { MemoryComponent as MemoryGraph } from '../../memory/index.js';
import type { MessagingBus } from '../../messaging/index.js';
import type { AgentEvents } from '../../observability/agent-event-recorder.js';
import type { LogBuffer } from '../../observability/log-buffer.js';
import type { StatusSampler } from '../../observability/status.js';
import type { ToolCatalogue } from '../../tools/index.js';
import type { ToolServerManager } from '../../tools/servers/index.js';
import type { Component } from './component.js';

/** Events, logs and the status overview over what every other component holds; nothing of its own to close. */
export function statusRoutes(opts: {
  config: ServerConfig;
  lifecycle: Lifecycle;
  service: AgentService;
  sampler: StatusSampler;
  events: AgentEvents | undefined;
  logs: LogBuffer | undefined;
  bus: MessagingBus;
  tools: ToolServerManager;
  catalogue: ToolCatalogue;
  memory: MemoryGraph | undefined;
  /** A cluster node's view (JetStream membership); absent: the node lists itself. */
  view?: ClusterView | undefined;
}): Component {
  const { events, logs, memory } = opts;
  return {
    name: 'status',
    routes: [
      ...clusterApi({ view: opts.view ?? standaloneView(opts.lifecycle, opts.bus) }),
      ...observabilityApi({
        ...(events && { events: events.store }),
        ...(logs && { logs }),
        sampler: opts.sampler,
        service: opts.service,
        config: opts.config,
        lifecycle: opts.lifecycle,
        bus: opts.bus,
        tools: opts.tools,
        catalogue: opts.catalogue,
        ...(memory && { memory }),
      }),
    ],
  };
}

/** A node without `[cluster]`: a cluster of one, itself, always up. */
function standaloneView(lifecycle: Lifecycle, bus: MessagingBus): ClusterView {
  const node = hostname();
  const startedAt = new Date(lifecycle.startedAt).toISOString();
  return {
    clustered: false,
    node,
    nodes: async () => {
      const s = bus.stats();
      const now = new Date().toISOString();
      return [
        {
          node,
          url: null,
          version: lifecycle.version,
          started_at: startedAt,
          heartbeat_at: now,
          state: 'up',
          age_ms: 0,
          self: true,
          load: {
            queued: s.queued,
            running: s.running,
            open_conversations: s.open_conversations,
            dead_letters: s.dead_letters,
          },
        },
      ];
    },
  };
}
