/**
 * The web tools: Claude Code's WebFetch and WebSearch as host tools `web.fetch` and `web.search`
 * (docs/workspace.md). Each call is audited under server "web".
 */
import type { WebConfig } from '../../config/index.js';
import { audited } from '../audited.js';
import { deniedBy } from '../permissions/guard.js';
import type { PermissionSet } from '../permissions/rules.js';
import type { Tool } from '../types.js';
import type { ToolAuditSink } from '../../audit/index.js';
import { fetchTool } from './fetch.js';
import { searchTool } from './search.js';

export const WEB_GROUP = 'web';

export { FETCH_NOT_GRANTED } from './fetch.js';
export { SEARCH_NOT_CONFIGURED } from './search.js';
export { htmlToMarkdown, htmlTitle } from './html.js';

/**
 * web.fetch (reaching the hosts `allowedHosts` lists: `[tools.http_client] allowed_hosts`) and
 * web.search, audited into `audit`. The deny rules of `permissions` (`WebFetch(domain:...)`)
 * refuse a call before it runs, and the audit records it as denied, like any refused call.
 */
export function webTools(
  config: WebConfig,
  allowedHosts: () => readonly string[],
  audit: ToolAuditSink | undefined,
  opts: { env?: NodeJS.ProcessEnv; permissions?: PermissionSet } = {},
): Tool[] {
  const { env, permissions } = opts;
  return [fetchTool(config.fetch, allowedHosts), searchTool(config.search, env)].map((t) =>
    audited(WEB_GROUP, permissions ? deniedBy(t, permissions) : t, audit),
  );
}
