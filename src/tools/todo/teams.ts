/**
 * The shared task lists of agent teams (Claude Code's TeamCreate and TaskCreate/TaskList/TaskGet/
 * TaskUpdate). A team is the agents one lead started for a piece of work: the lead's own execution
 * (its conversation, else the execution) and, for each teammate it started with `Task`, the
 * conversation of that request. Each member is known by the key (conversation or execution, agent,
 * principal), so the same agent running elsewhere at the same time is not a member, and a member is
 * found without the model naming its team.
 *
 * The access rule is here and only here: a caller reads and changes the task list of the team it is
 * a member of, or, outside any team, a list of its own (a team of one). Lists are bounded in tasks,
 * text and members, and forgotten after an hour without a change, as the todo lists are. The lists
 * themselves are kept by a `TeamStore` (team-store.ts: the server's SQLite; pg-team-store.ts: a
 * cluster's PostgreSQL, shared by its nodes): every change runs on the list as stored, under its
 * lock, so two agents changing one list at once both keep their change.
 */
import { randomUUID } from 'node:crypto';
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

/** A member: where it runs (`c:CONVERSATION` or `e:EXECUTION`), the agent, and the principal it acts for ('' for none). */
export interface MemberKey {
  scope: string;
  agent: string;
  principal: string;
}

export interface Team {
  readonly id: string;
  /** Absent: the list of one caller outside any team. */
  name?: string;
  description?: string;
  /** The agent that created the team. */
  readonly lead: string;
  /** The lead's member key: only a call there deletes the team. */
  readonly leadKey: MemberKey;
  members: TeamMember[];
  /** The tasks in id order (empty when the store was asked for the team without them). */
  tasks: Map<string, TeamTask>;
  /** The id the next task gets. */
  next: number;
  /** When it last changed (ms): a list unchanged for TEAM_LIMITS.idle_ms is gone. */
  at: number;
}

/** What a change may do besides changing the team it is given; the store writes it with the change. */
export interface TeamTx {
  /** Makes `team` (new) the one the change works on, reached from its lead key. */
  open(team: Team): void;
  /** Makes `key` a member of the team. */
  link(key: MemberKey): void;
  /** Ends `key`'s membership of the team. */
  unlink(key: MemberKey): void;
  /** Removes the team, its tasks and every membership of it. */
  drop(): void;
  /** With `others` asked: how many member keys of that agent, other than that key, lead to the team. */
  readonly others: number;
}

/** One change of a team, run by the store in one transaction on the team as stored, under its lock. */
export interface TeamWork<T> {
  /** The team: the one a member key leads to, or one by id. */
  by: { key: MemberKey } | { id: string };
  /** A team last changed at or before this (ms) is gone. */
  since: number;
  /** The time the change records. */
  now: number;
  /** Whether `run` reads the tasks (a change of membership does not). */
  tasks: boolean;
  /** Asks `TeamTx.others` for this key's agent. */
  others?: MemberKey;
  /** The change, on the team (undefined: none, or gone); the store writes what it changed (nothing changed: nothing written). */
  run(team: Team | undefined, tx: TeamTx): T;
}

/**
 * Where the lists are kept. `work` runs a change under the team's lock, so concurrent changes of
 * one team are applied one after the other, each on what the last one stored.
 */
export interface TeamStore {
  /** The team `key` is a member of, changed after `since`. */
  find(key: MemberKey, since: number, tasks: boolean): Promise<Team | undefined>;
  work<T>(w: TeamWork<T>): Promise<T>;
  /** Removes the teams changed at or before `since`, and the oldest beyond `max`. */
  sweep(since: number, max: number): Promise<void>;
  /** Teams changed after `since`. */
  count(since: number): Promise<number>;
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

type Caller = Pick<ToolContext, 'agent' | 'conversation_id' | 'execution_id' | 'principal'>;

/**
 * A member's key: where it runs, the agent, and the principal it acts for. The principal keeps a
 * caller who learns a teammate's conversation id and invokes the same agent in it from acting in a
 * team another principal's work started (a teammate acts for its lead's principal, as its request does).
 */
export const keyOf = (ctx: Caller): MemberKey => ({
  scope: scopeOf(ctx),
  agent: ctx.agent,
  principal: ctx.principal ?? '',
});

const sameKey = (a: MemberKey, b: MemberKey) =>
  a.scope === b.scope && a.agent === b.agent && a.principal === b.principal;

export class TeamBoard {
  readonly #store: TeamStore;
  readonly #now: () => number;

  constructor(store: TeamStore, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
  }

  /** The access rule: the team the caller is a member of, if any (`tasks`: with its tasks). */
  teamOf(ctx: Caller, tasks = true): Promise<Team | undefined> {
    return this.#store.find(keyOf(ctx), this.#now() - TEAM_LIMITS.idle_ms, tasks);
  }

