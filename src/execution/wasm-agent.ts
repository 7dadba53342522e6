/**
 * WebAssembly agents (ADR 0058): an agent whose `[wasm]` names a module answers with that module
 * instead of a model. The module runs in the tool sandbox (src/tools/servers) under its own fuel,
 * memory and time limits and speaks the tool ABI (Extism's kernel functions; sdk/c/caxton.h):
 *
 *   input   {"agent", "request", "parameters", "context"?, "conversation_id"?, "message"?, "turn",
 *            "tool_results"?}
 *   output  plain text (the answer), or a JSON object:
 *             {"performative", "content"}  the reply act to a message (content alone for an invoke)
 *             {"tool_calls": [{"name", "arguments"}]}  tools to run; the module is called again
 *                                          with their `tool_results` (at most limits.max_turns calls)
 *
 * Tools run through the same registry, allowlist, audit and spans as a model's calls. The module
 * has no other authority: no HTTP, files or databases of its own.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, resolve, sep } from 'node:path';
import { trace, type Tracer } from '@opentelemetry/api';
import type { AgentDefinition, AgentResolver, WasmLimits, WasmSettings } from '../agents/index.js';
import type { ToolCall } from '../llm/index.js';
import { endWithError, SpanStatusCode, startSpan, traceparentOf } from '../observability/trace-context.js';
import { CaxtonError } from '../shared/errors.js';
import { DEFAULT_WASM_LIMITS } from '../shared/wasm-limits.js';
import { COPY_ROOT } from '../shared/objects.js';
import type { ToolRegistry } from '../tools/index.js';
import { FileAccess } from '../tools/servers/fs-access.js';
import { formatLimit, type ToolLimitCaps } from '../tools/servers/manifest-limits.js';
import { toLimitCaps } from '../tools/servers/manager-types.js';
import { OffThreadSandbox } from '../tools/servers/off-thread.js';
import {
  prepareModule,
  WasmSandbox,
  type CallResult,
  type SandboxGrants,
  type SandboxLimits,
} from '../tools/servers/wasm/index.js';
import { toolContext } from './run-agent.js';
import type { RunStep } from './runs/run-model.js';
import { RefusalTally, RunRecorder, type CallOutcome } from './runs/run-recorder.js';
import type { AgentResponse, ExecutionEvent, ExecutionJob, InvokeMessage, ModelTurn, ToolCallRecord } from './types.js';

/** The `provider` an execution of a WebAssembly agent reports (records, metrics, spans). */
export const WASM_PROVIDER = 'wasm';

/** Largest module a definition may name (the tool package limit). */
const MAX_MODULE_BYTES = 32 * 1024 * 1024;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Nothing granted: a WebAssembly agent reaches the world only through the tools it is allowed. */
const NO_GRANTS: SandboxGrants = {
  hosts: [],
  httpGranted: false,
  files: new FileAccess([]),
  config: new Map(),
};

const wasmLimits = (l: WasmLimits): SandboxLimits => ({
  memoryBytes: l.memory,
  fuel: l.fuel,
  timeoutMs: l.timeout_ms,
  maxInputBytes: l.max_input,
  maxOutputBytes: l.max_output,
  maxStateBytes: l.max_state,
});

const LIMIT_FIELDS: Record<keyof WasmLimits, { field: string; cap: keyof ToolLimitCaps }> = {
  memory: { field: 'memory', cap: 'memory' },
  fuel: { field: 'fuel', cap: 'fuel' },
  timeout_ms: { field: 'timeout', cap: 'timeout_ms' },
  max_input: { field: 'max_input', cap: 'max_input' },
  max_output: { field: 'max_output', cap: 'max_output' },
  max_state: { field: 'max_state', cap: 'max_state' },
};

type Issue = ReturnType<AgentResolver>[number];

/**
 * The deploy-time resolver of `[wasm] module`: finds the file, proves it is WebAssembly the sandbox
 * accepts under the agent's limits and exports the entry point, and records its path and SHA-256
 * in the definition (so new module bytes make a new version). Paths:
 *  - an agents_dir file: relative to the agent file's folder (or absolute): the operator wrote both;
 *  - an API deploy: relative to agents_dir, and it must stay inside it after symlinks are followed,
 *    so a deployer reaches the modules the operator put there and no other file of the server.
 * Limits above the operator's `[tools.limits]` caps are refused, as for a tool manifest.
 */
