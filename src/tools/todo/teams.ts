/**
 * The shared task lists of agent teams (Claude Code's TeamCreate and TaskCreate/TaskList/TaskGet/
 * TaskUpdate). A team is the agents one lead started for a piece of work: the lead's own execution
 * (its conversation, else the execution) and, for each teammate it started with `Task`, the
 * conversation of that request. Each member is known by the pair (conversation or execution,
 * agent), so the same agent running elsewhere at the same time is not a member, and a member is
 * found without the model naming its team.
 *
 * The access rule is here and only here: a caller reads and changes the task list of the team it is
 * a member of, or, outside any team, a list of its own (a team of one). Lists are bounded in tasks,
 * text and members, and forgotten after an hour without a change, as the todo lists are.
 */
import type { ToolContext } from '../types.js';

export const TASK_STATUSES = ['pending', 'in_progress', 'completed'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export interface TeamTask {
  id: string;
  subject: string;
  description: string;
  activeForm?: string;
  status: TaskStatus;
  owner?: string;
  /** Tasks that cannot start until this one is completed. */
  blocks: string[];
  /** Tasks that must be completed before this one can start. */
  blockedBy: string[];
  metadata?: Record<string, unknown>;
}

export interface TeamMember {
  /** The name the lead gave it (Claude Code's `name`), else its agent name. */
  name: string;
  agent: string;
}

export interface Team {
  readonly id: number;
  /** Absent: the list of one caller outside any team. */
  name?: string;
  description?: string;
  /** The agent that created the team. */
  lead: string;
  members: TeamMember[];
  tasks: Map<string, TeamTask>;
  next: number;
  at: number;
}

/** The bounds of the store; documented in docs/agent-format.md (Agent teams). */
export const TEAM_LIMITS = {
  tasks: 500,
  subject: 500,
  description: 10_000,
  metadata_bytes: 4096,
  links: 100,
  members: 32,
  teams: 10_000,
  name: 64,
  idle_ms: 3_600_000,
} as const;

export const TEAM_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Where a call runs: its conversation when it has one (a conversation's turns are separate executions), else its execution. */
export function scopeOf(ctx: Pick<ToolContext, 'conversation_id' | 'execution_id'>): string {
  return ctx.conversation_id !== undefined ? `c:${ctx.conversation_id}` : `e:${ctx.execution_id}`;
}

/**
 * A member: where it runs, the agent, and the principal it acts for. The principal keeps a caller
 * who learns a teammate's conversation id and invokes the same agent in it from acting in a team
 * another principal's work started (a teammate acts for its lead's principal, as its request does).
 */
const memberKey = (scope: string, agent: string, principal: string | undefined) =>
  `${scope}\u0000${agent}\u0000${principal ?? ''}`;

type Caller = Pick<ToolContext, 'agent' | 'conversation_id' | 'execution_id' | 'principal'>;
const keyOf = (ctx: Caller) => memberKey(scopeOf(ctx), ctx.agent, ctx.principal);

export class TeamBoard {
  readonly #teams = new Map<number, Team>();
  /** (scope, agent) → team id: membership, the only way to a team. */
  readonly #members = new Map<string, number>();
  /** team id → the member keys that lead to it (to forget them with the team). */
  readonly #keys = new Map<number, Set<string>>();
  #nextId = 1;
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** The access rule: the team the caller is a member of, if any. */
  teamOf(ctx: Caller): Team | undefined {
    const id = this.#members.get(keyOf(ctx));
    const team = id === undefined ? undefined : this.#teams.get(id);
    if (team === undefined) return undefined;
    if (this.#now() - team.at >= TEAM_LIMITS.idle_ms) {
      this.#forget(team.id);
      return undefined;
    }
    return team;
  }

  /** The caller's task list: its team's, else its own (made on first use). */
  listOf(ctx: Caller): Team {
    const team = this.teamOf(ctx);
    if (team !== undefined) return team;
    const own: Team = { id: this.#nextId++, lead: ctx.agent, members: [], tasks: new Map(), next: 1, at: this.#now() };
    this.#add(own, keyOf(ctx));
    own.members.push({ name: ctx.agent, agent: ctx.agent });
    return own;
  }

  /** Marks a change (the idle clock restarts). */
  touch(team: Team): void {
    team.at = this.#now();
    // Map order is insertion order: move it last so the oldest are first when trimming.
    this.#teams.delete(team.id);
    this.#teams.set(team.id, team);
  }

  /** Makes the caller lead of team `name`; its own list, if it has one, becomes the team's. An error message when it cannot. */
  create(ctx: Caller, name: string, description?: string): Team | string {
    const current = this.teamOf(ctx);
    if (current?.name !== undefined)
      return this.#isLeadKey(current, ctx)
        ? `Already leading team "${current.name}". A leader can only manage one team at a time: delete it with TeamDelete before creating another.`
        : `This agent is a member of team "${current.name}" and cannot create a team of its own; only its lead creates and deletes it.`;
    const team = current ?? this.listOf(ctx);
    team.name = name;
    if (description !== undefined) team.description = description;
    this.touch(team);
    return team;
  }

  /** Ends the caller's team (lead only); an error message when it cannot. */
  delete(ctx: Caller): Team | string {
    const team = this.teamOf(ctx);
    if (team?.name === undefined)
      return 'No team to delete: this agent leads no team here (create one with TeamCreate).';
    if (!this.#isLeadKey(team, ctx))
      return `Only the lead of team "${team.name}" (${team.lead}) can delete it; a teammate finishes by completing its tasks.`;
    this.#forget(team.id);
    return team;
  }

  /**
   * Adds `agent`, running in conversation `conversation` for `principal`, to `team` as `name`. An
   * error message when the team is full or the name is taken by another agent.
   */
  join(team: Team, member: TeamMember, conversation: string, principal: string | undefined): string | undefined {
    const existing = team.members.find((m) => m.name === member.name);
    if (existing !== undefined && existing.agent !== member.agent)
      return `team "${team.name}" already has a member named "${member.name}" (agent ${existing.agent}); give the teammate another name`;
    if (existing === undefined && team.members.length >= TEAM_LIMITS.members)
      return `team "${team.name}" has ${TEAM_LIMITS.members} members, the most a team may have`;
    if (existing === undefined) team.members.push(member);
    const key = memberKey(`c:${conversation}`, member.agent, principal);
    this.#members.set(key, team.id);
    this.#keys.get(team.id)?.add(key);
    this.touch(team);
    return undefined;
  }

  /** Undoes a join whose request was never delivered. */
  leave(team: Team, member: TeamMember, conversation: string, principal: string | undefined): void {
    const key = memberKey(`c:${conversation}`, member.agent, principal);
    this.#members.delete(key);
    this.#keys.get(team.id)?.delete(key);
    const others = [...(this.#keys.get(team.id) ?? [])].some((k) => k.includes(`\u0000${member.agent}\u0000`));
    if (!others) team.members = team.members.filter((m) => m !== member && m.agent !== member.agent);
  }

  /** Teams held (for tests and status). */
  get size(): number {
    return this.#teams.size;
  }

  #isLeadKey(team: Team, ctx: Caller): boolean {
    return team.lead === ctx.agent && this.#leadKey.get(team.id) === keyOf(ctx);
  }

  readonly #leadKey = new Map<number, string>();

  #add(team: Team, key: string): void {
    this.#teams.set(team.id, team);
    this.#members.set(key, team.id);
    this.#keys.set(team.id, new Set([key]));
    this.#leadKey.set(team.id, key);
    const now = this.#now();
    for (const [id, t] of this.#teams) {
      if (this.#teams.size <= TEAM_LIMITS.teams && now - t.at < TEAM_LIMITS.idle_ms) break;
      this.#forget(id);
    }
  }

  #forget(id: number): void {
    for (const k of this.#keys.get(id) ?? []) this.#members.delete(k);
    this.#keys.delete(id);
    this.#leadKey.delete(id);
    this.#teams.delete(id);
  }
}
