import type { ChatResponse, ToolChoice } from '../llm/index.js';
import { CaxtonError } from '../shared/errors.js';

/**
 * A forced `tool_choice` is checked on the model's reply, as `response_format` is: a caller that
 * forces a tool (LangChain's withStructuredOutput with function calling, a client that must get
 * a call) reads the call's arguments and nothing else, so a model that answered in text instead,
 * or called another tool, must be an error (502 tool_choice_not_honoured), never a reply that
 * looks complete and parses as nothing. Providers pass tool_choice on, but not every model obeys
 * it (and the scripted provider ignores it).
 */

/** Throws tool_choice_not_honoured when `choice` forced a tool call that `reply` does not make. */
export function assertToolChoiceHonoured(agent: string, choice: ToolChoice | undefined, reply: ChatResponse): void {
  if (choice === undefined || choice === 'auto' || choice === 'none') return;
  const called = reply.tool_calls.map((c) => c.name);
  if (choice === 'required' ? called.length > 0 : called.includes(choice.name)) return;
  const forced =
    choice === 'required'
      ? 'to call a tool (tool_choice "required")'
      : `to call the tool "${choice.name}" (tool_choice)`;
  const did =
    called.length === 0
      ? 'it answered in text without calling any tool'
      : `it called ${called.map((n) => `"${n}"`).join(', ')} instead`;
  throw new CaxtonError(
    'tool_choice_not_honoured',
    `the model of agent "${agent}" was forced ${forced}, but ${did}; retry the request, or use a model that follows tool_choice`,
    {
      param: 'tool_choice',
      tool_choice: choice,
      called,
      reply_excerpt: reply.content.slice(0, 200),
    },
  );
}
