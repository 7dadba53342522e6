/**
 * The pipeline's record stage: each execution's `agent.execute` span, metrics, execution record
 * (src/execution/records) and `onExecuted` event, made from one RecordContext at its end.
 */
import type { AgentDefinition } from '../../agents/index.js';
import { genAiSystemOf, type ProviderConfig } from '../../llm/index.js';
import { traceIdsHandedOn } from '../../observability/agent-events.js';
import type { Metrics } from '../../observability/metrics.js';
import {
  childTraceparent,
  endWithError,
  giveAttributes,
  spanName,
  startSpan,
  type Attributes,
  type Span,
  type Tracer,
} from '../../observability/trace-context.js';
import { isCaxtonError } from '../../shared/errors.js';
import { entryOf, type ExecutionLog } from '../records/record-model.js';
import type { AgentResponse, InvokeRequest } from '../types.js';

/** One finished execution, for `ExecutorOptions.onExecuted`. */
export interface ExecutionRecord {
  /** The execution's id, which is also its durable run's: set whether it succeeded or failed. */
  execution_id: string;
  agent: string;
  /** The definition that ran (a rollout's candidate or stable version: the agent service tells which). */
  definition: AgentDefinition;
  /** A shadow run (InvokeOptions.shadow). */
  shadow?: boolean;
  /** 'ok' or the error code. */
  status: string;
  duration_ms: number;
  request: InvokeRequest;
  response?: AgentResponse;
  /** The `agent.execute` span's traceparent when traced, else the request's. */
  traceparent?: string;
}

/** One execution as the record stage knows it from its start: what ran, for whom, since when. */
export interface RecordContext {
  id: string;
  def: AgentDefinition;
  /** The name the caller gave (NAME@VERSION addresses one version: the record says so). */
  ref: string;
  shadow: boolean;
  /** Wall-clock start (ms since the epoch) and its high-resolution twin for the duration. */
  started: number;
  t0: number;
  span: Span | undefined;
  /** The request as run: with the span's traceparent when traced. */
  req: InvokeRequest;
}

export interface RecorderOptions {
  tracer?: Tracer | undefined;
  metrics?: Metrics | undefined;
  onExecuted?: ((e: ExecutionRecord) => void) | undefined;
  records?: ExecutionLog | undefined;
  versionNumberOf?: ((definition: AgentDefinition) => number | undefined) | undefined;
  /** Whether a tool of this name exists (a name the model made up is not a metric label). */
  knownTool: (name: string) => boolean;
  /** The configured providers, for the span's `gen_ai.system`. */
  providers: Record<string, ProviderConfig>;
}

export class ExecutionRecorder {
  readonly #o: RecorderOptions;

  private constructor(opts: RecorderOptions) {
    this.#o = opts;
  }

  /** Undefined when nothing records: an execution then skips this stage altogether. */
  static of(opts: RecorderOptions): ExecutionRecorder | undefined {
    if (!opts.tracer && !opts.metrics && !opts.onExecuted && !opts.records) return undefined;
    return new ExecutionRecorder(opts);
  }

  begin(id: string, def: AgentDefinition, req: InvokeRequest, shadow: boolean, ref: string): RecordContext {
    const started = Date.now();
    const t0 = performance.now();
    const tracer = this.#o.tracer;
    // Its attributes are given at its end, all at once (end()).
    const span = tracer && startSpan(tracer, spanName('agent.execute', def.name), req.traceparent);
    const tp = span ? childTraceparent(span, req.traceparent) : undefined;
    // Object.assign, not a spread: a spread copy given a key its source lacks gets a hidden class of its own in V8.
    const traced = tp !== undefined && tp !== req.traceparent ? Object.assign({}, req, { traceparent: tp }) : req;
    return { id, def, ref, shadow, started, t0, span, req: traced };
  }

