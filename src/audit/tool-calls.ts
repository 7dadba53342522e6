/**
 * The tool audit of the calls that never reach a tool server: those an agent's allowlist refuses
 * (outcome `not_allowed`) and those run by tools that do not record their own (built-ins, memory
 * tools, send_message; in worker and process isolation the task reports them to the server). The
 * host registry (src/tools/tool-registry.ts) tells of each through `onRefused` / `onCalled`; the
 * server sets them once at start, when it opens the tool audit (src/server/components/tool-audit-component.ts).
 * The registry is seen here only through the slice below: the audit sits below the tool layer.
 */
import { digestArgs, type ToolAuditRecord, type ToolAuditSink } from './tool-audit.js';
import { auditServerOf } from './tool-groups.js';

/** Who made a call: the slice of a tool call's context the audit records. */
export interface ToolCallIdentity {
  agent: string;
  execution_id?: string | undefined;
  conversation_id?: string | undefined;
  principal?: string | undefined;
}

/** One finished call, as the host registry reports it. */
export interface RegistryCall<C extends ToolCallIdentity> {
  name: string;
  args: Record<string, unknown>;
  ctx: C;
  /** When it started (ms since epoch) and how long it took (µs). */
  started: number;
  duration_us: number;
  outcome: 'ok' | 'error' | 'timeout';
  /** What the model was given (the error, when it failed). */
  result: string;
}

/** The host registry's audit hooks (ToolRegistry's `onRefused`, `onCalled` and `isReserved`). */
export interface AuditedRegistry<C extends ToolCallIdentity> {
  isReserved(name: string): boolean;
  onRefused:
    | ((
        name: string,
        args: Record<string, unknown>,
        ctx: C,
        reason: string,
        outcome?: 'not_allowed' | 'denied',
      ) => void)
    | undefined;
  onCalled: ((call: RegistryCall<C>) => void) | undefined;
}

const enc = new TextEncoder();

type CallFigures = Pick<ToolAuditRecord, 'time' | 'outcome' | 'duration_us' | 'output_bytes'> & { error?: string };

/** Records in `audit` every call `tools` refuses and every call it runs of a tool that does not audit itself. */
export function auditRegistryCalls<C extends ToolCallIdentity>(tools: AuditedRegistry<C>, audit: ToolAuditSink): void {
  const recordCall = (name: string, args: Record<string, unknown>, ctx: C, call: CallFigures) => {
    let input: Uint8Array;
    try {
      input = enc.encode(JSON.stringify(args) ?? '');
    } catch {
      input = new Uint8Array(0);
    }
    audit.record({
      agent: ctx.agent,
      ...(ctx.execution_id && { execution_id: ctx.execution_id }),
      ...(ctx.conversation_id && { conversation_id: ctx.conversation_id }),
      ...(ctx.principal !== undefined && { principal: ctx.principal }),
      // The built-ins are reserved in the host registry (they run in the executor's own).
      server: auditServerOf(name, tools.isReserved(name)),
      tool: name,
      args_digest: digestArgs(input),
      fuel_used: 0,
      memory_bytes: 0,
      input_bytes: input.byteLength,
      ...call,
    });
  };
  // Calls an agent's allowlist refuses never reach a server: the registry reports them here.
  // A permission rule's refusal in a run is `denied`, as the tools record the refusals they make.
  tools.onRefused = (name, args, ctx, reason, outcome = 'not_allowed') =>
    recordCall(name, args, ctx, {
      time: Date.now(),
      outcome,
      error: reason,
      duration_us: 0,
      output_bytes: 0,
    });
  // Built-ins, memory tools and send_message do not record their own calls: the registry tells of each.
  tools.onCalled = (c) =>
    recordCall(c.name, c.args, c.ctx, {
      time: c.started,
      outcome: c.outcome,
      ...(c.outcome !== 'ok' && { error: c.result.slice(0, 1000) }),
      duration_us: c.duration_us,
      output_bytes: enc.encode(c.result).byteLength,
    });
}
