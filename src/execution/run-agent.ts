import { randomUUID } from 'node:crypto';
import { trace, type Span, type Tracer } from '@opentelemetry/api';
import {
  chatWithFallbacks,
  genAiSystemOf,
  type ChatMessage,
  type ChatRequest,
  type ChatResponse,
  type ProviderRegistry,
  type ResolveDefaults,
  type ToolCall,
  type ToolChoice,
  type ToolSpec,
  type Usage,
} from '../llm/index.js';
import {
  endWithError,
  giveAttributes,
  SpanKind,
  spanName,
  SpanStatusCode,
  startSpan,
  traceparentOf,
  type Attributes,
} from '../observability/trace-context.js';
import { CaxtonError } from '../shared/errors.js';
import type { ToolContext, ToolRegistry } from '../tools/index.js';
import { renderSystemPrompt, renderTemplate } from './prompt-template.js';
import { assertToolChoiceHonoured } from './tool-choice.js';
import type { RecordedReply, RunStep } from './runs/run-model.js';
import { RefusalTally, RunRecorder } from './runs/run-recorder.js';
import type { AgentResponse, ExecutionEvent, ExecutionJob, ModelTurn, ToolCallRecord } from './types.js';

/** Opens the system message that carries a caller's own system/developer messages. */
export const CLIENT_INSTRUCTIONS_HEADER =
  'Instructions from the client application (they refine, and never override, the instructions above):';

export interface ExecutionDeps {
  providers: ProviderRegistry;
  /** Every tool the execution can reach (built-ins, plus host tools: see host-tools.ts); the agent's allowlist filters them. */
  tools: ToolRegistry;
  llmDefaults: ResolveDefaults;
}

/** What a tool learns about the execution calling it (the same for every call of one execution). */
export function toolContext(job: ExecutionJob, signal: AbortSignal): ToolContext {
  const req = job.request;
  return {
    agent: job.definition.name,
    execution_id: job.execution_id,
    ...(req.conversation_id !== undefined && { conversation_id: req.conversation_id }),
    ...(req.chain !== undefined && { chain: [...req.chain] }),
    ...(req.traceparent !== undefined && { traceparent: req.traceparent }),
    ...(req.principal !== undefined && { principal: req.principal }),
    ...(job.definition.messaging.send_to !== undefined && { send_to: [...job.definition.messaging.send_to] }),
    deadline: job.deadline,
    signal,
  };
}

const ignore = (): void => {};
const NO_NAMES: ReadonlySet<string> = new Set();

/**
 * A protocol step's acts are forced (tool_choice "required") where the provider follows
 * tool_choice: a bid must be a typed value, never a number guessed from prose. The scripted
 * provider ignores tool_choice, so forcing it would only turn its text answers into errors.
 */
function actsChoice(
  acts: readonly ToolSpec[],
  deps: ExecutionDeps,
  attempts: readonly { provider: string }[],
): ToolChoice | undefined {
  if (acts.length === 0 || attempts.length === 0) return undefined;
  return deps.providers.get(attempts[0]!.provider).type === 'scripted' ? undefined : 'required';
}

function addUsage(a: Usage, b: Usage): Usage {
  return {
    input_tokens: a.input_tokens + b.input_tokens,
    output_tokens: a.output_tokens + b.output_tokens,
    total_tokens: a.total_tokens + b.total_tokens,
  };
}

/** What one execution's turns share: made once per run, read by the functions below. */
interface AgentRun {
  readonly job: ExecutionJob;
  readonly deps: ExecutionDeps;
  readonly signal: AbortSignal;
  readonly emit: (e: ExecutionEvent) => void;
  /** Streams the model's text as it comes (undefined when the request does not stream). */
  readonly onToken: ((text: string) => void) | undefined;
  readonly tracer: Tracer;
  readonly allowed: string[];
  /** The caller's own tools: offered to the model, never run here. */
  readonly clientNames: ReadonlySet<string>;
  /** Undefined for a run with nothing to record, reuse or approve: its calls just run. */
  readonly steps: RunRecorder | undefined;
  readonly messages: ChatMessage[];
  readonly records: ToolCallRecord[];
  /** When every call was refused rather than run, the response says so. */
  readonly refusals: RefusalTally;
}

