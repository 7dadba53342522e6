import { realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ServerConfig } from '../../config/index.js';
import type { Logger } from '../../observability/index.js';
import { CaxtonError } from '../../shared/errors.js';
import { MEMORY_TOOL_NAMES, parseMemoryConfig } from '../../memory/index.js';
import { grantedToolkit, type HostToolGroup } from '../../tools/index.js';
import { teamTools, todoTools, type TeamBoard } from '../../tools/todo/index.js';
import type { ToolAuditSink } from '../../audit/index.js';
import { webTools } from '../../tools/web/index.js';
import { workspacePermissions } from '../../tools/permissions/index.js';
import { inside, probeSandbox, processLimitBy, workspaceTools } from '../../tools/workspace/index.js';
import type { Component } from './component.js';

/** The catalogue's sources for these tools (`caxton tool list`, GET /api/v1/tools). */
export const TOOLKIT_GROUPS: readonly HostToolGroup[] = [
  {
    name: 'workspace',
    description:
      'Files and shell commands in the granted workspace ([workspace] in caxton.toml): read, write, edit, multi_edit, glob, grep, ls, bash',
  },
  {
    name: 'web',
    description: 'Web pages and web search: fetch (hosts of [tools.http_client] allowed_hosts), search ([web.search])',
  },
  { name: 'todo', description: 'The task list of an execution: write' },
  {
    name: 'team',
    description:
      "Agent teams and their shared task list (Claude Code's TeamCreate, TeamDelete, TaskCreate, TaskList, TaskGet, TaskUpdate): create, delete, task_create, task_list, task_get, task_update",
  },
];

/**
 * What a Claude Code agent that lists no tools is given (ADR 0121): with `[agents.claude]
 * unlisted_tools = "granted"`, the toolkit's tools this caxton.toml grants (write tools only with
 * `[workspace] write`, Bash only with `[workspace.bash]`, web.fetch only with allowed hosts), the
 * memory tools when memory is on, and send_message; never a tool server's or an MCP server's
 * tools, which an agent names to get.
 */
export function unlistedToolsFor(config: ServerConfig): string[] {
  if (config.agents.claude.unlisted_tools === 'none') return [];
  let memory = false;
  try {
    memory = parseMemoryConfig(config.memory).enabled;
  } catch {
    // A bad [memory] stops the start where memory is opened, with the field named.
  }
  return [...grantedToolkit(config), ...(memory ? MEMORY_TOOL_NAMES : []), 'send_message'];
}

/** The real path of `p`, or of its nearest existing ancestor with the rest appended (a directory not made yet). */
function realish(p: string): string {
  const abs = resolve(p);
  try {
    return realpathSync(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(realish(parent), basename(abs));
  }
}

/**
 * The server's own directories against the workspace grant: a workspace that is the data
 * directory or inside it would hand out its keys and databases, and a writable workspace holding
 * agents_dir would let agents deploy agents, so both stop the start unless the operator opted in
 * (`agents_dir_writable`). A data directory inside the workspace stays allowed: the tools never
 * reach it (Workspace's private directories, walked without following links).
 */
function checkProtectedDirs(config: ServerConfig): void {
  const ws = config.workspace;
  const root = realish(ws.path!);
  const data = realish(config.data_dir);
  if (inside(data, root))
    throw new CaxtonError(
      'invalid_config',
      `refusing to start: [workspace] path = "${ws.path}" is the server's data directory or inside it (data_dir = "${config.data_dir}"); grant a directory outside data_dir`,
      { field: 'workspace.path' },
    );
  const agents = realish(config.agents_dir);
  if (ws.write && !ws.agents_dir_writable && (inside(root, agents) || inside(agents, root)))
    throw new CaxtonError(
      'invalid_config',
      `refusing to start: agents_dir = "${config.agents_dir}" is inside the writable workspace [workspace] path = "${ws.path}" (or holds it), so agents could deploy agents; move agents_dir out of the workspace, set [workspace] write = false, or set [workspace] agents_dir_writable = true to allow it`,
      { field: 'agents_dir' },
    );
}

/**
 * Claude Code's toolkit as host tools (docs/workspace.md, ADR 0049): `workspace.*` confined to
 * `[workspace]`, `web.fetch` through `[tools.http_client] allowed_hosts`, `web.search` through
 * `[web.search]`, `todo.write`, and the team tools over `teams`. They are registered whatever the grants (an ungranted call
 * answers an error naming the setting to add), so agents naming them load and the catalogue lists
 * them; every call is written to the tool audit. A granted workspace that is not a directory stops
 * the start ('invalid_config'), as a typo there would otherwise only show on the first call.
 */
export function startToolkit(opts: {
  config: ServerConfig;
  audit: ToolAuditSink;
  logger: Logger;
  teams: TeamBoard;
}): Component {
  const { config, audit, logger } = opts;
  const ws = config.workspace;
  if (ws.path !== undefined) {
    let dir = false;
    try {
      dir = statSync(ws.path).isDirectory();
    } catch {
      dir = false;
    }
    if (!dir)
      throw new CaxtonError(
        'invalid_config',
        `refusing to start: [workspace] path = "${ws.path}" in caxton.toml is not a directory (create it, or fix the path)`,
        { field: 'workspace.path' },
      );
    checkProtectedDirs(config);
    if (ws.bash.enabled) {
      const sandbox = probeSandbox();
      if (!sandbox.ok)
        logger.warn(
          { field: 'workspace.bash.enabled' },
          `workspace.bash is enabled but cannot run: ${sandbox.problem}; its calls will be refused`,
        );
      else if (ws.bash.commands.length === 0)
        logger.warn(
          { field: 'workspace.bash.commands' },
          'workspace.bash is enabled with no programs in [workspace.bash] commands: every command will be refused',
        );
      if (sandbox.ok && !processLimitBy())
        logger.warn(
          { field: 'workspace.bash.processes' },
          'workspace.bash has no process limit here: the server runs as root, which RLIMIT_NPROC does not bind, and may create no pids cgroup; run the server as its own user or give it a writable pids cgroup for [workspace.bash] processes to hold',
        );
    }
  }
  const allowedHosts = () => config.tools.http_client?.allowed_hosts ?? [];
  return {
    name: 'toolkit',
    hostTools: [
      ...workspaceTools(ws, audit, [config.data_dir]),
      // The deny rules of [workspace.permissions] hold for web.fetch and web.search too (WebFetch(domain:...)).
      ...webTools(config.web, allowedHosts, audit, { permissions: workspacePermissions(ws) }),
      ...todoTools(audit),
      ...teamTools(opts.teams, audit),
    ],
  };
}
