/**
 * Where the team task lists are kept (the `TeamStore` port of teams.ts), written once for both
 * databases: each change is a generator of SQL statements (`teamChange`), run in one transaction
 * by the single node's SQLite (`SqliteTeamStore`, sqlite-team-store.ts, synchronously) or by a cluster's
 * PostgreSQL (`PgTeamStore`, pg-team-store.ts, statement by statement). The statements use `?`
 * placeholders and the SQL both accept; where they differ (row locks, advisory locks, the schema)
 * the dialect says.
 *
 * Tables: `teams` (one row a list: its name, lead, roster as JSON, next task id, last change),
 * `team_tasks` (one row a task) and `team_memberships` (member key → team). A change loads the team
 * the way the access rule finds it (a member key, or its id, changed after `since`), runs on it,
 * and writes only what differs from what it loaded: the rows of the tasks changed, added or
 * removed, the team's row with the time of the change, and the memberships added or ended.
 */
import type { MemberKey, Team, TeamTask, TeamTx, TeamWork } from './teams.js';

/** What differs between the databases. */
export interface TeamDialect {
  /** A table's name as the statements write it (PostgreSQL: in the cluster schema). */
  table(name: 'teams' | 'team_tasks' | 'team_memberships'): string;
  /** PostgreSQL: lock the team's row, and serialise the changes of one member key (two first calls must not make two lists). */
  pg: boolean;
}

/** One statement of a change; its rows are the generator's next input. */
export interface TeamSql {
  sql: string;
  params: (string | number | null)[];
}

type Row = Record<string, unknown>;
export type Rows = Row[];

const TEAM_COLUMNS = 't.id, t.name, t.description, t.lead, t.lead_scope, t.lead_principal, t.members, t.next, t.at';
const TASK_COLUMNS = 'id, subject, description, active_form, status, owner, blocks, blocked_by, metadata';

/** The columns a task is written with (after team_id and id), also what tells a changed task. */
function taskValues(t: TeamTask): (string | null)[] {
  return [
    t.subject,
    t.description,
    t.activeForm ?? null,
    t.status,
    t.owner ?? null,
    JSON.stringify(t.blocks),
    JSON.stringify(t.blockedBy),
    t.metadata === undefined ? null : JSON.stringify(t.metadata),
  ];
}

/** The team row's columns a change may alter (besides `at`). */
const headerOf = (t: Team) => JSON.stringify([t.name ?? null, t.description ?? null, t.members, t.next]);

function teamOfRow(r: Row): Team {
  return {
    id: String(r.id),
    ...(r.name !== null && { name: String(r.name) }),
    ...(r.description !== null && { description: String(r.description) }),
    lead: String(r.lead),
    leadKey: { scope: String(r.lead_scope), agent: String(r.lead), principal: String(r.lead_principal) },
    members: JSON.parse(String(r.members)) as Team['members'],
    tasks: new Map(),
    next: Number(r.next),
    at: Number(r.at),
  };
}

function taskOfRow(r: Row): TeamTask {
  return {
    id: String(r.id),
    subject: String(r.subject),
    description: String(r.description),
    ...(r.active_form !== null && { activeForm: String(r.active_form) }),
    status: String(r.status) as TeamTask['status'],
    ...(r.owner !== null && { owner: String(r.owner) }),
    blocks: JSON.parse(String(r.blocks)) as string[],
    blockedBy: JSON.parse(String(r.blocked_by)) as string[],
    ...(r.metadata !== null && { metadata: JSON.parse(String(r.metadata)) as Record<string, unknown> }),
  };
}

const keyParams = (k: MemberKey) => [k.scope, k.agent, k.principal];

/** The team a member key or an id leads to, changed after `since`; locked for the change when `lock`. */
function* load(
  d: TeamDialect,
  by: TeamWork<unknown>['by'],
  since: number,
  lock: boolean,
  tasks: boolean,
): Generator<TeamSql, Team | undefined, Rows> {
  const forUpdate = lock && d.pg ? ' FOR UPDATE OF t' : '';
  const rows: Rows =
    'key' in by
      ? yield {
          sql: `SELECT ${TEAM_COLUMNS} FROM ${d.table('team_memberships')} k JOIN ${d.table('teams')} t ON t.id = k.team_id WHERE k.scope = ? AND k.agent = ? AND k.principal = ? AND t.at > ?${forUpdate}`,
          params: [...keyParams(by.key), since],
        }
      : yield {
          sql: `SELECT ${TEAM_COLUMNS} FROM ${d.table('teams')} t WHERE t.id = ? AND t.at > ?${forUpdate}`,
          params: [by.id, since],
        };
  const row = rows[0];
  if (row === undefined) return undefined;
  const team = teamOfRow(row);
  if (tasks) {
    const taskRows: Rows = yield {
      sql: `SELECT ${TASK_COLUMNS} FROM ${d.table('team_tasks')} WHERE team_id = ? ORDER BY id`,
      params: [team.id],
    };
    for (const r of taskRows) team.tasks.set(String(r.id), taskOfRow(r));
  }
  return team;
}

/** Reads the team a member key leads to, with or without its tasks. */
export function* teamRead(
  d: TeamDialect,
  key: MemberKey,
  since: number,
  tasks: boolean,
): Generator<TeamSql, Team | undefined, Rows> {
  return yield* load(d, { key }, since, false, tasks);
}