export function wasmModuleResolver(opts: {
  agentsDir: string;
  caps?: Parameters<typeof toLimitCaps>[0];
}): AgentResolver {
  const caps = opts.caps && toLimitCaps(opts.caps);
  return (def, file, origin) => {
    const w = def.wasm;
    if (!w) return [];
    const issues: Issue[] = [];
    const moduleIssue = (code: string, message: string, suggestion: string): Issue[] => [
      { code, field: 'wasm.module', message, suggestion },
    ];
    const agentsDir = resolve(opts.agentsDir);
    let path: string;
    if (origin === 'file') path = resolve(dirname(resolve(file)), w.module);
    else {
      path = resolve(agentsDir, w.module);
      let real: string;
      let root: string;
      try {
        root = realpathSync(agentsDir);
        real = realpathSync(path);
      } catch {
        return moduleIssue(
          'module_not_found',
          `wasm.module "${w.module}" does not exist in the server's agents_dir (an API-deployed agent's module is resolved against agents_dir)`,
          'copy the .wasm file into agents_dir on every node, and name it relative to that folder',
        );
      }
      if (real !== root && !real.startsWith(root + sep))
        return moduleIssue(
          'module_outside_agents_dir',
          `wasm.module "${w.module}" resolves outside the server's agents_dir; an API-deployed agent may only name a module inside it`,
          'copy the .wasm file into agents_dir and name it relative to that folder',
        );
      path = real;
    }
    let bytes: Uint8Array;
    try {
      const st = statSync(path);
      if (!st.isFile()) throw new Error('not a file');
      if (st.size > MAX_MODULE_BYTES)
        return moduleIssue(
          'module_too_large',
          `wasm.module "${w.module}" is ${st.size} bytes; at most ${MAX_MODULE_BYTES} are accepted`,
          'build the module with -O2 (or strip it)',
        );
      bytes = readFileSync(path);
    } catch {
      return moduleIssue(
        'module_not_found',
        `wasm.module "${w.module}" does not exist${origin === 'file' ? ` (looked for ${path}, relative to the agent file)` : ''}`,
        origin === 'file'
          ? 'build the module, or fix the path: it is relative to the agent file'
          : 'copy the .wasm file into agents_dir on every node, and name it relative to that folder',
      );
    }
    if (caps) {
      for (const [k, { field, cap }] of Object.entries(LIMIT_FIELDS) as [
        keyof WasmLimits,
        (typeof LIMIT_FIELDS)[keyof WasmLimits],
      ][]) {
        const asked = w.limits[k];
        const max = caps[cap] as number;
        if (asked <= max) continue;
        // A default the operator's cap is below is lowered to it; a stated limit above it is refused.
        if (asked === DEFAULT_WASM_LIMITS[k]) {
          w.limits[k] = max;
          continue;
        }
        issues.push({
          code: 'above_operator_cap',
          field: `wasm.${field}`,
          message: `wasm.${field} = ${formatLimit(cap as never, asked)} is above the operator's cap of ${formatLimit(cap as never, max)}`,
          suggestion: `ask for at most ${formatLimit(cap as never, max)}, or have the operator raise [tools.limits] ${field} in caxton.toml`,
        });
      }
      if (issues.length > 0) return issues;
    }
    let prepared;
    try {
      prepared = prepareModule(bytes, wasmLimits(w.limits), w.module);
    } catch (e) {
      return moduleIssue(
        'invalid_module',
        `wasm.module "${w.module}": ${e instanceof Error ? e.message.replace(`${w.module}: `, '') : String(e)}`,
        'build it for wasm32 without WASI (see sdk/c/caxton.h), or fix the path',
      );
    }
    if (!prepared.exports.has(w.entry)) {
      const exports = [...prepared.exports].filter((e) => !e.startsWith('__'));
      return [
        {
          code: 'entry_not_exported',
          field: 'wasm.entry',
          message: `wasm.module "${w.module}" exports no function "${w.entry}" (exports: ${exports.join(', ') || 'none'})`,
          suggestion: `export it (CAXTON_TOOL(${w.entry}) in C), or set wasm.entry to one of the exports`,
        },
      ];
    }
    w.path = path;
    w.digest = prepared.digest;
    return [];
  };
}

