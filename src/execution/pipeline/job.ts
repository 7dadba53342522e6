/**
 * What one execution runs: the job handed to the run stage (in this thread or to a pooled task),
 * with the host tools its agent may call, what memory recalls for it, and the approval rules that
 * apply to it.
 */
import type { AgentDefinition, IsolationMode } from '../../agents/index.js';
import type { ServerConfig } from '../../config/index.js';
import type { ToolRegistry } from '../../tools/index.js';
import { workspacePermissions } from '../../tools/permissions/index.js';
import { agentPermissions, approvalRulesFor, type ApprovalRule } from '../runs/approval.js';
import type { RunContext } from '../runs/index.js';
import type { ExecutionJob, ExecutionMemory, InvokeRequest } from '../types.js';

export interface JobOptions {
  stream?: boolean | undefined;
  shadow?: boolean | undefined;
}

export class JobBuilder {
  readonly #approvals = new WeakMap<AgentDefinition, ApprovalRule[]>();

  constructor(
    private readonly config: ServerConfig,
    private readonly hostTools: ToolRegistry,
  ) {}

  async build(
    id: string,
    def: AgentDefinition,
    req: InvokeRequest,
    opts: JobOptions,
    run: RunContext | undefined,
    isolation: IsolationMode,
    memory: ExecutionMemory | undefined,
  ): Promise<ExecutionJob & Required<Pick<ExecutionJob, 'host_tools'>>> {
    // The host tools the agent may call, fixed for this execution.
    const hostSpecs = this.hostTools.specsFor(def.tools as string[]);
    // Memory (src/memory): what the agent remembers about this request, for {{memory_context}}.
    // (Not for a resumed execution: its transcript already holds the prompts it started with.)
    // A resumed run renders the prompt it started with.
    const replay = run?.replay;
    let memoryContext: string;
    if (replay !== undefined) memoryContext = replay.memory_context ?? '';
    else {
      memoryContext = def.memory.enabled && memory && req.transcript === undefined ? await memory.recall(def, req) : '';
      if (run !== undefined && memoryContext !== '')
        await run.record([{ kind: 'context', memory_context: memoryContext }]);
    }
    const job: ExecutionJob & Required<Pick<ExecutionJob, 'host_tools'>> = {
      execution_id: id,
      definition: def,
      request: req,
      deadline: Date.now() + def.limits.timeout_ms,
      stream: opts.stream === true,
      isolation,
      host_tools: hostSpecs,
    };
    if (memoryContext !== '') job.memory_context = memoryContext;
    if (run !== undefined) {
      job.durable = true;
      if (replay !== undefined) job.replay = replay;
    }
    // A shadow run's tools are refused anyway: nothing of it waits for a person.
    if (opts.shadow !== true) {
      const approvals = this.#approvalsOf(def);
      if (approvals.length > 0) job.approvals = approvals;
    }
    return job;
  }

  /** The approval rules of an agent's definition: the operator's that apply to it, then its own (kept per definition). */
  #approvalsOf(def: AgentDefinition): ApprovalRule[] {
    let rules = this.#approvals.get(def);
    if (rules === undefined) {
      const ws = workspacePermissions(this.config.workspace);
      rules = approvalRulesFor(def.name, this.config.approvals.rules, def.execution.require_approval, ws.root);
      const permissions = agentPermissions(def, ws);
      if (permissions !== undefined) rules.unshift({ tools: [], permissions });
      this.#approvals.set(def, rules);
    }
    return rules;
  }
}