  /** Metrics and span attributes of one execution (labels: agent, provider, model and tool names only). */
  end(ctx: RecordContext, res: AgentResponse | undefined, err: unknown): void {
    const { id, def, req, span, t0 } = ctx;
    const agent = def.name;
    const { metrics: m, records, onExecuted } = this.#o;
    const status = res ? 'ok' : isCaxtonError(err) ? err.code : 'internal';
    // A run paused for a person has not ended: it is recorded when it does.
    if (records && status !== 'awaiting_approval') {
      records.record(
        entryOf({
          id,
          agent,
          version: def.version,
          version_number: this.#o.versionNumberOf?.(def),
          addressed: ctx.ref.lastIndexOf('@') > 0,
          shadow: ctx.shadow,
          started: ctx.started,
          duration_ms: performance.now() - t0,
          request: req,
          response: res,
          // Scrubbed as the caller sees it (the scrub stage): the record holds nothing the caller could not.
          error: err,
          trace_id: traceIdsHandedOn(span, req.traceparent)?.trace_id,
        }),
      );
    }
    if (onExecuted) {
      // Built field by field: a literal of conditional spreads copies each through a temporary object.
      const executed: ExecutionRecord = {
        execution_id: id,
        agent,
        definition: def,
        status,
        duration_ms: performance.now() - t0,
        request: req,
      };
      if (ctx.shadow) executed.shadow = true;
      if (res) executed.response = res;
      if (req.traceparent !== undefined) executed.traceparent = req.traceparent;
      onExecuted(executed);
    }
    if (m) {
      m.execution(agent, status, (performance.now() - t0) / 1000);
      if (res) {
        m.llm(res.provider, res.model, res.turns, res.usage.input_tokens, res.usage.output_tokens);
        for (const c of res.tool_calls) {
          // A name the model made up is not a label value: it would grow without bound.
          const tool = this.#o.knownTool(c.name) ? c.name : 'unknown';
          m.tool(tool, c.is_error ? 'error' : 'ok', c.duration_ms / 1000, 'agent');
        }
      } else {
        m.error(status);
      }
    }
    if (!span?.isRecording()) return;
    if (res) {
      const providers = this.#o.providers;
      const system = genAiSystemOf(Object.hasOwn(providers, res.provider) ? providers[res.provider]!.type : undefined);
      giveAttributes(span, executeSpanAttributes(agent, req.conversation_id, res, system));
      span.end();
    } else {
      const attributes: Attributes = { 'caxton.agent': agent };
      if (req.conversation_id !== undefined) attributes['caxton.conversation_id'] = req.conversation_id;
      giveAttributes(span, attributes);
      endWithError(span, err);
    }
  }
}

/**
 * An execution's span attributes, made at its end as one object of one shape per case (with a
 * conversation or without): who ran and in which conversation, then what ran it, in that order on
 * the wire. Added one by one, they would grow the object's property store three times per
 * execution.
 */
function executeSpanAttributes(
  agent: string,
  conversation: string | undefined,
  res: AgentResponse,
  system: string,
): Attributes {
  return conversation === undefined
    ? {
        'caxton.agent': agent,
        'caxton.execution_id': res.execution_id,
        'caxton.isolation': res.isolation,
        'gen_ai.system': system,
        'gen_ai.provider.name': system,
        'caxton.provider': res.provider,
        'gen_ai.request.model': res.model,
        'caxton.turns': res.turns,
        'gen_ai.usage.input_tokens': res.usage.input_tokens,
        'gen_ai.usage.output_tokens': res.usage.output_tokens,
      }
    : {
        'caxton.agent': agent,
        'caxton.conversation_id': conversation,
        'caxton.execution_id': res.execution_id,
        'caxton.isolation': res.isolation,
        'gen_ai.system': system,
        'gen_ai.provider.name': system,
        'caxton.provider': res.provider,
        'gen_ai.request.model': res.model,
        'caxton.turns': res.turns,
        'gen_ai.usage.input_tokens': res.usage.input_tokens,
        'gen_ai.usage.output_tokens': res.usage.output_tokens,
      };
}
