/**
 * todo.write: Claude Code's TodoWrite. The model keeps its task list by sending the whole list
 * each time; the list is held per execution (so a conversation's later calls see the latest)
 * and returned, as Claude Code confirms it. Lists are bounded in items and size, and forgotten
 * after an hour without a write so a long-running server does not accumulate them.
 */
import { audited, toolError, type AuditedTool } from '../audited.js';
import type { Tool } from '../types.js';
import type { ToolAuditSink } from '../../audit/index.js';

export const TODO_GROUP = 'todo';

export {
  TeamBoard,
  TEAM_LIMITS,
  scopeOf,
  type MemberKey,
  type Team,
  type TeamMember,
  type TeamStore,
  type TeamTask,
} from './teams.js';
export { SqliteTeamStore, TEAM_MIGRATIONS } from './sqlite-team-store.js';
export { teamTools, TEAM_GROUP } from './team-tools.js';

const STATUSES = ['pending', 'in_progress', 'completed'] as const;
type Status = (typeof STATUSES)[number];

export interface Todo {
  content: string;
  status: Status;
  activeForm: string;
}

const MAX_ITEMS = 200;
const MAX_TEXT = 2000;
const MAX_LISTS = 10_000;
const IDLE_MS = 3_600_000;

/** The lists of the running executions. */
export class TodoLists {
  readonly #lists = new Map<string, { todos: Todo[]; at: number }>();

  get(id: string): Todo[] | undefined {
    return this.#lists.get(id)?.todos;
  }

  set(id: string, todos: Todo[]): void {
    const now = Date.now();
    this.#lists.delete(id);
    this.#lists.set(id, { todos, at: now });
    // Oldest first in insertion order: drop the idle ones and any beyond the cap.
    for (const [k, v] of this.#lists) {
      if (this.#lists.size <= MAX_LISTS && now - v.at < IDLE_MS) break;
      this.#lists.delete(k);
    }
  }
}

function parseTodos(v: unknown): Todo[] | string {
  if (!Array.isArray(v)) return '"todos" must be an array of {content, status, activeForm}';
  if (v.length > MAX_ITEMS) return `"todos" has more than ${MAX_ITEMS} items`;
  const out: Todo[] = [];
  for (const [i, t] of v.entries()) {
    if (typeof t !== 'object' || t === null) return `todo ${i + 1} must be an object`;
    const { content, status, activeForm } = t as Record<string, unknown>;
    if (typeof content !== 'string' || content === '' || content.length > MAX_TEXT)
      return `todo ${i + 1}: "content" must be a non-empty string of at most ${MAX_TEXT} characters`;
    if (typeof status !== 'string' || !(STATUSES as readonly string[]).includes(status))
      return `todo ${i + 1}: "status" must be one of ${STATUSES.join(', ')}`;
    if (typeof activeForm !== 'string' || activeForm === '' || activeForm.length > MAX_TEXT)
      return `todo ${i + 1}: "activeForm" must be a non-empty string of at most ${MAX_TEXT} characters`;
    out.push({ content, status: status as Status, activeForm });
  }
  return out;
}

const MARK: Record<Status, string> = { pending: '[ ]', in_progress: '[~]', completed: '[x]' };

export function todoWriteTool(lists: TodoLists): AuditedTool {
  return {
    name: 'todo.write',
    description:
      'Creates and updates the task list of this execution: send the whole updated list each time. Each item has content (imperative: "Run the tests"), activeForm (present continuous: "Running the tests") and status (pending, in_progress, completed); keep one item in_progress at a time.',
    input_schema: {
      type: 'object',
      properties: {
        todos: {
          type: 'array',
          description: 'The updated todo list',
          items: {
            type: 'object',
            properties: {
              content: { type: 'string', minLength: 1 },
              status: { type: 'string', enum: [...STATUSES] },
              activeForm: { type: 'string', minLength: 1 },
            },
            required: ['content', 'status', 'activeForm'],
          },
        },
      },
      required: ['todos'],
    },
    invoke(args, ctx) {
      const todos = parseTodos(args.todos);
      if (typeof todos === 'string') return Promise.resolve(toolError(todos, 'invalid_input'));
      // The conversation when there is one (its turns are separate executions), else the execution.
      const key = ctx.conversation_id !== undefined ? `c:${ctx.conversation_id}` : `e:${ctx.execution_id}`;
      lists.set(key, todos);
      const list =
        todos.length === 0
          ? '(the list is empty)'
          : todos.map((t) => `${MARK[t.status]} ${t.status === 'in_progress' ? t.activeForm : t.content}`).join('\n');
      return Promise.resolve({
        content: `Todos have been modified successfully. Ensure that you continue to use the todo list to track your progress. Please proceed with the current tasks if applicable\n\n${list}`,
      });
    },
  };
}

/** todo.write, audited into `audit`; `lists` holds the lists (one per server). */
export function todoTools(audit: ToolAuditSink | undefined, lists = new TodoLists()): Tool[] {
  return [audited(TODO_GROUP, todoWriteTool(lists), audit)];
}