/**
 * Runs one agent execution: render prompts, call the model, execute the tools it asks for (only
 * those its definition allows), feed results back, until it answers or `max_turns` is reached.
 * Everything it builds is local to this call: nothing leaks into the next execution.
 */
export async function runAgent(
  job: ExecutionJob,
  deps: ExecutionDeps,
  opts: {
    signal: AbortSignal;
    emit?: (e: ExecutionEvent) => void;
    /**
     * A durable run's journal (src/execution/runs): commits the steps given, resolving once they
     * are on disk. Each step is committed before the next begins: a tool's start before it runs,
     * its end before the model is asked again. `job.replay` holds what a resumed run reuses.
     */
    record?: (steps: RunStep[]) => Promise<void>;
  },
): Promise<AgentResponse> {
  const started = performance.now();
  const def = job.definition;
  const emit = opts.emit ?? ignore;
  const attempts = deps.providers.resolve(def.llm, deps.llmDefaults, def.name);
  const req = job.request;
  // The caller's own tools join the agent's: offered to the model, never run here (see below).
  const acts = req.acts ?? [];
  const clientTools = acts.length === 0 ? (req.client_tools ?? []) : [...(req.client_tools ?? []), ...acts];
  const clientNames: ReadonlySet<string> =
    clientTools.length === 0 ? NO_NAMES : new Set(clientTools.map((t) => t.name));
  const allowed = def.tools as string[];
  const agentSpecs = deps.tools.specsFor(allowed);
  const toolSpecs = clientTools.length === 0 ? agentSpecs : [...agentSpecs, ...clientTools];

  // {{memory_context}}: what the executor found in memory for this request (src/memory).
  const memory = job.memory_context ?? '';
  // A resumed execution continues from the exact messages its model saw when it stopped for
  // client tool calls (the hidden server-side calls included); otherwise the prompts are rendered.
  const messages: ChatMessage[] = req.transcript ? req.transcript.map((m) => ({ ...m })) : initialMessages(job, memory);
  for (const m of req.continuation ?? []) messages.push({ ...m });

  const base = chatRequestBase(job, toolSpecs, attempts, opts.signal);
  const toolChoice = toolSpecs.length > 0 ? (req.tool_choice ?? actsChoice(acts, deps, attempts)) : undefined;
  const actsForced = req.tool_choice === undefined && toolChoice === 'required';
  const run: AgentRun = {
    job,
    deps,
    signal: opts.signal,
    emit,
    onToken: job.stream ? (text) => emit({ type: 'token', text }) : undefined,
    tracer: trace.getTracer('caxton'),
    allowed,
    clientNames,
    steps: RunRecorder.of(job, deps.tools, opts.record),
    messages,
    records: [],
    refusals: new RefusalTally(),
  };
  const steps = run.steps;
  const modelTurns: ModelTurn[] = [];
  let usage: Usage = { input_tokens: 0, output_tokens: 0, total_tokens: 0 };
  let last: ChatResponse | undefined;
  let turns = 0;
  let pending: ToolCall[] = [];
  for (; turns < def.limits.max_turns;) {
    if (opts.signal.aborted)
      throw opts.signal.reason instanceof CaxtonError
        ? opts.signal.reason
        : new CaxtonError('cancelled', 'the execution was cancelled');
    turns++;
    const recorded = steps?.recorded(turns);
    if (recorded !== undefined) {
      // A resumed run: this turn's reply was recorded, so the model is not asked again.
      last = replyOf(recorded);
      if (job.stream && last.content !== '') emit({ type: 'token', text: last.content });
      modelTurns.push(modelTurnOf(turns, last, recorded.latency_ms));
      usage = addUsage(usage, last.usage);
      messages.push({
        role: 'assistant',
        content: last.content,
        ...(last.tool_calls.length > 0 && { tool_calls: last.tool_calls }),
      });
      if (last.tool_calls.length === 0) break;
      if (clientNames.size > 0) pending = last.tool_calls.filter((c) => clientNames.has(c.name));
      await runCalls(run, last.tool_calls, turns);
      if (pending.length > 0) break;
      continue;
    }
    // Spans record only where a tracer provider is registered (the server process: `context`
    // isolation); in a worker or child process they are no-ops and the trace context passes through.
    const llmSpan = startSpan(run.tracer, 'llm.chat', req.traceparent, undefined, SpanKind.CLIENT);
    const callStarted = performance.now();
    try {
      // tool_choice holds for the request's first model call only: 'required' on every turn would
      // never let a server-side tool loop end (docs/openai.md). A forced choice is checked on its reply (below).
      // Forced acts hold on every turn: calling one ends the execution, so the loop still ends.
      const choice = turns === 1 || actsForced ? toolChoice : undefined;
      last = await chatWithFallbacks(deps.providers, attempts, chatCall(run, base, llmSpan, choice), run.onToken);
    } catch (e) {
      if (llmSpan.isRecording()) giveAttributes(llmSpan, { 'caxton.agent': def.name, 'caxton.turn': turns });
      endWithError(llmSpan, e);
      throw e;
    }
    // Its attributes are given at its end, all at once (llmSpanAttributes).
    if (llmSpan.isRecording()) {
      giveAttributes(llmSpan, llmSpanAttributes(def.name, turns, last, deps.providers));
      llmSpan.end();
    }
    const latency_ms = Math.round((performance.now() - callStarted) * 1000) / 1000;
    modelTurns.push(modelTurnOf(turns, last, latency_ms));
    // Before any tool of the reply runs: a call of another tool is not the one forced.
    if (turns === 1 || actsForced) assertToolChoiceHonoured(def.name, toolChoice, last);
    usage = addUsage(usage, last.usage);
    // Client tool calls get Caxton's own ids: providers' ids need not be unique across executions
    // (scripted ones are call_0_0...), and a follow-up finds its suspended execution by them.
    const calls =
      clientNames.size === 0
        ? last.tool_calls
        : last.tool_calls.map((c) =>
            clientNames.has(c.name) ? { ...c, id: `call_${randomUUID().replaceAll('-', '')}` } : c,
          );
    messages.push({ role: 'assistant', content: last.content, ...(calls.length > 0 && { tool_calls: calls }) });
    // Recorded with Caxton's ids for client calls, so that a resumed run hands back the same ones.
    if (steps?.recording === true) steps.replied(turns, recordedReply(last, calls, latency_ms));
    if (calls.length === 0) break;
    if (clientNames.size > 0) pending = calls.filter((c) => clientNames.has(c.name));
    await runCalls(run, calls, turns);
    // The turn's server-side calls have run; the client's are the caller's to answer: the
    // execution stops here, its transcript handed back so that a follow-up can resume it.
    if (pending.length > 0) break;
  }
  // The last reply is on disk before the run's answer is handed back.
  await steps?.commit();
  if (actsForced && !pending.some((c) => acts.some((a) => a.name === c.name)))
    throw new CaxtonError(
      'tool_choice_not_honoured',
      `the model of agent "${def.name}" had to answer with one of the acts ${acts.map((a) => `"${a.name}"`).join(', ')}, but it made none in ${turns} turns; retry, or use a model that follows tool_choice`,
      { param: 'tool_choice', tool_choice: 'required', turns },
    );
  return agentResponse(run, last!, { usage, turns, modelTurns, pending, started });
}

