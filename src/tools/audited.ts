/**
 * The host's own tool groups (workspace.*, web.*, todo.*) write one tool audit record per call,
 * as tool servers and MCP servers do, so `caxton tool audit --tool-server workspace` shows every file
 * read and every command run whoever called it (an agent in any isolation mode, or the API).
 */
import { createHash } from 'node:crypto';
import type { Tool, ToolContext, ToolResult } from './types.js';
import type { ToolAuditSink } from '../audit/index.js';
import type { CallOutcome } from '../audit/index.js';

/** A tool's result with the outcome the audit records (default: `error` when is_error, else `ok`). */
export interface AuditedResult extends ToolResult {
  outcome?: CallOutcome;
}

export interface AuditedTool extends Omit<Tool, 'invoke'> {
  invoke(args: Record<string, unknown>, ctx: ToolContext): Promise<AuditedResult>;
}

const enc = new TextEncoder();

/** `tool` whose every call is recorded in `sink` under server `group`. */
export function audited(group: string, tool: AuditedTool, sink: ToolAuditSink | undefined): Tool {
  return {
    name: tool.name,
    description: tool.description,
    input_schema: tool.input_schema,
    audits: true,
    async invoke(args, ctx) {
      const started = Date.now();
      const t0 = performance.now();
      const record = (outcome: CallOutcome, output: string, error?: string) => {
        if (!sink) return;
        const input = enc.encode(JSON.stringify(args));
        sink.record({
          time: started,
          agent: ctx.agent,
          execution_id: ctx.execution_id,
          ...(ctx.conversation_id !== undefined && { conversation_id: ctx.conversation_id }),
          ...(ctx.principal !== undefined && { principal: ctx.principal }),
          server: group,
          tool: tool.name,
          args_digest: createHash('sha256').update(input).digest('hex'),
          outcome,
          ...(error !== undefined && { error: error.slice(0, 1000) }),
          duration_us: Math.round((performance.now() - t0) * 1000),
          fuel_used: 0,
          memory_bytes: 0,
          input_bytes: input.byteLength,
          output_bytes: enc.encode(output).byteLength,
        });
      };
      let r: AuditedResult;
      try {
        r = await tool.invoke(args, ctx);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        record(
          ctx.signal.aborted ? 'timeout' : 'error',
          '',
          ctx.signal.aborted ? 'cancelled: the execution was cancelled or timed out' : msg,
        );
        throw e;
      }
      const outcome = r.outcome ?? (r.is_error === true ? 'error' : 'ok');
      record(outcome, r.content, outcome === 'ok' ? undefined : r.content);
      if (outcome === 'denied') return { content: r.content, is_error: true, refused: true };
      return {
        content: r.content,
        ...(r.is_error === true && { is_error: true }),
        ...(r.files !== undefined && { files: r.files }),
      };
    },
  };
}

/** An error result with its audit outcome. */
export function toolError(content: string, outcome: CallOutcome = 'error'): AuditedResult {
  return { content, is_error: true, outcome };
}