/** One change (`TeamWork`): load under lock, run, write what differs. */
export function* teamChange<T>(d: TeamDialect, w: TeamWork<T>): Generator<TeamSql, T, Rows> {
  if (d.pg && 'key' in w.by)
    yield {
      sql: 'SELECT pg_advisory_xact_lock(hashtextextended(?, 0))',
      params: [`caxton-team-key:${keyParams(w.by.key).join('\n')}`],
    };
  const found = yield* load(d, w.by, w.since, true, w.tasks);
  let others = 0;
  if (w.others !== undefined && found !== undefined) {
    const rows: Rows = yield {
      sql: `SELECT count(*) AS n FROM ${d.table('team_memberships')} WHERE team_id = ? AND agent = ? AND NOT (scope = ? AND principal = ?)`,
      params: [found.id, w.others.agent, w.others.scope, w.others.principal],
    };
    others = Number(rows[0]?.n ?? 0);
  }
  const before = new Map(
    [...(found?.tasks ?? new Map<string, TeamTask>())].map(([id, t]) => [id, JSON.stringify(taskValues(t))]),
  );
  const header = found === undefined ? undefined : headerOf(found);
  let opened: Team | undefined;
  let dropped = false;
  const links: MemberKey[] = [];
  const unlinks: MemberKey[] = [];
  const tx: TeamTx = {
    open: (team) => {
      opened = team;
      links.push(team.leadKey);
    },
    link: (key) => links.push(key),
    unlink: (key) => unlinks.push(key),
    drop: () => {
      dropped = true;
    },
    others,
  };
  const out = w.run(found, tx);
  const team = opened ?? found;
  if (team === undefined) return out;
  if (dropped) {
    if (found !== undefined) yield { sql: `DELETE FROM ${d.table('teams')} WHERE id = ?`, params: [found.id] };
    return out;
  }
  const writes: TeamSql[] = [];
  for (const [id, t] of team.tasks) {
    const values = taskValues(t);
    const was = before.get(id);
    if (was === JSON.stringify(values)) continue;
    writes.push(
      was === undefined
        ? {
            sql: `INSERT INTO ${d.table('team_tasks')} (team_id, ${TASK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            params: [team.id, Number(id), ...values],
          }
        : {
            sql: `UPDATE ${d.table('team_tasks')} SET subject = ?, description = ?, active_form = ?, status = ?, owner = ?, blocks = ?, blocked_by = ?, metadata = ? WHERE team_id = ? AND id = ?`,
            params: [...values, team.id, Number(id)],
          },
    );
  }
  for (const id of before.keys())
    if (!team.tasks.has(id))
      writes.push({
        sql: `DELETE FROM ${d.table('team_tasks')} WHERE team_id = ? AND id = ?`,
        params: [team.id, Number(id)],
      });
  for (const k of unlinks)
    writes.push({
      sql: `DELETE FROM ${d.table('team_memberships')} WHERE scope = ? AND agent = ? AND principal = ? AND team_id = ?`,
      params: [...keyParams(k), team.id],
    });
  const changed = opened !== undefined || writes.length > 0 || links.length > 0 || headerOf(team) !== header;
  if (!changed) return out;
  team.at = w.now;
  // The team's row first: a new one before the rows that refer to it, an old one locked already.
  if (opened !== undefined)
    yield {
      sql: `INSERT INTO ${d.table('teams')} (id, name, description, lead, lead_scope, lead_principal, members, next, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      params: [
        team.id,
        team.name ?? null,
        team.description ?? null,
        team.lead,
        team.leadKey.scope,
        team.leadKey.principal,
        JSON.stringify(team.members),
        team.next,
        team.at,
      ],
    };
  else
    yield {
      sql: `UPDATE ${d.table('teams')} SET name = ?, description = ?, members = ?, next = ?, at = ? WHERE id = ?`,
      params: [team.name ?? null, team.description ?? null, JSON.stringify(team.members), team.next, team.at, team.id],
    };
  for (const s of writes) yield s;
  // A key may still lead to a list that went idle: it now leads here.
  for (const k of links)
    yield {
      sql: `INSERT INTO ${d.table('team_memberships')} (scope, agent, principal, team_id) VALUES (?, ?, ?, ?) ON CONFLICT (scope, agent, principal) DO UPDATE SET team_id = excluded.team_id`,
      params: [...keyParams(k), team.id],
    };
  return out;
}

/** The idle lists, and the oldest beyond `max` (their tasks and memberships go with them). */
export function* teamSweep(d: TeamDialect, since: number, max: number): Generator<TeamSql, void, Rows> {
  const teams = d.table('teams');
  yield { sql: `DELETE FROM ${teams} WHERE at <= ?`, params: [since] };
  yield {
    sql: `DELETE FROM ${teams} WHERE at < (SELECT at FROM ${teams} ORDER BY at DESC LIMIT 1 OFFSET ?)`,
    params: [max - 1],
  };
}

export function* teamCount(d: TeamDialect, since: number): Generator<TeamSql, number, Rows> {
  const rows: Rows = yield { sql: `SELECT count(*) AS n FROM ${d.table('teams')} WHERE at > ?`, params: [since] };
  return Number(rows[0]?.n ?? 0);
}
