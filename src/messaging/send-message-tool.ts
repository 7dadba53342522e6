import type { Tool, ToolContext, ToolResult } from '../tools/index.js';
import type { Team, TeamBoard, TeamMember } from '../tools/todo/index.js';
import { isCaxtonError } from '../shared/errors.js';
import type { MessagingBus } from './bus-port.js';
import type { Conversation } from './conversation.js';
import type { BusEvent } from './bus-events.js';
import { contentText, type AclMessage, type ConversationId } from './message.js';
import { expectsReply, normalizePerformative, PERFORMATIVES } from './performatives.js';

interface Args {
  capability?: string;
  to?: string;
  performative?: string;
  content?: unknown;
  wait?: boolean;
  timeout_seconds?: number;
  ontology?: string;
  language?: string;
  // Claude Code's Task (and Agent) arguments.
  prompt?: unknown;
  subagent_type?: string;
  description?: string;
  name?: string;
  team_name?: string;
  run_in_background?: boolean;
  // Claude Code's SendMessage to a teammate.
  recipient?: string;
}

/**
 * The teammate a Claude Code `Task` call starts, when it starts one: `team_name` given, or `name`
 * given by a caller that belongs to a team. An error message when the call names a team the caller
 * is not in or gives no agent to start.
 */
function teammateOf(
  a: Args,
  to: string | undefined,
  team: Team | undefined,
): { team: Team; member: TeamMember } | string | undefined {
  if (a.team_name === undefined && a.name === undefined) return undefined;
  if (team?.name === undefined)
    return a.team_name === undefined
      ? undefined
      : `no team named "${a.team_name}" here: create it with TeamCreate first (its lead starts the teammates)`;
  if (a.team_name !== undefined && a.team_name !== team.name)
    return `this agent is in team "${team.name}", not "${a.team_name}"; leave team_name out or give "${team.name}"`;
  if (to === undefined)
    return 'a teammate is started by agent name: give subagent_type (the agent to run), not a capability';
  return { team, member: { name: a.name ?? to, agent: to } };
}

/**
 * Takes back the membership of a teammate whose request was not delivered. The caller's answer is
 * that failure: a membership left behind (the team's store out of reach) leads to a conversation
 * that never started, and goes with the team.
 */
function leave(
  teams: TeamBoard,
  mate: { team: Team; member: TeamMember },
  conversation: string,
  principal: string | undefined,
): Promise<void> {
  return teams.leave(mate.team, mate.member, conversation, principal).catch(() => undefined);
}

/**
 * Waits for the conversation to end, or for a question back to `sender` in it (a `query-ref`: a
 * remote A2A agent needing input, a participant asking), whichever comes first: a question keeps
 * the conversation open, so a wait for its end alone would last until the timeout.
 */
