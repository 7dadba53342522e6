import type { AgentResponse } from '../../execution/index.js';

/**
 * What /v1 says about the agent's run beyond OpenAI's fields, in one place for chat completions
 * and Responses. OpenAI's objects have no field for it, so it goes in `metadata`: a string map the
 * spec gives both the `chat.completion` and the `response` object, which OpenAI clients already
 * read and keep (docs/openai.md, "What the run did").
 */

/** Set ("true") when the agent's tools were called and every call was refused, none run (AgentResponse.all_tool_calls_refused). */
export const ALL_TOOL_CALLS_REFUSED = 'caxton_all_tool_calls_refused';

/** Caxton's metadata of a run; undefined for a run with nothing to say. */
export function runMetadata(res: Pick<AgentResponse, 'all_tool_calls_refused'>): Record<string, string> | undefined {
  return res.all_tool_calls_refused === true ? { [ALL_TOOL_CALLS_REFUSED]: 'true' } : undefined;
}