interface Loaded {
  sandbox: WasmSandbox | OffThreadSandbox;
  digest: string;
}

/** One module output, read. */
type Output =
  | { kind: 'answer'; performative?: string; content: unknown }
  | { kind: 'tools'; calls: { name: string; arguments: Record<string, unknown> }[] };

/**
 * Runs WebAssembly agents: one sandbox per module digest, entry and limits, kept while the server
 * runs (its `cx_var_set` state with it, on this node only). Calls of a module whose fuel is above
 * `[tools.limits] in_thread_fuel` run on a worker thread of their own, as tool servers' do.
 */
export class WasmAgents {
  readonly #sandboxes = new Map<string, Loaded>();
  readonly #inThreadFuel: number;

  constructor(opts: { inThreadFuel?: number } = {}) {
    this.#inThreadFuel = opts.inThreadFuel ?? 1_000_000;
  }

  #load(def: AgentDefinition, w: WasmSettings): Loaded {
    if (w.path === undefined || w.digest === undefined)
      throw new CaxtonError(
        'invalid_config',
        `agent "${def.name}" names wasm.module "${w.module}", which was never resolved: deploy the agent again`,
        { field: 'wasm.module' },
      );
    const key = `${w.digest}:${w.entry}:${JSON.stringify(w.limits)}`;
    const hit = this.#sandboxes.get(key);
    if (hit) return hit;
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(w.path);
    } catch {
      throw new CaxtonError(
        'invalid_config',
        `agent "${def.name}": its module ${w.path} (wasm.module) can no longer be read; put it back or deploy the agent again`,
        { field: 'wasm.module' },
      );
    }
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest !== w.digest)
      throw new CaxtonError(
        'invalid_config',
        `agent "${def.name}": its module ${w.path} (wasm.module) changed since this version was deployed; deploy the agent again (or save its file) to make the new module a new version`,
        { field: 'wasm.module', digest: w.digest, found: digest },
      );
    const limits = wasmLimits(w.limits);
    const prepared = prepareModule(bytes, limits, basename(w.path));
    const sandbox =
      w.limits.fuel > this.#inThreadFuel
        ? new OffThreadSandbox({
            prepared,
            limits,
            manifestHosts: [],
            operatorHosts: [],
            own: [],
            roots: [],
            databases: [],
            config: [],
          })
        : new WasmSandbox(prepared, limits, NO_GRANTS);
    const loaded = { sandbox, digest };
    this.#sandboxes.set(key, loaded);
    return loaded;
  }

  /**
   * One execution: calls the module, runs the tools it asks for, calls it again with their
   * results, until it answers or `limits.max_turns` calls were made. A durable run (`record`,
   * `job.replay`) journals it as a model's loop is (runs/run-recorder.ts): an output asking for tools
   * is the turn's reply, each call's start and end are steps, and a resumed run calls the module
   * only for the turns it has no output of.
   */
  async run(
    job: ExecutionJob,
    tools: ToolRegistry,
    opts: {
      signal: AbortSignal;
      emit?: (e: ExecutionEvent) => void;
      message?: InvokeMessage | undefined;
      record?: (steps: RunStep[]) => Promise<void>;
    },
  ): Promise<AgentResponse> {
    const started = performance.now();
    const def = job.definition;
    const w = def.wasm!;
    const { sandbox, digest } = this.#load(def, w);
    const req = job.request;
    const emit = opts.emit ?? (() => {});
    const model = `${basename(w.module)}@${digest.slice(0, 12)}`;
    const input: Record<string, unknown> = {
      agent: def.name,
      request: req.request,
      parameters: { ...def.parameters, ...req.parameters },
      ...(req.context !== undefined && { context: req.context }),
      ...(req.conversation_id !== undefined && { conversation_id: req.conversation_id }),
      ...(opts.message && { message: opts.message }),
    };
    const tracer = trace.getTracer('caxton');
    const steps = RunRecorder.of(job, tools, opts.record);
    const records: ToolCallRecord[] = [];
    /** When every call was refused rather than run, the response says so, as for a model's run. */
    const refusals = new RefusalTally();
    const turns: ModelTurn[] = [];
    let fuel = 0;
    let calls = 0;
    let answer: Extract<Output, { kind: 'answer' }> | undefined;
    let turn = 0;
    while (turn < def.limits.max_turns) {
      if (opts.signal.aborted) throw new CaxtonError('cancelled', 'the execution was cancelled');
      turn++;
      let toolCalls: ToolCall[];
      const recorded = steps?.recorded(turn);
      if (recorded !== undefined) {
        // A resumed run: this turn's output was recorded, so the module is not called again.
        toolCalls = recorded.tool_calls;
        turns.push(moduleTurn(turn, model, recorded.latency_ms, toolCalls.length));
      } else {
        input.turn = turn;
        const t0 = performance.now();
        const deadline = Math.min(job.deadline, Date.now() + w.limits.timeout_ms);
        const bytes = enc.encode(JSON.stringify(input));
        const r: CallResult = await sandbox.call(w.entry, bytes, deadline, req.traceparent);
        calls++;
        fuel += r.fuel_used;
        const out = moduleOutput(def.name, w, r);
        const latency_ms = Math.round((performance.now() - t0) * 1000) / 1000;
        turns.push(moduleTurn(turn, model, latency_ms, out.kind === 'tools' ? out.calls.length : 0));
        if (out.kind === 'answer') {
          answer = out;
          break;
        }
        // The module names no ids: the turn and the call's place in it make one, the same on every resume.
        toolCalls = out.calls.map((c, i) => ({ id: `call_${turn}_${i}`, name: c.name, arguments: c.arguments }));
        steps?.replied(turn, {
          content: '',
          tool_calls: toolCalls,
          usage: NO_USAGE,
          finish_reason: 'tool_calls',
          provider: WASM_PROVIDER,
          model,
          latency_ms,
        });
      }
      const results: { name: string; content: string; is_error: boolean }[] = [];
      for (const call of toolCalls) {
        emit({ type: 'tool_call', call, turn });
        // Recorded, interrupted or denied: settled from the journal, not run.
        let done = steps?.reused(turn, call);
        if (done === undefined && steps !== undefined) {
          const gate = steps.approval(turn, call, () => toolContext(job, opts.signal));
          if (gate !== undefined) done = await gate;
        }
        if (done === undefined) {
          const starting = steps?.starting(turn, call);
          if (starting !== undefined) await starting;
          done = await this.#invoke(job, tools, call, tracer, opts.signal);
          steps?.ended(turn, call, done);
        }
        refusals.count(done);
        const { content, is_error, duration_ms } = done;
        records.push({ ...COPY_ROOT, ...call, result: content, is_error, duration_ms });
        emit({ type: 'tool_result', id: call.id, name: call.name, content, is_error, duration_ms });
        results.push({ name: call.name, content, is_error });
      }
      // Committed while the module is called again (RunRecorder.commitBehind says why that is safe).
      steps?.commitBehind();
      input.tool_results = results;
    }
    // The turns' results are on disk before the run's answer is handed back.
    await steps?.commit();
    const active = trace.getActiveSpan();
    if (active?.isRecording())
      active.setAttributes({ 'caxton.wasm.digest': digest, 'caxton.wasm.fuel_used': fuel, 'caxton.wasm.calls': calls });
    const content =
      answer === undefined
        ? ''
        : answer.performative !== undefined && opts.message !== undefined
          ? JSON.stringify({ performative: answer.performative, content: answer.content ?? '' })
          : typeof answer.content === 'string'
            ? answer.content
            : JSON.stringify(answer.content ?? '');
    if (job.stream && content !== '') emit({ type: 'token', text: content });
    return {
      id: `resp_${randomUUID()}`,
      execution_id: job.execution_id,
      agent: def.name,
      ...(req.conversation_id !== undefined && { conversation_id: req.conversation_id }),
      content,
      tool_calls: records,
      usage: { ...NO_USAGE },
      execution_time_ms: Math.round((performance.now() - started) * 1000) / 1000,
      finish_reason: answer === undefined ? 'max_turns' : 'stop',
      provider: WASM_PROVIDER,
      model,
      turns: turn,
      isolation: 'context',
      model_turns: turns,
      ...(refusals.allRefused && { all_tool_calls_refused: true as const }),
    };
  }

  /** Runs one tool call the module asked for, through the registry with the agent's allowlist, in its span. */
  async #invoke(
    job: ExecutionJob,
    tools: ToolRegistry,
    call: ToolCall,
    tracer: Tracer,
    signal: AbortSignal,
  ): Promise<CallOutcome> {
    const def = job.definition;
    const ctx = toolContext(job, signal);
    const span = startSpan(tracer, `tool.call ${call.name}`, job.request.traceparent, () => ({
      'caxton.agent': def.name,
      'caxton.tool': call.name,
    }));
    if (span.isRecording()) ctx.traceparent = traceparentOf(span);
    const t0 = performance.now();
    let res;
    try {
      res = await tools.invoke(def.tools as string[], call.name, call.arguments, ctx);
    } catch (e) {
      endWithError(span, e);
      throw e;
    }
    const is_error = res.is_error === true;
    if (is_error) span.setStatus({ code: SpanStatusCode.ERROR, message: res.content.slice(0, 200) });
    span.end();
    return {
      content: res.content,
      is_error,
      duration_ms: Math.round((performance.now() - t0) * 1000) / 1000,
      ...(res.refused === true && { refused: true as const }),
    };
  }

  /** Drops every sandbox (and ends their workers). */
  close(): void {
    for (const { sandbox } of this.#sandboxes.values()) {
      if (sandbox instanceof OffThreadSandbox) sandbox.close();
      else sandbox.reset();
    }
    this.#sandboxes.clear();
  }
}