/**
 * The model call's fields that hold for every turn, set one by one on one object: a literal of
 * conditional spreads copies each of them through a temporary object.
 */
function chatRequestBase(
  job: ExecutionJob,
  toolSpecs: readonly ToolSpec[],
  attempts: readonly { model: string }[],
  signal: AbortSignal,
): Omit<ChatRequest, 'messages' | 'traceparent'> {
  const def = job.definition;
  const req = job.request;
  const s = req.sampling ?? {};
  const temperature = s.temperature ?? def.llm.temperature;
  const topP = s.top_p ?? def.llm.top_p;
  const stop = s.stop ?? def.llm.stop;
  // The agent's max_tokens is its operator's budget: a caller may ask for less, never for more.
  const maxTokens =
    s.max_tokens !== undefined && def.llm.max_tokens !== undefined
      ? Math.min(s.max_tokens, def.llm.max_tokens)
      : (s.max_tokens ?? def.llm.max_tokens);
  const base: Omit<ChatRequest, 'messages' | 'traceparent'> = { model: attempts[0]?.model ?? '' };
  if (toolSpecs.length > 0) {
    base.tools = toolSpecs;
    if (req.parallel_tool_calls !== undefined) base.parallel_tool_calls = req.parallel_tool_calls;
  }
  if (temperature !== undefined) base.temperature = temperature;
  if (maxTokens !== undefined) base.max_tokens = maxTokens;
  if (topP !== undefined) base.top_p = topP;
  if (stop !== undefined) base.stop = stop;
  if (req.response_format !== undefined) base.response_format = req.response_format;
  base.signal = signal;
  // Lets the provider clients refuse a retry wait (backoff, Retry-After) that would outlive the request.
  base.deadline = job.deadline;
  return base;
}

