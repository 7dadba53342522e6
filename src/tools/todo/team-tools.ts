/**
 * Claude Code's team and task tools over the TeamBoard: team.create (TeamCreate), team.delete
 * (TeamDelete), team.task_create (TaskCreate), team.task_list (TaskList), team.task_get (TaskGet)
 * and team.task_update (TaskUpdate). They take Claude Code's arguments and answer in the words
 * Claude Code's results use where those are known (`Task #1 created successfully: …`,
 * `Updated task #1 status`, `#1 [pending] … (owner) [blocked by #2]`, `No tasks found`), so a model
 * prompted for Claude Code reads them as it would there. Which team a call works on is never an
 * argument: the board finds the caller's team (teams.ts holds that rule).
 */
import { audited, toolError, type AuditedResult, type AuditedTool } from '../audited.js';
import type { Tool } from '../types.js';
import type { ToolAuditSink } from '../../audit/index.js';
import { TASK_STATUSES, TEAM_LIMITS, TEAM_NAME_RE, type Team, type TeamBoard, type TeamTask } from './teams.js';

export const TEAM_GROUP = 'team';

const fail = (content: string): AuditedResult => toolError(content, 'invalid_input');
const bad = (content: string): Promise<AuditedResult> => Promise.resolve(fail(content));

/** A string argument within `max` characters; undefined when absent, an error message when wrong. */
function text(args: Record<string, unknown>, key: string, max: number, required: boolean): string | undefined | Error {
  const v = args[key];
  if (v === undefined || v === null) return required ? new Error(`"${key}" is required`) : undefined;
  if (typeof v !== 'string') return new Error(`"${key}" must be a string`);
  if (required && v.trim() === '') return new Error(`"${key}" must not be empty`);
  // The lists are stored as text, which PostgreSQL (a cluster's store) cannot hold a NUL in.
  if (v.includes('\u0000')) return new Error(`"${key}" must not contain NUL characters`);
  if (v.length > max) return new Error(`"${key}" has ${v.length} characters; at most ${max} are allowed`);
  return v;
}

/** A task id as models send it: "1", 1 or "#1". */
function taskId(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return String(v);
  if (typeof v !== 'string') return undefined;
  const s = v.trim().replace(/^#/, '');
  return /^\d{1,9}$/.test(s) ? String(Number(s)) : undefined;
}

function metadataOf(
  v: unknown,
  base: Record<string, unknown> | undefined,
): Record<string, unknown> | undefined | Error {
  if (v === undefined) return base;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return new Error('"metadata" must be an object');
  const merged: Record<string, unknown> = { ...base };
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (val === null) delete merged[k];
    else merged[k] = val;
  }
  if (Buffer.byteLength(JSON.stringify(merged)) > TEAM_LIMITS.metadata_bytes)
    return new Error(`"metadata" is larger than ${TEAM_LIMITS.metadata_bytes} bytes as JSON`);
  return Object.keys(merged).length > 0 ? merged : undefined;
}

/** The ids of tasks that are not completed among `ids`. */
function open(team: Team, ids: readonly string[]): string[] {
  return ids.filter((id) => team.tasks.get(id)?.status !== 'completed' && team.tasks.has(id));
}

function listLine(team: Team, t: TeamTask): string {
  const blockers = open(team, t.blockedBy);
  return `#${t.id} [${t.status}] ${t.subject}${t.owner !== undefined ? ` (${t.owner})` : ''}${blockers.length > 0 ? ` [blocked by ${blockers.map((b) => `#${b}`).join(', ')}]` : ''}`;
}

