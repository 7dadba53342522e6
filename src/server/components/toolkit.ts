import type { ServerConfig } from '../../config/index.js';
import type { HostToolGroup } from '../../tools/index.js';
import { todoTools } from '../../tools/todo/index.js';
import type { ToolAuditSink } from '../../tools/wasm/index.js';
import { webTools } from '../../tools/web/index.js';
import { workspaceTools } from '../../tools/workspace/index.js';
import type { Component } from './component.js';

/** The catalogue's sources for these tools (`caxton tool list`, GET /api/v1/tools). */
export const TOOLKIT_GROUPS: readonly HostToolGroup[] = [
  { name: 'workspace', description: 'Files and shell commands in the granted workspace ([workspace] in caxton.toml): read, write, edit, multi_edit, glob, grep, ls, bash' },
  { name: 'web', description: 'Web pages and web search: fetch (hosts of [tools.http_client] allowed_hosts), search ([web.search])' },
  { name: 'todo', description: 'The task list of an execution: write' },
];

/**
 * Claude Code's toolkit as host tools (docs/workspace.md, ADR 0049): `workspace.*` confined to
 * `[workspace]`, `web.fetch` through `[tools.http_client] allowed_hosts`, `web.search` through
 * `[web.search]`, and `todo.write`. They are registered whatever the grants (an ungranted call
 * answers an error naming the setting to add), so agents naming them load and the catalogue lists
 * them; every call is written to the tool audit.
 */
export function startToolkit(opts: { config: ServerConfig; audit: ToolAuditSink }): Component {
  const { config, audit } = opts;
  const allowedHosts = () => config.tools.http_client?.allowed_hosts ?? [];
  return {
    name: 'toolkit',
    hostTools: [...workspaceTools(config.workspace, audit), ...webTools(config.web, allowedHosts, audit), ...todoTools(audit)],
  };
}
