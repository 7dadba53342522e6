/**
 * A durable run seen as an A2A task: the task id is the run id, the context id the run's
 * conversation (a chat thread), its state the run's status (a run waiting for a person is
 * input-required), its artifacts the final answer and the files it wrote (files.ts). The events a follower of the run is sent are
 * made here too, from the steps the run commits.
 */
import { Role, TaskState } from '@a2a-js/sdk';
import type { Artifact, Message, Part, StreamResponse, Task, TaskStatus } from '@a2a-js/sdk';
import { approvalsOf, type RunRecord, type RunStatus, type RunStep } from '../execution/index.js';

export const TASK_STATE_OF: Readonly<Record<RunStatus, TaskState>> = {
  running: TaskState.TASK_STATE_WORKING,
  awaiting_approval: TaskState.TASK_STATE_INPUT_REQUIRED,
  completed: TaskState.TASK_STATE_COMPLETED,
  failed: TaskState.TASK_STATE_FAILED,
  cancelled: TaskState.TASK_STATE_CANCELED,
};

/** The run statuses a task state filter (ListTasks `status`) selects. */
export function runStatusOf(state: TaskState): RunStatus | undefined {
  for (const [status, s] of Object.entries(TASK_STATE_OF)) if (s === state) return status as RunStatus;
  return undefined;
}

/** Statuses after which a run changes no more. */
export const ENDED: ReadonlySet<RunStatus> = new Set(['completed', 'failed', 'cancelled']);

/** A follower stops at these: the run has ended, or waits for the client's answer. */
export const STOPS: ReadonlySet<RunStatus> = new Set([...ENDED, 'awaiting_approval']);

export const textPart = (text: string): Part => ({
  content: { $case: 'text', value: text },
  metadata: undefined,
  filename: '',
  mediaType: 'text/plain',
});

export const dataPart = (value: unknown): Part => ({
  content: { $case: 'data', value },
  metadata: undefined,
  filename: '',
  mediaType: 'application/json',
});

