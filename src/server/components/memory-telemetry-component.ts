/**
 * Memory operations in traces and metrics: each of the memory tools, and the recall that fills
 * `{{memory_context}}`, gets a `memory.<operation>` span (child of the calling tool call or
 * execution) and counts in caxton_memory_operations_total / _duration_seconds. Wrapping at the
 * composition root keeps src/memory free of telemetry.
 */
import type { ExecutionMemory } from '../../execution/index.js';
import { endWithError, SpanStatusCode, startSpan, type Metrics, type Tracer } from '../../observability/index.js';
import type { Tool } from '../../tools/index.js';

export interface MemoryTelemetry {
  tracer?: Tracer;
  metrics?: Metrics;
}

async function measured<T>(
  t: MemoryTelemetry,
  operation: string,
  traceparent: string | undefined,
  attrs: Record<string, string>,
  run: () => Promise<T>,
  isError: (v: T) => boolean = () => false,
): Promise<T> {
  const t0 = performance.now();
  const span = t.tracer && startSpan(t.tracer, `memory.${operation}`, traceparent, attrs);
  try {
    const v = await run();
    const failed = isError(v);
    t.metrics?.memoryOperations.inc({ operation, status: failed ? 'error' : 'ok' });
    t.metrics?.memoryOperationDuration.observe({ operation }, (performance.now() - t0) / 1000);
    if (span) {
      if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
    return v;
  } catch (e) {
    t.metrics?.memoryOperations.inc({ operation, status: 'error' });
    if (span) endWithError(span, e);
    throw e;
  }
}

/** The memory tools, each call measured as operation = the tool's name. */
export function instrumentMemoryTools(tools: readonly Tool[], t: MemoryTelemetry): Tool[] {
  if (!t.tracer && !t.metrics) return [...tools];
  return tools.map((tool) => ({
    name: tool.name,
    description: tool.description,
    input_schema: tool.input_schema,
    invoke: (args, ctx) =>
      measured(
        t,
        tool.name,
        ctx.traceparent,
        { 'caxton.agent': ctx.agent },
        () => tool.invoke(args, ctx),
        (r) => r.is_error === true,
      ),
  }));
}

/** Recall (search for `{{memory_context}}`) measured as operation "recall"; remember is fire-and-forget. */
export function instrumentExecutionMemory(m: ExecutionMemory, t: MemoryTelemetry): ExecutionMemory {
  if (!t.tracer && !t.metrics) return m;
  return {
    recall: (def, req) =>
      measured(t, 'recall', req.traceparent, { 'caxton.agent': def.name }, () => m.recall(def, req)),
    remember: (def, req, res) => {
      t.metrics?.memoryOperations.inc({ operation: 'remember', status: 'ok' });
      m.remember(def, req, res);
    },
    settled: () => m.settled(),
  };
}