async function endOrQuestion(
  bus: MessagingBus,
  id: ConversationId,
  sender: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Conversation> {
  const asked = new AbortController();
  const me = sender.toLowerCase();
  const question = (m: AclMessage): boolean =>
    m.performative === 'query-ref' && m.receivers.some((r) => r.toLowerCase() === me);
  const hear = (e: BusEvent): void => {
    if (e.type === 'message' && e.conversation_id === id && question(e.message)) asked.abort();
  };
  bus.on('event', hear);
  try {
    await bus.listening();
    // One asked before the listener was on.
    const { messages } = await bus.reads.getConversation(id);
    if (messages.some((m) => question(m.message))) asked.abort();
    return await bus.wait(id, timeoutMs, AbortSignal.any([signal, asked.signal]));
  } finally {
    bus.off('event', hear);
  }
}

/**
 * `send_message`: lets an agent, during its execution, message other agents by capability or by
 * name. By default it waits for the conversation to end when the act expects a reply (request,
 * query, cfp...) and returns the replies; the message carries the chain of agents that led to it,
 * so A → B → A loops are stopped by the router. It acts for the call's principal
 * (`ToolContext.principal`: the caller of an invoke, the principal a handled message acts for, the
 * key of an MCP client), and the bus applies that principal's scope to it. Called from outside an
 * agent (an MCP client), the sender is that principal (`ToolContext.sender`), not the tool's caller.
 */
export function sendMessageTool(bus: MessagingBus, teams?: TeamBoard): Tool {
  return {
    name: 'send_message',
    description:
      'Send a FIPA-ACL message to another agent, addressed by capability (preferred) or by agent name. ' +
      'Use performative "request" to ask for work, "query-ref"/"query-if" to ask a question, "cfp" to ask every provider for proposals (the platform picks the best), "inform" to share information. ' +
      'Returns the replies when the act expects one.',
    input_schema: {
      type: 'object',
      properties: {
        capability: { type: 'string', description: 'Capability to address, e.g. "data-analysis"' },
        to: { type: 'string', description: 'Agent name to address instead of a capability' },
        performative: {
          type: 'string',
          enum: [...PERFORMATIVES],
          description: 'The communicative act (default "request")',
        },
        content: { description: 'The message content: text or JSON' },
        wait: { type: 'boolean', description: 'Wait for the replies (default: true when the act expects a reply)' },
        timeout_seconds: {
          type: 'number',
          description: 'How long to wait for replies (default: until the request deadline)',
        },
        ontology: { type: 'string' },
        language: { type: 'string' },
        prompt: { type: 'string', description: "Claude Code's Task: the task for the agent (same as content)" },
        subagent_type: { type: 'string', description: "Claude Code's Task: the agent to run (same as to)" },
        description: { type: 'string', description: "Claude Code's Task: a short (3-5 word) label of the task" },
        name: { type: 'string', description: 'A name for the teammate this starts in your team' },
        team_name: {
          type: 'string',
          description: 'The team the started agent joins (your team, made with TeamCreate)',
        },
        run_in_background: { type: 'boolean', description: 'Do not wait for the result (same as wait: false)' },
        recipient: { type: 'string', description: "Claude Code's SendMessage: the agent to message (same as to)" },
      },
    },
    async invoke(raw: Record<string, unknown>, ctx: ToolContext): Promise<ToolResult> {
      const a = raw as Args;
      for (const key of ['to', 'subagent_type', 'recipient', 'name', 'team_name', 'description'] as const)
        if (a[key] !== undefined && typeof a[key] !== 'string')
          return { content: `"${key}" must be a string`, is_error: true };
      const named = a.to ?? a.subagent_type ?? a.recipient;
      // A member addresses another member by the name the lead gave it, or by its agent name; the
      // receiver works in the new conversation as that member, so it still reaches the team's tasks.
      let team: Team | undefined;
      try {
        if (teams !== undefined && (a.team_name !== undefined || a.name !== undefined || named !== undefined))
          team = await teams.teamOf(ctx, false);
      } catch (e) {
        return { content: isCaxtonError(e) ? e.message : String(e), is_error: true };
      }
      const peer =
        team?.name !== undefined && named !== undefined
          ? (team.members.find((m) => m.name === named) ?? team.members.find((m) => m.agent === named))
          : undefined;
      const to = peer?.agent ?? named;
      const content = a.content ?? a.prompt ?? '';
      const performative = normalizePerformative(a.performative ?? 'request');
      if (!performative)
        return {
          content: `unknown performative "${a.performative}"; use one of: ${PERFORMATIVES.join(', ')}`,
          is_error: true,
        };
      // An agent limited to named delegates (Claude Code's `Agent(worker, reviewer)`) addresses them by name only.
      if (ctx.send_to !== undefined) {
        const allowed = ctx.send_to;
        const list = allowed.join(', ');
        if (to === undefined)
          return {
            content: `this agent may only message the agents ${list}: address one of them with "to" (capabilities are not allowed)`,
            is_error: true,
          };
        if (!allowed.some((n) => n.toLowerCase() === to.toLowerCase()))
          return { content: `this agent may not message "${to}"; it may message only: ${list}`, is_error: true };
        if (a.capability !== undefined)
          return { content: `address the agent by "to" only; this agent may not address capabilities`, is_error: true };
      }
      const chain = [...(ctx.chain ?? [])];
      // The chain names agents only: a party outside (an MCP client) is not one.
      if (ctx.sender === undefined && chain[chain.length - 1] !== ctx.agent) chain.push(ctx.agent);
      let parsed: AclMessage;
      try {
        const body: Record<string, unknown> = {
          performative,
          sender: ctx.sender ?? ctx.agent,
          content: content as AclMessage['content'],
          ...(a.capability !== undefined && { capability: a.capability }),
          ...(to !== undefined && { receiver: to }),
          ...(a.ontology !== undefined && { ontology: a.ontology }),
          ...(a.language !== undefined && { language: a.language }),
          ...(ctx.traceparent !== undefined && { trace_context: { traceparent: ctx.traceparent } }),
        };
        parsed = { ...bus.parse(body), chain, ...(ctx.principal !== undefined && { on_behalf_of: ctx.principal }) };
      } catch (e) {
        return { content: isCaxtonError(e) ? e.message : String(e), is_error: true };
      }
      // A teammate joins before its request is sent: its first tool call may come before send returns.
      const mate =
        (teams === undefined ? undefined : teammateOf(a, to, team)) ??
        (peer !== undefined ? { team: team!, member: peer } : undefined);
      if (typeof mate === 'string') return { content: mate, is_error: true };
      if (mate !== undefined) {
        const refused = await teams!.join(mate.team, mate.member, parsed.conversation_id, ctx.principal);
        if (refused !== undefined) return { content: refused, is_error: true };
      }
      let sentOk = false;
      try {
        const sent = await bus.send(parsed, { newId: true, newConversation: true });
        sentOk = sent.failure === undefined;
        if (sent.failure) {
          if (mate !== undefined) await leave(teams!, mate, parsed.conversation_id, ctx.principal);
          return { content: `not delivered: ${sent.failure.message}`, is_error: true };
        }
        const wait = a.wait ?? (a.run_in_background === true ? false : expectsReply(performative));
        if (!wait)
          return {
            content: `sent ${performative} ${sent.id} to ${sent.routed_to.join(', ')} (conversation ${sent.conversation_id})`,
          };
        const budget = ctx.deadline - Date.now() - 250;
        const timeout = Math.max(0, Math.min(budget, (a.timeout_seconds ?? Infinity) * 1000));
        const conv = await endOrQuestion(bus, sent.conversation_id, parsed.sender, timeout, ctx.signal);
        const { messages } = await bus.reads.getConversation(sent.conversation_id);
        const replies = messages.map((s) => s.message).filter((x) => x.sender !== parsed.sender && x.id !== sent.id);
        const lines = replies.map((r) => `[${r.performative}] from ${r.sender}: ${contentText(r.content)}`);
        const status = `conversation ${conv.id} is ${conv.state}${conv.reason ? ` (${conv.reason})` : ''}`;
        const failed =
          conv.state === 'failed' || conv.state === 'expired' || (conv.state !== 'completed' && replies.length === 0);
        return { content: [status, ...lines].join('\n'), ...(failed && { is_error: true }) };
      } catch (e) {
        if (mate !== undefined && !sentOk) await leave(teams!, mate, parsed.conversation_id, ctx.principal);
        if (ctx.signal.aborted) throw e;
        return { content: isCaxtonError(e) ? e.message : String(e), is_error: true };
      }
    },
  };
}