function details(team: Team, t: TeamTask): string {
  const lines = [`Task #${t.id}: ${t.subject}`, `Status: ${t.status}`, `Description: ${t.description}`];
  if (t.activeForm !== undefined) lines.push(`Active form: ${t.activeForm}`);
  if (t.owner !== undefined) lines.push(`Owner: ${t.owner}`);
  const blockers = open(team, t.blockedBy);
  if (blockers.length > 0) lines.push(`Blocked by: ${blockers.map((b) => `#${b}`).join(', ')}`);
  if (t.blocks.length > 0) lines.push(`Blocks: ${t.blocks.map((b) => `#${b}`).join(', ')}`);
  if (t.metadata !== undefined) lines.push(`Metadata: ${JSON.stringify(t.metadata)}`);
  return lines.join('\n');
}

function teamCreate(board: TeamBoard): AuditedTool {
  return {
    name: 'team.create',
    description:
      'Creates a team that you lead, with one shared task list. Teammates you then start with the Task tool (give team_name or a name) join it: they see and update the same tasks (TaskCreate, TaskList, TaskGet, TaskUpdate) and can message each other. One team at a time; end it with TeamDelete.',
    input_schema: {
      type: 'object',
      properties: {
        team_name: { type: 'string', description: 'Name for the team (letters, digits, ".", "_", "-")' },
        description: { type: 'string', description: 'What the team is for' },
        agent_type: { type: 'string', description: "The lead's role (kept for Claude Code compatibility)" },
      },
      required: ['team_name'],
    },
    async invoke(args, ctx) {
      const name = text(args, 'team_name', TEAM_LIMITS.name, true);
      if (name instanceof Error || name === undefined) return bad(name?.message ?? '"team_name" is required');
      if (!TEAM_NAME_RE.test(name))
        return bad(
          `"team_name" "${name}" may hold only letters, digits, ".", "_" and "-", starting with a letter or digit`,
        );
      const description = text(args, 'description', TEAM_LIMITS.description, false);
      if (description instanceof Error) return bad(description.message);
      const team = await board.create(ctx, name, description);
      if (typeof team === 'string') return fail(team);
      return {
        content:
          JSON.stringify({ team_name: name, lead_agent: ctx.agent, tasks: team.tasks.size }) +
          `\nTeam "${name}" created; you lead it. Start teammates with Task (subagent_type: the agent, name: what to call it, team_name: "${name}"); they share this task list.`,
      };
    },
  };
}

function teamDelete(board: TeamBoard): AuditedTool {
  return {
    name: 'team.delete',
    description:
      'Ends the team you lead: its shared task list and membership are removed. Call it when the team has finished its work.',
    input_schema: { type: 'object', properties: {} },
    async invoke(_args, ctx) {
      const team = await board.delete(ctx);
      if (typeof team === 'string') return fail(team);
      return {
        content: `Team "${team.name}" deleted: its task list (${team.tasks.size} tasks) and membership are gone.`,
      };
    },
  };
}

function taskCreate(board: TeamBoard): AuditedTool {
  return {
    name: 'team.task_create',
    description:
      'Adds a task to the shared task list (your team\'s, or your own outside a team). Give a short imperative subject ("Run the tests"), a description another agent can act on, and activeForm, the present continuous shown while it is in progress ("Running the tests"). New tasks are pending; set dependencies and owners with TaskUpdate.',
    input_schema: {
      type: 'object',
      properties: {
        subject: { type: 'string', description: 'A brief title for the task' },
        description: { type: 'string', description: 'What needs to be done, with context and acceptance criteria' },
        activeForm: { type: 'string', description: 'Present continuous form shown while in progress' },
        metadata: { type: 'object', description: 'Arbitrary metadata to attach to the task' },
      },
      required: ['subject', 'description'],
    },
    invoke(args, ctx) {
      const subject = text(args, 'subject', TEAM_LIMITS.subject, true);
      if (subject instanceof Error || subject === undefined) return bad(subject?.message ?? '"subject" is required');
      const description = text(args, 'description', TEAM_LIMITS.description, true);
      if (description instanceof Error || description === undefined)
        return bad(description?.message ?? '"description" is required');
      const activeForm = text(args, 'activeForm', TEAM_LIMITS.subject, false);
      if (activeForm instanceof Error) return bad(activeForm.message);
      const metadata = metadataOf(args.metadata, undefined);
      if (metadata instanceof Error) return bad(metadata.message);
      return board.changeList(ctx, (team) => {
        if (team.tasks.size >= TEAM_LIMITS.tasks)
          return fail(
            `the task list has ${TEAM_LIMITS.tasks} tasks, the most it may hold; delete finished ones (TaskUpdate status "deleted") first`,
          );
        const id = String(team.next++);
        team.tasks.set(id, {
          id,
          subject,
          description,
          ...(activeForm !== undefined && { activeForm }),
          status: 'pending',
          blocks: [],
          blockedBy: [],
          ...(metadata !== undefined && { metadata }),
        });
        return { content: `Task #${id} created successfully: ${subject}` };
      });
    },
  };
}

function taskList(board: TeamBoard): AuditedTool {
  return {
    name: 'team.task_list',
    description:
      "Lists every task of the shared task list: id, status, subject, owner and the open tasks blocking it. Available work is pending, has no owner and is not blocked; prefer the lowest id. Use TaskGet for a task's full description.",
    input_schema: { type: 'object', properties: {} },
    idempotent: true,
    async invoke(_args, ctx) {
      const team = await board.teamOf(ctx);
      if (team === undefined || team.tasks.size === 0) return { content: 'No tasks found' };
      return { content: [...team.tasks.values()].map((t) => listLine(team, t)).join('\n') };
    },
  };
}

function taskGet(board: TeamBoard): AuditedTool {
  return {
    name: 'team.task_get',
    description:
      'Reads one task of the shared task list by id: subject, status, description, owner, and what blocks it and what it blocks. Read it before starting or updating the task.',
    input_schema: {
      type: 'object',
      properties: { taskId: { type: 'string', description: 'The id of the task' } },
      required: ['taskId'],
    },
    idempotent: true,
    async invoke(args, ctx) {
      const id = taskId(args.taskId);
      if (id === undefined) return fail('"taskId" must be a task id such as "1"');
      const team = await board.teamOf(ctx);
      const t = team?.tasks.get(id);
      if (team === undefined || t === undefined) return fail('Task not found');
      return { content: details(team, t) };
    },
  };
}

const UPDATE_STATUSES = [...TASK_STATUSES, 'deleted'] as const;

function idList(v: unknown, key: string): string[] | undefined | Error {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) return new Error(`"${key}" must be a list of task ids`);
  if (v.length > TEAM_LIMITS.links) return new Error(`"${key}" has more than ${TEAM_LIMITS.links} ids`);
  const out: string[] = [];
  for (const x of v) {
    const id = taskId(x);
    if (id === undefined) return new Error(`"${key}" holds ${JSON.stringify(x)}, which is not a task id`);
    out.push(id);
  }
  return out;
}

/** A TaskUpdate's arguments, checked. */
interface Change {
  id: string;
  status: (typeof UPDATE_STATUSES)[number] | undefined;
  fields: Partial<Record<'subject' | 'description' | 'activeForm' | 'owner', string>>;
  blocks: string[] | undefined;
  blockedBy: string[] | undefined;
  metadata: unknown;
}

/** Applies a TaskUpdate to the team's list as stored (the board runs it under the list's lock). */
function applyUpdate(team: Team, c: Change): AuditedResult {
  const { id, status, fields, blocks, blockedBy } = c;
  const t = team.tasks.get(id);
  if (t === undefined) return fail('Task not found');
  const metadata = metadataOf(c.metadata, t.metadata);
  if (metadata instanceof Error) return fail(metadata.message);
  for (const other of [...(blocks ?? []), ...(blockedBy ?? [])]) {
    if (other === id) return fail(`task #${id} cannot block itself`);
    if (!team.tasks.has(other)) return fail(`Task #${other} not found`);
  }
  if (status === 'deleted') {
    team.tasks.delete(id);
    for (const o of team.tasks.values()) {
      o.blocks = o.blocks.filter((b) => b !== id);
      o.blockedBy = o.blockedBy.filter((b) => b !== id);
    }
    return { content: `Updated task #${id} deleted` };
  }
  const changed: string[] = [];
  for (const [key, v] of Object.entries(fields) as [keyof typeof fields, string][]) {
    if (t[key] === v) continue;
    if (key === 'owner' && v === '') delete t.owner;
    else t[key] = v;
    changed.push(key);
  }
  if (status !== undefined && status !== t.status) {
    t.status = status;
    changed.push('status');
  }
  if (c.metadata !== undefined) {
    if (metadata === undefined) delete t.metadata;
    else t.metadata = metadata;
    changed.push('metadata');
  }
  const link = (from: TeamTask, list: 'blocks' | 'blockedBy', to: string) => {
    if (!from[list].includes(to)) from[list].push(to);
  };
  for (const b of blocks ?? []) {
    link(t, 'blocks', b);
    link(team.tasks.get(b)!, 'blockedBy', id);
  }
  for (const b of blockedBy ?? []) {
    link(t, 'blockedBy', b);
    link(team.tasks.get(b)!, 'blocks', id);
  }
  if ((blocks ?? []).length > 0) changed.push('blocks');
  if ((blockedBy ?? []).length > 0) changed.push('blockedBy');
  return { content: changed.length === 0 ? `Task #${id} unchanged` : `Updated task #${id} ${changed.join(', ')}` };
}

function taskUpdate(board: TeamBoard): AuditedTool {
  return {
    name: 'team.task_update',
    description:
      'Changes a task of the shared task list: status (pending → in_progress → completed; "deleted" removes it), subject, description, activeForm, owner (claim a task by setting yourself), metadata (a key set to null is removed), and dependencies (addBlocks, addBlockedBy). Mark a task completed only when it is fully done; then call TaskList for the next one.',
    input_schema: {
      type: 'object',
      properties: {
        taskId: { type: 'string', description: 'The id of the task to update' },
        status: { type: 'string', enum: [...UPDATE_STATUSES] },
        subject: { type: 'string' },
        description: { type: 'string' },
        activeForm: { type: 'string' },
        owner: { type: 'string', description: 'The agent that owns the task' },
        metadata: { type: 'object', description: 'Keys to merge into the metadata; null removes a key' },
        addBlocks: {
          type: 'array',
          items: { type: 'string' },
          description: 'Tasks that cannot start until this one is done',
        },
        addBlockedBy: {
          type: 'array',
          items: { type: 'string' },
          description: 'Tasks that must be done before this one',
        },
      },
      required: ['taskId'],
    },
    invoke(args, ctx) {
      const id = taskId(args.taskId);
      if (id === undefined) return bad('"taskId" must be a task id such as "1"');
      const status = args.status;
      if (
        status !== undefined &&
        !(typeof status === 'string' && (UPDATE_STATUSES as readonly string[]).includes(status))
      )
        return bad(`"status" must be one of ${UPDATE_STATUSES.join(', ')}`);
      const fields: Partial<Record<'subject' | 'description' | 'activeForm' | 'owner', string>> = {};
      for (const [key, max, required] of [
        ['subject', TEAM_LIMITS.subject, true],
        ['description', TEAM_LIMITS.description, true],
        ['activeForm', TEAM_LIMITS.subject, false],
        ['owner', TEAM_LIMITS.name * 2, false],
      ] as const) {
        const v = text(args, key, max, false);
        if (v instanceof Error) return bad(v.message);
        if (v !== undefined && required && v.trim() === '') return bad(`"${key}" must not be empty`);
        if (v !== undefined) fields[key] = v;
      }
      const blocks = idList(args.addBlocks, 'addBlocks');
      if (blocks instanceof Error) return bad(blocks.message);
      const blockedBy = idList(args.addBlockedBy, 'addBlockedBy');
      if (blockedBy instanceof Error) return bad(blockedBy.message);
      const change: Change = {
        id,
        status: status as Change['status'],
        fields,
        blocks,
        blockedBy,
        metadata: args.metadata,
      };
      return board.change(ctx, (team) => (team === undefined ? fail('Task not found') : applyUpdate(team, change)));
    },
  };
}

/** The team tools over `board` (one per server), audited into `audit` under server "team". */
export function teamTools(board: TeamBoard, audit: ToolAuditSink | undefined): Tool[] {
  return [teamCreate, teamDelete, taskCreate, taskList, taskGet, taskUpdate].map((make) =>
    audited(TEAM_GROUP, make(board), audit),
  );
}