export function agentMessage(run: RunRecord, id: string, parts: Part[]): Message {
  return {
    messageId: `${run.id}:${id}`,
    contextId: contextOf(run),
    taskId: run.id,
    role: Role.ROLE_AGENT,
    parts,
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}

/** A run's context: its conversation; a run started without one (outside A2A) is its own context. */
export const contextOf = (run: RunRecord): string => run.request.conversation_id ?? run.id;

/** The calls a run waits on, as its input-required message tells them. */
export function waitingCalls(steps: readonly RunStep[]): { call_id: string; tool: string; arguments: unknown }[] {
  return approvalsOf([...steps])
    .filter((a) => a.decision === null)
    .map((a) => ({ call_id: a.call_id, tool: a.tool, arguments: a.arguments }));
}

/** The status message: what the run waits on, or why it failed. */
function statusMessage(run: RunRecord, steps: readonly RunStep[] | undefined): Message | undefined {
  if (run.status === 'awaiting_approval') {
    const waiting = steps === undefined ? [] : waitingCalls(steps);
    const named = waiting.map((w) => `${w.tool} (call ${w.call_id})`).join(', ') || 'a tool call';
    return agentMessage(run, `waiting-${waiting.map((w) => w.call_id).join('-')}`, [
      textPart(
        `waiting for approval of ${named}: reply "approve" or "deny" (a reason may follow), or decide in Caxton (caxton runs approve ${run.id})`,
      ),
      dataPart({ waiting }),
    ]);
  }
  if ((run.status === 'failed' || run.status === 'cancelled') && run.error !== null)
    return agentMessage(run, 'error', [textPart(`${run.error.code}: ${run.error.message}`), dataPart(run.error)]);
  return undefined;
}

export function statusOf(run: RunRecord, steps?: readonly RunStep[]): TaskStatus {
  return {
    state: TASK_STATE_OF[run.status],
    message: statusMessage(run, steps),
    timestamp: new Date(run.updated_at).toISOString(),
  };
}

/** The final answer of a completed run. */
export function answerArtifact(run: RunRecord): Artifact | undefined {
  if (run.status !== 'completed' || run.response === null) return undefined;
  return {
    artifactId: 'answer',
    name: 'answer',
    description: "the agent's final answer",
    parts: [textPart(run.response.content)],
    metadata: undefined,
    extensions: [],
  };
}

function userMessage(run: RunRecord): Message {
  return {
    messageId: `${run.id}:request`,
    contextId: contextOf(run),
    taskId: run.id,
    role: Role.ROLE_USER,
    parts: [textPart(run.request.request)],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}

/**
 * The task a run is; `historyLength` 0 leaves the history out, N keeps the newest N messages;
 * `files` is the artifact of the files it wrote (filesArtifact), after the answer.
 */
export function taskOf(run: RunRecord, steps?: readonly RunStep[], historyLength?: number, files?: Artifact): Task {
  const history = [userMessage(run)];
  const answer = answerArtifact(run);
  if (answer !== undefined) history.push(agentMessage(run, 'answer', answer.parts));
  return {
    id: run.id,
    contextId: contextOf(run),
    status: statusOf(run, steps),
    artifacts: [answer, files].filter((a): a is Artifact => a !== undefined),
    history: historyLength === undefined ? history : historyLength <= 0 ? [] : history.slice(-historyLength),
    metadata: { agent: run.agent, origin: run.origin, ...(run.version !== null && { version: run.version }) },
  };
}

const working = (run: RunRecord, id: string, parts: Part[]): StreamResponse => ({
  payload: {
    $case: 'statusUpdate',
    value: {
      taskId: run.id,
      contextId: contextOf(run),
      status: {
        state: TaskState.TASK_STATE_WORKING,
        message: agentMessage(run, id, parts),
        timestamp: new Date().toISOString(),
      },
      metadata: undefined,
    },
  },
});

/** What one committed step tells a follower: the tools the model called, their answers, a decision taken. */
export function stepEvents(run: RunRecord, step: RunStep, index: number): StreamResponse[] {
  switch (step.kind) {
    case 'model':
      return step.reply.tool_calls.map((c, i) =>
        working(run, `step-${index}-${i}`, [
          textPart(`calling ${c.name}`),
          dataPart({ step: 'tool_call', tool: c.name, call_id: c.id, arguments: c.arguments }),
        ]),
      );
    case 'tool_end':
      return [
        working(run, `step-${index}`, [
          textPart(`${step.name} ${step.is_error ? 'failed' : 'answered'}`),
          dataPart({
            step: 'tool_end',
            tool: step.name,
            call_id: step.id,
            is_error: step.is_error,
            duration_ms: step.duration_ms,
          }),
        ]),
      ];
    case 'approval':
      return [
        working(run, `step-${index}`, [
          textPart(`${step.decision} by ${step.by}`),
          dataPart({ step: 'approval', call_id: step.id, decision: step.decision, by: step.by }),
        ]),
      ];
    default:
      return [];
  }
}

/** The events that close a followed run's stream: its answer and files, then its final (or input-required) status. */
export function endEvents(run: RunRecord, steps: readonly RunStep[], files?: Artifact): StreamResponse[] {
  const out: StreamResponse[] = [];
  for (const artifact of [answerArtifact(run), files])
    if (artifact !== undefined)
      out.push({
        payload: {
          $case: 'artifactUpdate',
          value: {
            taskId: run.id,
            contextId: contextOf(run),
            artifact,
            append: false,
            lastChunk: true,
            metadata: undefined,
          },
        },
      });
  out.push({
    payload: {
      $case: 'statusUpdate',
      value: { taskId: run.id, contextId: contextOf(run), status: statusOf(run, steps), metadata: undefined },
    },
  });
  return out;
}