/** The model call of one turn: its messages, trace context and tool_choice before the fields of every turn. */
function chatCall(
  run: AgentRun,
  base: Omit<ChatRequest, 'messages' | 'traceparent'>,
  llmSpan: Span,
  choice: ToolChoice | undefined,
): ChatRequest {
  // The model provider sees the call's trace context (its span when recording, else the request's).
  const tp = (llmSpan.isRecording() ? traceparentOf(llmSpan) : undefined) ?? run.job.request.traceparent;
  // The turn's own fields come before the spread of `base` (which holds neither): in optimized
  // code, Node 20's V8 gives `{ ...base, messages }` a new hidden class on every call, ~1 µs
  // each and megamorphic for every reader; a literal that starts with its own keys keeps one.
  const messages = run.messages;
  const call: ChatRequest = tp === undefined ? { messages, ...base } : { messages, traceparent: tp, ...base };
  if (choice !== undefined) call.tool_choice = choice;
  return call;
}

/** Runs the server-side calls of one turn, in order, each recorded before it starts and after it ends. */
async function runCalls(run: AgentRun, calls: ToolCall[], turn: number): Promise<void> {
  const { job, deps, steps, clientNames } = run;
  for (const call of clientNames.size === 0 ? calls : calls.filter((c) => !clientNames.has(c.name))) {
    run.emit({ type: 'tool_call', call, turn });
    if (steps !== undefined) {
      // Recorded, interrupted or denied: settled from the journal, not run.
      let settled = steps.reused(turn, call);
      if (settled === undefined) {
        const gate = steps.approval(turn, call, () => toolContext(job, run.signal));
        if (gate !== undefined) settled = await gate;
      }
      if (settled !== undefined) {
        run.refusals.count(settled);
        finishCall(run, call, settled.content, settled.is_error, settled.duration_ms);
        continue;
      }
      const starting = steps.starting(turn, call);
      if (starting !== undefined) await starting;
    }
    const t0 = performance.now();
    const toolSpan = startSpan(run.tracer, spanName('tool.call', call.name), job.request.traceparent);
    const ctx = toolContext(job, run.signal);
    if (toolSpan.isRecording()) {
      giveAttributes(toolSpan, { 'caxton.agent': job.definition.name, 'caxton.tool': call.name });
      ctx.traceparent = traceparentOf(toolSpan);
    }
    let result;
    try {
      result = await deps.tools.invoke(run.allowed, call.name, call.arguments, ctx);
    } catch (e) {
      endWithError(toolSpan, e);
      throw e;
    }
    const duration_ms = Math.round((performance.now() - t0) * 1000) / 1000;
    const is_error = result.is_error === true;
    run.refusals.count(result);
    if (is_error) toolSpan.setStatus({ code: SpanStatusCode.ERROR, message: result.content.slice(0, 200) });
    toolSpan.end();
    steps?.ended(turn, call, {
      content: result.content,
      is_error,
      duration_ms,
      ...(result.refused === true && { refused: true as const }),
      ...(result.files !== undefined && { files: result.files }),
    });
    finishCall(run, call, result.content, is_error, duration_ms);
  }
  // Committed while the model is asked again (RunRecorder.commitBehind says why that is safe).
  steps?.commitBehind();
}

function finishCall(run: AgentRun, call: ToolCall, content: string, is_error: boolean, duration_ms: number): void {
  // Field by field, not `{ ...call, result, … }`: a spread followed by fields the call lacks
  // makes a new hidden class on every evaluation in optimized code (ADR 0107).
  run.records.push({ id: call.id, name: call.name, arguments: call.arguments, result: content, is_error, duration_ms });
  run.emit({ type: 'tool_result', id: call.id, name: call.name, content, is_error, duration_ms });
  run.messages.push({
    role: 'tool',
    tool_call_id: call.id,
    name: call.name,
    content,
    ...(is_error && { is_error: true }),
  });
}

