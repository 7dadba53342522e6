export type { Tool, ToolContext, ToolResult } from './types.js';
export { ToolRegistry, allowsTool, type CalledTool } from './tool-registry.js';
export { calculatorTool, evaluate } from './builtin/calculator.js';
export { currentTimeTool } from './builtin/current-time.js';
export { llmChatTool } from './builtin/llm-chat.js';
import type { ProviderRegistry } from '../llm/index.js';
import { calculatorTool } from './builtin/calculator.js';
import { currentTimeTool } from './builtin/current-time.js';
import { llmChatTool } from './builtin/llm-chat.js';
import { ToolRegistry } from './tool-registry.js';

/** A registry with every built-in tool. */
export function builtinTools(providers: ProviderRegistry, defaultProvider: string | undefined): ToolRegistry {
  const r = new ToolRegistry();
  r.register(calculatorTool);
  r.register(currentTimeTool);
  r.register(llmChatTool(providers, defaultProvider));
  return r;
}
export {
  ToolCatalogue,
  AuditWatch,
  TOOL_SOURCE_KINDS,
  BUILTIN_GROUP,
  HOST_GROUP,
  type ToolSourceKind,
  type ToolSourceSummary,
  type ToolSourceView,
  type ToolCallVia,
  type ToolCallMetrics,
  type McpSource,
  type McpSourceStatus,
  type ToolCatalogueOptions,
  type HostToolGroup,
} from './catalogue.js';
export {
  grantedToolkit,
  toolkitGrantMissing,
  TOOLKIT_TOOL_NAMES,
  type ToolkitGrantConfig,
  type MissingGrant,
} from './toolkit-grants.js';
export { egressAgent, egressRefusalOf, literalRefusal, EgressRefused } from './egress.js';
