import type { ServerConfig } from '../../config/index.js';
import type { Logger } from '../../observability/index.js';
import type { Db } from '../../storage/index.js';
import { AuditWatch } from '../../tools/index.js';
import { ToolAuditStore } from '../../tools/wasm/index.js';
import type { Component } from './component.js';

export interface ToolAuditComponent extends Component {
  /** The audit log of tool calls (SQLite `tool_audit`): WASM and MCP tool calls are recorded here. */
  readonly store: ToolAuditStore;
  /** The sink MCP calls are recorded through; the catalogue watches it for their outcome. */
  readonly watch: AuditWatch;
}

/** The tool-call audit log shared by MCP and WebAssembly tool servers. */
export function openToolAudit(opts: { config: ServerConfig; db: Db; logger: Logger }): ToolAuditComponent {
  const { config } = opts;
  const store = new ToolAuditStore(opts.db, {
    onError: (e) => opts.logger.error({ err: e }, 'tool audit records could not be written'),
    retentionMs: config.tool_audit.retention,
    maxRows: config.tool_audit.max_rows,
  });
  // The catalogue (components/tools.ts) watches this sink for the outcome of MCP calls made through the API.
  return { name: 'tool audit', store, watch: new AuditWatch(store), close: () => store.close() };
}