const NO_USAGE = Object.freeze({ input_tokens: 0, output_tokens: 0, total_tokens: 0 });

/** One module call as the execution's record shows a model turn. */
function moduleTurn(turn: number, model: string, latency_ms: number, toolCalls: number): ModelTurn {
  return {
    turn,
    provider: WASM_PROVIDER,
    model,
    input_tokens: 0,
    output_tokens: 0,
    latency_ms,
    finish_reason: toolCalls > 0 ? 'tool_calls' : 'stop',
    tool_calls: toolCalls,
  };
}

/** A call's result as an answer or tool calls; a failed call is the execution's error. */
function moduleOutput(agent: string, w: WasmSettings, r: CallResult): Output {
  if (r.outcome !== 'ok') {
    const what = `agent "${agent}"'s module (${w.module}, export "${w.entry}") ended with ${r.outcome}${r.error ? `: ${r.error}` : ''}`;
    throw new CaxtonError(r.outcome === 'timeout' ? 'timeout' : 'tool_error', what, {
      outcome: r.outcome,
      fuel_used: r.fuel_used,
    });
  }
  const text = r.output ? dec.decode(r.output) : '';
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return { kind: 'answer', content: text };
  let obj: unknown;
  try {
    obj = JSON.parse(trimmed);
  } catch {
    return { kind: 'answer', content: text };
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return { kind: 'answer', content: text };
  const o = obj as Record<string, unknown>;
  if (o.tool_calls !== undefined) {
    const calls = Array.isArray(o.tool_calls) ? o.tool_calls : undefined;
    const bad = (i: number | undefined, why: string) =>
      new CaxtonError(
        'tool_error',
        `agent "${agent}"'s module asked for tools wrongly: tool_calls${i === undefined ? '' : `[${i}]`} ${why}`,
        {
          outcome: 'error',
        },
      );
    if (!calls || calls.length === 0) throw bad(undefined, 'must be a non-empty array');
    return {
      kind: 'tools',
      calls: calls.map((c, i) => {
        const call = c as { name?: unknown; arguments?: unknown } | null;
        if (call === null || typeof call !== 'object' || typeof call.name !== 'string' || call.name === '')
          throw bad(i, 'needs a "name"');
        const args = call.arguments ?? {};
        if (args === null || typeof args !== 'object' || Array.isArray(args))
          throw bad(i, '"arguments" must be an object');
        return { name: call.name, arguments: args as Record<string, unknown> };
      }),
    };
  }
  if ('performative' in o || 'content' in o)
    return {
      kind: 'answer',
      ...(typeof o.performative === 'string' && { performative: o.performative }),
      content: o.content,
    };
  return { kind: 'answer', content: text };
}
