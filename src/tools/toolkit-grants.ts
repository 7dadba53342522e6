/**
 * What each tool of Claude Code's toolkit (workspace.*, web.*, todo.write, team.*) needs from caxton.toml
 * to work: one table for the deploy-time `tool_not_granted` warning and for the tools an agent that
 * lists none is given (`[agents.claude] unlisted_tools = "granted"`), so the two always agree with
 * what a call would be answered.
 */
import type { ServerConfig } from '../config/index.js';

/** The parts of caxton.toml the toolkit's grants are read from. */
export type ToolkitGrantConfig = Pick<ServerConfig, 'workspace' | 'web' | 'tools'>;

const READ_TOOLS = ['workspace.read', 'workspace.glob', 'workspace.grep', 'workspace.ls'];
const WRITE_TOOLS = ['workspace.write', 'workspace.edit', 'workspace.multi_edit'];

/** The toolkit's tools in the order they are offered. */
export const TOOLKIT_TOOL_NAMES: readonly string[] = [
  ...READ_TOOLS,
  ...WRITE_TOOLS,
  'workspace.bash',
  'web.fetch',
  'web.search',
  'todo.write',
  'team.create',
  'team.delete',
  'team.task_create',
  'team.task_list',
  'team.task_get',
  'team.task_update',
];

/** Why a toolkit tool does not work under a caxton.toml, and the setting that grants it. */
export interface MissingGrant {
  reason: string;
  setting: string;
}

/** What a toolkit tool lacks under `config`; undefined when it is granted (or not a toolkit tool). */
export function toolkitGrantMissing(tool: string, config: ToolkitGrantConfig): MissingGrant | undefined {
  const ws = config.workspace;
  const isWs = tool.startsWith('workspace.') && TOOLKIT_TOOL_NAMES.includes(tool);
  if (isWs && ws.path === undefined)
    return { reason: 'the workspace is not granted', setting: '[workspace] path = "<directory>"' };
  if (WRITE_TOOLS.includes(tool) && !ws.write)
    return { reason: 'writing in the workspace is not granted', setting: '[workspace] write = true' };
  if (tool === 'workspace.bash') {
    if (!ws.bash.enabled)
      return { reason: 'shell commands are not granted', setting: '[workspace.bash] enabled = true' };
    if (ws.bash.commands.length === 0)
      return { reason: 'no program may run', setting: '[workspace.bash] commands = ["ls", "cat", ...]' };
  }
  if (tool === 'web.fetch' && (config.tools.http_client?.allowed_hosts ?? []).length === 0)
    return { reason: 'no host may be fetched', setting: '[tools.http_client] allowed_hosts = ["example.com"]' };
  if (tool === 'web.search' && config.web.search === undefined)
    return { reason: 'no search backend is configured', setting: '[web.search] kind and url' };
  return undefined;
}

/** The toolkit's tools `config` grants: what an agent that lists no tools may use of them. */
export function grantedToolkit(config: ToolkitGrantConfig): string[] {
  return TOOLKIT_TOOL_NAMES.filter((t) => toolkitGrantMissing(t, config) === undefined);
}
