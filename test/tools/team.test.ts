/**
 * The team tools and their one access rule (src/tools/todo/teams.ts): a caller works on the task
 * list of the team it is a member of — the lead in its own execution or conversation, a teammate in
 * the conversation it was started in — or on a list of its own; never on another team's, whatever
 * it names. Bounds on tasks, text, metadata and members; teams forgotten after an hour idle.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/storage/index.js';
import type { Tool, ToolContext } from '../../src/tools/index.js';
import { SqliteTeamStore, TEAM_LIMITS, TeamBoard, teamTools } from '../../src/tools/todo/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

afterAll(() => removeTempDirs());

function setup(now: () => number = Date.now) {
  const board = new TeamBoard(new SqliteTeamStore(openDatabase(makeTempDir())), now);
  const tools = new Map<string, Tool>(teamTools(board, undefined).map((t) => [t.name, t]));
  const ctx = (
    agent: string,
    where: { conversation?: string; execution?: string },
    principal: string | undefined = 'key:p',
  ): ToolContext => ({
    agent,
    ...(principal !== undefined && { principal }),
    execution_id: where.execution ?? `exec-${agent}`,
    ...(where.conversation !== undefined && { conversation_id: where.conversation }),
    deadline: Date.now() + 60_000,
    signal: new AbortController().signal,
  });
  const run = async (tool: string, c: ToolContext, args: Record<string, unknown> = {}) =>
    tools.get(`team.${tool}`)!.invoke(args, c);
  return { board, ctx, run };
}

const task = (subject: string) => ({ subject, description: `do ${subject}` });

describe('the team tools', () => {
  it('a teammate joined in its conversation shares the lead list; the same agent elsewhere does not', async () => {
    const { board, ctx, run } = setup();
    const lead = ctx('lead', { execution: 'e1' });
    expect((await run('create', lead, { team_name: 'crew' })).content).toContain('Team "crew" created');
    await run('task_create', lead, task('a'));
    const team = (await board.teamOf(lead))!;
    expect(await board.join(team, { name: 'alice', agent: 'worker' }, 'conv-1', 'key:p')).toBeUndefined();
    const mate = ctx('worker', { conversation: 'conv-1' });
    expect((await run('task_list', mate)).content).toBe('#1 [pending] a');
    expect((await run('task_update', mate, { taskId: 1, owner: 'alice' })).content).toBe('Updated task #1 owner');
    // The same agent, run in another conversation or with another execution: not a member.
    for (const other of [ctx('worker', { conversation: 'conv-2' }), ctx('worker', { execution: 'e9' })]) {
      expect((await run('task_list', other)).content).toBe('No tasks found');
      expect(await run('task_update', other, { taskId: '1', status: 'completed' })).toMatchObject({
        content: 'Task not found',
        is_error: true,
      });
    }
    // The same agent in the teammate's conversation acting for another principal (a caller that
    // learned the conversation id and invoked the agent in it) is not a member.
    expect((await run('task_list', ctx('worker', { conversation: 'conv-1' }, 'key:other'))).content).toBe(
      'No tasks found',
    );
    // Another agent in the teammate's conversation is not a member either.
    expect((await run('task_get', ctx('intruder', { conversation: 'conv-1' }), { taskId: '1' })).content).toBe(
      'Task not found',
    );
    expect((await run('task_get', lead, { taskId: '#1' })).content).toContain('Owner: alice');
  });

  it('a teammate whose request was never delivered leaves the team', async () => {
    const { board, ctx, run } = setup();
    const lead = ctx('lead', { execution: 'e1' });
    await run('create', lead, { team_name: 'crew' });
    const team = (await board.teamOf(lead))!;
    const ghost = { name: 'casper', agent: 'ghost' };
    await board.join(team, ghost, 'conv-g', 'key:p');
    expect((await board.teamOf(lead))!.members.map((m) => m.name)).toEqual(['lead', 'casper']);
    await board.leave(team, ghost, 'conv-g', 'key:p');
    expect((await board.teamOf(lead))!.members.map((m) => m.name)).toEqual(['lead']);
    expect((await run('task_list', ctx('ghost', { conversation: 'conv-g' }))).content).toBe('No tasks found');
  });

  it('two leads with the same agent name at once keep two separate lists', async () => {
    const { ctx, run } = setup();
    const one = ctx('lead', { execution: 'e1' });
    const two = ctx('lead', { execution: 'e2' });
    await Promise.all([run('create', one, { team_name: 'crew' }), run('create', two, { team_name: 'crew' })]);
    await Promise.all([run('task_create', one, task('first')), run('task_create', two, task('second'))]);
    expect((await run('task_list', one)).content).toBe('#1 [pending] first');
    expect((await run('task_list', two)).content).toBe('#1 [pending] second');
  });

  it('only the lead deletes its team; a teammate cannot create one; a lead cannot lead two', async () => {
    const { board, ctx, run } = setup();
    const lead = ctx('lead', { conversation: 'c0' });
    await run('create', lead, { team_name: 'crew' });
    expect((await run('create', lead, { team_name: 'other' })).content).toContain('Already leading team "crew"');
    await board.join((await board.teamOf(lead))!, { name: 'w', agent: 'worker' }, 'c1', 'key:p');
    const mate = ctx('worker', { conversation: 'c1' });
    expect((await run('create', mate, { team_name: 'mine' })).content).toContain('member of team "crew"');
    expect((await run('delete', mate)).content).toContain('Only the lead of team "crew" (lead)');
    await run('task_create', mate, task('x'));
    expect((await run('delete', lead)).content).toBe(
      'Team "crew" deleted: its task list (1 tasks) and membership are gone.',
    );
    expect((await run('task_list', mate)).content).toBe('No tasks found');
    expect((await run('delete', lead)).is_error).toBe(true);
  });

  it('keeps dependencies, shows open blockers only, and deletes tasks with their links', async () => {
    const { ctx, run } = setup();
    const me = ctx('solo', { execution: 'e' });
    for (const s of ['a', 'b', 'c']) await run('task_create', me, task(s));
    expect((await run('task_update', me, { taskId: '3', addBlockedBy: ['1', '2'] })).content).toBe(
      'Updated task #3 blockedBy',
    );
    expect((await run('task_list', me)).content).toBe(
      '#1 [pending] a\n#2 [pending] b\n#3 [pending] c [blocked by #1, #2]',
    );
    await run('task_update', me, { taskId: '1', status: 'completed' });
    await run('task_update', me, { taskId: '2', status: 'deleted' });
    expect((await run('task_list', me)).content).toBe('#1 [completed] a\n#3 [pending] c');
    expect((await run('task_get', me, { taskId: '1' })).content).toContain('Blocks: #3');
    expect((await run('task_update', me, { taskId: '3', addBlocks: ['3'] })).content).toBe(
      'task #3 cannot block itself',
    );
    expect((await run('task_update', me, { taskId: '3', addBlocks: ['9'] })).content).toBe('Task #9 not found');
    expect((await run('task_update', me, { taskId: '3', status: 'done' })).content).toBe(
      '"status" must be one of pending, in_progress, completed, deleted',
    );
    expect((await run('task_update', me, { taskId: '3', metadata: { k: 1 } })).content).toBe(
      'Updated task #3 metadata',
    );
    await run('task_update', me, { taskId: '3', metadata: { k: null } });
    expect((await run('task_get', me, { taskId: '3' })).content).not.toContain('Metadata');
  });

  it('bounds the tasks, the text, the metadata and the members, with errors that say what to do', async () => {
    const { board, ctx, run } = setup();
    const me = ctx('solo', { execution: 'e' });
    expect(
      await run('task_create', me, { subject: 'x'.repeat(TEAM_LIMITS.subject + 1), description: 'd' }),
    ).toMatchObject({
      content: `"subject" has ${TEAM_LIMITS.subject + 1} characters; at most ${TEAM_LIMITS.subject} are allowed`,
      is_error: true,
    });
    expect((await run('task_create', me, { subject: 's' })).content).toBe('"description" is required');
    expect((await run('task_create', me, { ...task('m'), metadata: { big: 'x'.repeat(5000) } })).content).toBe(
      `"metadata" is larger than ${TEAM_LIMITS.metadata_bytes} bytes as JSON`,
    );
    for (let i = 0; i < TEAM_LIMITS.tasks; i++) await run('task_create', me, task(`t${i}`));
    expect((await run('task_create', me, task('one more'))).content).toContain(
      `the task list has ${TEAM_LIMITS.tasks} tasks, the most it may hold`,
    );
    const lead = ctx('lead', { execution: 'L' });
    await run('create', lead, { team_name: 'big' });
    const team = (await board.teamOf(lead))!;
    for (let i = 1; i < TEAM_LIMITS.members; i++)
      expect(await board.join(team, { name: `m${i}`, agent: `a${i}` }, `c${i}`, 'key:p')).toBeUndefined();
    expect(await board.join(team, { name: 'late', agent: 'late' }, 'cz', 'key:p')).toBe(
      `team "big" has ${TEAM_LIMITS.members} members, the most a team may have`,
    );
    expect(await board.join(team, { name: 'm1', agent: 'someone-else' }, 'cy', 'key:p')).toContain(
      'already has a member named "m1"',
    );
    expect((await run('create', ctx('x', { execution: 'X' }), { team_name: 'bad name' })).content).toContain(
      'may hold only letters, digits',
    );
  });

  it('forgets a team an hour after its last change', async () => {
    let now = 1_000_000;
    const { ctx, run } = setup(() => now);
    const lead = ctx('lead', { execution: 'e' });
    await run('create', lead, { team_name: 'crew' });
    await run('task_create', lead, task('a'));
    now += TEAM_LIMITS.idle_ms - 1;
    expect((await run('task_list', lead)).content).toBe('#1 [pending] a');
    await run('task_update', lead, { taskId: '1', status: 'in_progress' });
    now += TEAM_LIMITS.idle_ms;
    expect((await run('task_list', lead)).content).toBe('No tasks found');
  });
});