/** The execution's answer from its last reply and what its turns added up to. */
function agentResponse(
  run: AgentRun,
  finished: ChatResponse,
  end: { usage: Usage; turns: number; modelTurns: ModelTurn[]; pending: ToolCall[]; started: number },
): AgentResponse {
  const { job } = run;
  const { pending } = end;
  const hitLimit = finished.tool_calls.length > 0;
  const suspended = pending.length > 0;
  return {
    id: `resp_${randomUUID()}`,
    execution_id: job.execution_id,
    agent: job.definition.name,
    ...(job.request.conversation_id !== undefined && { conversation_id: job.request.conversation_id }),
    content: finished.content,
    tool_calls: run.records,
    usage: end.usage,
    execution_time_ms: Math.round((performance.now() - end.started) * 1000) / 1000,
    finish_reason: suspended
      ? 'tool_calls'
      : hitLimit
        ? 'max_turns'
        : finished.finish_reason === 'tool_calls'
          ? 'stop'
          : finished.finish_reason,
    provider: finished.provider,
    model: finished.model,
    turns: end.turns,
    isolation: job.isolation,
    model_turns: end.modelTurns,
    ...(run.refusals.allRefused && { all_tool_calls_refused: true as const }),
    ...(suspended && { pending_tool_calls: pending, transcript: run.messages }),
  };
}

function modelTurnOf(turn: number, res: ChatResponse, latency_ms: number): ModelTurn {
  return {
    turn,
    provider: res.provider,
    model: res.model,
    input_tokens: res.usage.input_tokens,
    output_tokens: res.usage.output_tokens,
    latency_ms,
    finish_reason: res.finish_reason,
    tool_calls: res.tool_calls.length,
  };
}

function recordedReply(res: ChatResponse, calls: ToolCall[], latency_ms: number): RecordedReply {
  return {
    content: res.content,
    tool_calls: calls,
    usage: res.usage,
    finish_reason: res.finish_reason,
    provider: res.provider,
    model: res.model,
    latency_ms,
  };
}

/** A recorded reply as the loop reads a provider's. */
function replyOf(r: RecordedReply): ChatResponse {
  return {
    content: r.content,
    tool_calls: r.tool_calls,
    usage: r.usage,
    finish_reason: r.finish_reason as ChatResponse['finish_reason'],
    provider: r.provider,
    model: r.model,
  };
}

/** A new execution's first messages: the agent's system prompt, the caller's instructions, the history, the rendered request. */
function initialMessages(job: ExecutionJob, memory: string): ChatMessage[] {
  const def = job.definition;
  const messages: ChatMessage[] = [{ role: 'system', content: renderSystemPrompt(def, memory) }];
  // The caller's system messages come after the agent's own and are marked as the caller's: the
  // agent's definition stays the frame, the client's instructions refine it (docs/openai.md).
  const instructions = job.request.instructions ?? [];
  if (instructions.length > 0)
    messages.push({ role: 'system', content: `${CLIENT_INSTRUCTIONS_HEADER}\n\n${instructions.join('\n\n')}` });
  for (const h of job.request.history ?? []) messages.push({ ...h });
  messages.push({ role: 'user', content: renderTemplate(def.user_prompt_template, def, job.request, memory) });
  return messages;
}

/**
 * A model call's span attributes, made at its end as one object of one shape: the call's agent and
 * turn, then its provider, model and tokens, in that order on the wire. Added one by one, they
 * would grow the object's property store three times per call.
 */
function llmSpanAttributes(agent: string, turn: number, res: ChatResponse, providers: ProviderRegistry): Attributes {
  const system = genAiSystemOf(providers.has(res.provider) ? providers.get(res.provider).type : undefined);
  return {
    'caxton.agent': agent,
    'caxton.turn': turn,
    'gen_ai.system': system,
    'gen_ai.provider.name': system,
    'caxton.provider': res.provider,
    'gen_ai.request.model': res.model,
    'gen_ai.usage.input_tokens': res.usage.input_tokens,
    'gen_ai.usage.output_tokens': res.usage.output_tokens,
  };
}