  /** Runs `fn` on the caller's team (undefined: it has none) and stores what it changed. */
  change<T>(ctx: Caller, fn: (team: Team | undefined) => T): Promise<T> {
    return this.#work({ by: { key: keyOf(ctx) }, tasks: true, run: (team) => fn(team) });
  }

  /** Runs `fn` on the caller's task list: its team's, else its own (made now), and stores what it changed. */
  async changeList<T>(ctx: Caller, fn: (team: Team) => T): Promise<T> {
    const key = keyOf(ctx);
    let opened = false;
    const out = await this.#work({
      by: { key },
      tasks: true,
      run: (team, tx) => {
        if (team !== undefined) return fn(team);
        const own: Team = {
          id: randomUUID(),
          lead: ctx.agent,
          leadKey: key,
          members: [{ name: ctx.agent, agent: ctx.agent }],
          tasks: new Map(),
          next: 1,
          at: this.#now(),
        };
        tx.open(own);
        opened = true;
        return fn(own);
      },
    });
    // A new list is when the store sheds the idle ones and any beyond the bound. Reads never see
    // an idle list whether or not this ran (the idle rule is part of every lookup), so a sweep that
    // failed (a cluster's PostgreSQL out of reach for a moment) is left to the next new list.
    if (opened) await this.#store.sweep(this.#now() - TEAM_LIMITS.idle_ms, TEAM_LIMITS.teams).catch(() => undefined);
    return out;
  }

  /** Makes the caller lead of team `name`; its own list, if it has one, becomes the team's. An error message when it cannot. */
  create(ctx: Caller, name: string, description?: string): Promise<Team | string> {
    return this.changeList(ctx, (team) => {
      if (team.name !== undefined)
        return this.#isLead(team, ctx)
          ? `Already leading team "${team.name}". A leader can only manage one team at a time: delete it with TeamDelete before creating another.`
          : `This agent is a member of team "${team.name}" and cannot create a team of its own; only its lead creates and deletes it.`;
      team.name = name;
      if (description !== undefined) team.description = description;
      return team;
    });
  }

  /** Ends the caller's team (lead only); an error message when it cannot. */
  delete(ctx: Caller): Promise<Team | string> {
    return this.#work({
      by: { key: keyOf(ctx) },
      tasks: true,
      run: (team, tx) => {
        if (team?.name === undefined)
          return 'No team to delete: this agent leads no team here (create one with TeamCreate).';
        if (!this.#isLead(team, ctx))
          return `Only the lead of team "${team.name}" (${team.lead}) can delete it; a teammate finishes by completing its tasks.`;
        tx.drop();
        return team;
      },
    });
  }

  /**
   * Adds `agent`, running in conversation `conversation` for `principal`, to `team` as `name`. An
   * error message when the team is full or gone, or the name is taken by another agent.
   */
  join(
    team: Team,
    member: TeamMember,
    conversation: string,
    principal: string | undefined,
  ): Promise<string | undefined> {
    if (member.name.length > TEAM_LIMITS.name || member.name.includes('\u0000'))
      return Promise.resolve(
        `a teammate's name has at most ${TEAM_LIMITS.name} characters and no NUL characters; give a shorter "name"`,
      );
    return this.#work({
      by: { id: team.id },
      tasks: false,
      run: (t, tx) => {
        if (t === undefined)
          return `team "${team.name}" has ended (deleted, or an hour without a change); create it again with TeamCreate`;
        const existing = t.members.find((m) => m.name === member.name);
        if (existing !== undefined && existing.agent !== member.agent)
          return `team "${t.name}" already has a member named "${member.name}" (agent ${existing.agent}); give the teammate another name`;
        if (existing === undefined && t.members.length >= TEAM_LIMITS.members)
          return `team "${t.name}" has ${TEAM_LIMITS.members} members, the most a team may have`;
        if (existing === undefined) t.members.push(member);
        tx.link({ scope: `c:${conversation}`, agent: member.agent, principal: principal ?? '' });
        return undefined;
      },
    });
  }

  /** Undoes a join whose request was never delivered. */
  async leave(team: Team, member: TeamMember, conversation: string, principal: string | undefined): Promise<void> {
    const key = { scope: `c:${conversation}`, agent: member.agent, principal: principal ?? '' };
    await this.#work({
      by: { id: team.id },
      tasks: false,
      others: key,
      run: (t, tx) => {
        if (t === undefined) return;
        tx.unlink(key);
        if (tx.others === 0) t.members = t.members.filter((m) => m.agent !== member.agent);
      },
    });
  }

  /** Teams held (for tests and status). */
  size(): Promise<number> {
    return this.#store.count(this.#now() - TEAM_LIMITS.idle_ms);
  }

  #work<T>(w: Omit<TeamWork<T>, 'since' | 'now'>): Promise<T> {
    const now = this.#now();
    return this.#store.work({ ...w, since: now - TEAM_LIMITS.idle_ms, now });
  }

  #isLead(team: Team, ctx: Caller): boolean {
    return sameKey(team.leadKey, keyOf(ctx));
  }
}
