/**
 * The MCP tools that decide on a run's approval (src/mcp/run-tools.ts) and the audit action each
 * is recorded as: the same as the REST route's (POST /api/v1/runs/{id}/approve, /deny). Kept free
 * of imports so the audit table (src/audit/actions.ts) reads it without loading the MCP server.
 */
export const RUN_DECISION_TOOLS: Readonly<Record<string, 'run.approve' | 'run.deny'>> = {
  approve_run: 'run.approve',
  deny_run: 'run.deny',
};
