/**
 * Claude Code's agent teams on a real server: three Claude Code agent files (Markdown, deployed as
 * written) driven by the strict stand-in model over HTTP (Anthropic Messages). The lead creates a
 * team and three tasks (TeamCreate, TaskCreate), starts two teammates with Claude Code's `Task`
 * arguments (prompt, subagent_type, description, name, team_name), each teammate lists the shared
 * tasks, claims one, reads it and completes it (TaskList, TaskUpdate, TaskGet), and the lead
 * completes the last one and lists them all done. The same teammate agent run outside the team
 * sees no tasks and cannot update the team's. The teammates' work travels as FIPA messages: each
 * `Task` is a request in its own conversation, answered by an inform. A lead's team and tasks are
 * there again when the server starts again on its data dir.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anthropicProvider, removeTempDirs, setTestKeys, startCaxton, type Caxton } from './helpers/caxton.js';
import { startLlmStub, type LlmStub, type Reply, type StubHit } from './helpers/llm-stub.js';
import {
  assistantTurns,
  firstUserText,
  messagesOf,
  offeredTools,
  systemPromptOf,
  toolResultsOf,
} from './helpers/wire.js';

let llm: LlmStub;
let cx: Caxton;

const LEAD = `---
name: team-lead
description: Leads a small team through a bug fix
tools: TeamCreate, TeamDelete, TaskCreate, TaskList, TaskUpdate, Task
---
ROLE:lead. You split the work into tasks and start teammates.
`;

const worker = (name: string, extra = '') => `---
name: ${name}
description: Takes one task of the team and does it
tools: TaskList, TaskGet, TaskUpdate${extra}
---
ROLE:${name}. You take the next available task and complete it.
`;

const call = (id: string, name: string, args: Record<string, unknown>) => ({ id, name, arguments: args });

function lead(turn: number): Reply {
  switch (turn) {
    case 0:
      return {
        tool_calls: [
          call('t0', 'team_create', { team_name: 'bugfix', description: 'Fix the parser bug' }),
          call('t1', 'team_task_create', {
            subject: 'Write the failing test',
            description: 'A test that shows the parser bug',
            activeForm: 'Writing the failing test',
          }),
          call('t2', 'team_task_create', {
            subject: 'Fix the parser',
            description: 'Make the failing test pass',
            activeForm: 'Fixing the parser',
          }),
          call('t3', 'team_task_create', { subject: 'Update the changelog', description: 'One line under Fixed' }),
        ],
      };
    case 1:
      return {
        tool_calls: [
          call('s1', 'send_message', {
            description: 'Write the test',
            prompt: 'Take the next available task of the team and complete it.',
            subagent_type: 'worker-a',
            name: 'alice',
            team_name: 'bugfix',
          }),
        ],
      };
    case 2:
      return {
        tool_calls: [
          call('g2', 'send_message', { subagent_type: 'ghost', name: 'casper', prompt: 'Take a task.' }),
          call('s2', 'send_message', {
            description: 'Fix the parser',
            prompt: 'Take the next available task of the team and complete it.',
            subagent_type: 'worker-b',
            name: 'bob',
          }),
        ],
      };
    case 3:
      return {
        tool_calls: [
          call('u3', 'team_task_update', { taskId: '3', owner: 'lead', status: 'completed' }),
          call('l3', 'team_task_list', {}),
        ],
      };
    case 4:
      return { tool_calls: [call('d4', 'team_delete', {})] };
    default:
      return { content: 'The team finished every task.' };
  }
}

/** A teammate: list, claim the lowest unowned pending task, read it, complete it. */
function teammate(hit: StubHit, me: string, turn: number): Reply {
  const results = toolResultsOf(hit);
  if (turn === 0) return { tool_calls: [call('l0', 'team_task_list', {})] };
  if (turn === 1) {
    const free = results[0]!.content.split('\n').find((l) => /^#\d+ \[pending\] [^(]*$/.test(l));
    if (free === undefined) return { content: `nothing to do: ${results[0]!.content}` };
    const id = free.slice(1, free.indexOf(' '));
    return {
      tool_calls: [
        call('c1', 'team_task_update', { taskId: id, owner: me, status: 'in_progress' }),
        call('g1', 'team_task_get', { taskId: id }),
      ],
    };
  }
  if (turn === 2) {
    const id = /^Task #(\d+):/.exec(results[2]!.content)?.[1];
    return { tool_calls: [call('c2', 'team_task_update', { taskId: id, status: 'completed' })] };
  }
  // bob tells alice, by the name the lead gave her, as Claude Code's SendMessage does.
  if (turn === 3 && me === 'bob')
    return {
      tool_calls: [
        call('m3', 'send_message', {
          type: 'message',
          recipient: 'alice',
          content: 'HANDOFF: the parser is fixed',
          summary: 'parser fixed',
        }),
      ],
    };
  return { content: `done: ${results.find((r) => r.id === 'c2')!.content}` };
}

function model(hit: StubHit): Reply {
  const role = /ROLE:([\w-]+)/.exec(systemPromptOf(hit) ?? '')?.[1];
  const turn = assistantTurns(hit);
  if (role === 'lead') return lead(turn);
  const me = role === 'worker-a' ? 'alice' : 'bob';
  // Run outside the team: try to list the tasks and to complete the team's task #2.
  if (firstUserText(hit).includes('OUTSIDE')) {
    if (turn === 0)
      return {
        tool_calls: [
          call('o1', 'team_task_list', {}),
          call('o2', 'team_task_update', { taskId: '2', status: 'completed' }),
        ],
      };
    return { content: 'outside' };
  }
  // A message from a teammate: alice reads the team's list in that conversation too.
  if (firstUserText(hit).includes('HANDOFF')) {
    if (turn === 0) return { tool_calls: [call('h0', 'team_task_list', {})] };
    return { content: `seen: ${toolResultsOf(hit)[0]!.content}` };
  }
  return teammate(hit, me, turn);
}

async function deployMarkdown(text: string): Promise<{ status: number; body: { warnings?: { code: string }[] } }> {
  const res = await fetch(`${cx.url}/api/v1/agents`, {
    method: 'POST',
    headers: { 'content-type': 'text/markdown' },
    body: text,
  });
  return { status: res.status, body: (await res.json()) as { warnings?: { code: string }[] } };
}

beforeAll(async () => {
  setTestKeys();
  llm = await startLlmStub((hit) => model(hit));
  cx = await startCaxton({
    config: { llm: { default_provider: 'claude', providers: { claude: anthropicProvider(llm.url) } } },
  });
  for (const text of [LEAD, worker('worker-a'), worker('worker-b', ', SendMessage')]) {
    const r = await deployMarkdown(text);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect((r.body.warnings ?? []).filter((w) => w.code.includes('tool'))).toEqual([]);
  }
}, 60_000);

afterAll(async () => {
  await cx?.close();
  await llm?.close();
  removeTempDirs();
});

describe('a team of three Claude Code agents', () => {
  it('creates, lists, claims and completes the shared tasks through TaskCreate/TaskList/TaskUpdate', async () => {
    llm.reset();
    const run = await cx.invoke('team-lead', { request: 'Fix the parser bug with a team.' });
    expect(run.status, run.text).toBe(200);
    const hits = llm.hits.filter((h) => h.refused === undefined);
    expect(llm.hits.filter((h) => h.refused !== undefined)).toEqual([]);
    const of = (role: string) => hits.filter((h) => (systemPromptOf(h) ?? '').includes(`ROLE:${role}.`));

    // The lead was offered Claude Code's tools under Caxton's names.
    expect(offeredTools(of('lead')[0]!)).toEqual([
      'send_message',
      'team_create',
      'team_delete',
      'team_task_create',
      'team_task_list',
      'team_task_update',
    ]);
    const leadResults = toolResultsOf(of('lead').at(-1)!);
    const byId = (id: string) => leadResults.find((r) => r.id === id)!;
    expect(byId('t0').content).toContain('Team "bugfix" created');
    expect(byId('t1').content).toBe('Task #1 created successfully: Write the failing test');
    expect(byId('t3').content).toBe('Task #3 created successfully: Update the changelog');

    // Each teammate saw the lead's tasks, took the next free one and completed it.
    const a = of('worker-a');
    expect(toolResultsOf(a[1]!)[0]!.content).toBe(
      '#1 [pending] Write the failing test\n#2 [pending] Fix the parser\n#3 [pending] Update the changelog',
    );
    expect(toolResultsOf(a[2]!).map((r) => r.content)).toEqual([
      '#1 [pending] Write the failing test\n#2 [pending] Fix the parser\n#3 [pending] Update the changelog',
      'Updated task #1 owner, status',
      'Task #1: Write the failing test\nStatus: in_progress\nDescription: A test that shows the parser bug\nActive form: Writing the failing test\nOwner: alice',
    ]);
    expect(toolResultsOf(a[3]!).at(-1)!.content).toBe('Updated task #1 status');
    const b = of('worker-b');
    expect(toolResultsOf(b[1]!)[0]!.content).toBe(
      '#1 [completed] Write the failing test (alice)\n#2 [pending] Fix the parser\n#3 [pending] Update the changelog',
    );
    expect(toolResultsOf(b[3]!).at(-1)!.content).toBe('Updated task #2 status');
    // bob's message reached alice as a FIPA request; she answered from the team's list.
    expect(toolResultsOf(b[4]!).at(-1)!.content).toMatch(
      /\n\[inform\] from worker-a: seen: #1 \[completed\] Write the failing test \(alice\)\n#2 \[completed\] Fix the parser \(bob\)\n#3 \[pending\] Update the changelog$/,
    );
    // A teammate that cannot be started is refused, and the team goes on.
    expect(byId('g2')).toMatchObject({ is_error: true });
    expect(byId('g2').content).toBe('not delivered: no agent named "ghost" is deployed');

    // Task ran the named agents; their answers came back as FIPA informs in the request's conversation.
    expect(byId('s1').content).toMatch(/^conversation conv_\w+ is completed\n/);
    expect(byId('s1').content).toMatch(/\n\[inform\] from worker-a: done: Updated task #1 status$/);
    expect(byId('s2').content).toMatch(/\[inform\] from worker-b: done: Updated task #2 status$/);

    // The lead completed the last task and listed them all done, then ended the team.
    expect(byId('u3').content).toBe('Updated task #3 owner, status');
    expect(byId('l3').content).toBe(
      '#1 [completed] Write the failing test (alice)\n#2 [completed] Fix the parser (bob)\n#3 [completed] Update the changelog (lead)',
    );
    expect(byId('d4').content).toContain('Team "bugfix" deleted');
    expect((run.json as { content: string }).content).toBe('The team finished every task.');

    // Every call is in the tool audit under server "team", by the agent that made it.
    const audit = (await (await fetch(`${cx.url}/api/v1/tools/audit?server=team&limit=100`)).json()) as {
      records: { tool: string; agent: string; outcome: string }[];
    };
    const count = (agent: string, tool: string) =>
      audit.records.filter((x) => x.agent === agent && x.tool === tool && x.outcome === 'ok').length;
    expect(count('team-lead', 'team.task_create')).toBe(3);
    expect(count('worker-a', 'team.task_update')).toBe(2);
    expect(count('worker-b', 'team.task_get')).toBe(1);
  }, 60_000);

  it('the same agent outside the team sees none of its tasks and cannot change them', async () => {
    llm.reset();
    const run = await cx.invoke('worker-b', { request: 'OUTSIDE: list the tasks' });
    expect(run.status, run.text).toBe(200);
    const results = toolResultsOf(llm.hits.at(-1)!);
    expect(results[0]).toMatchObject({ content: 'No tasks found' });
    expect(results[1]).toMatchObject({ content: 'Task not found', is_error: true });
  });

  it('Task with prompt and subagent_type runs the named agent; a team_name the caller is not in is refused', async () => {
    llm.reset();
    await deployMarkdown(`---
name: delegator
description: Delegates one task
tools: Task
---
ROLE:delegator.
`);
    llm.setScript((hit) => {
      const role = /ROLE:([\w-]+)/.exec(systemPromptOf(hit) ?? '')?.[1];
      if (role === 'delegator') {
        if (assistantTurns(hit) === 0)
          return {
            tool_calls: [
              call('x1', 'send_message', { prompt: 'Say hello', subagent_type: 'worker-a', description: 'Greet' }),
              call('x2', 'send_message', { prompt: 'Join', subagent_type: 'worker-a', team_name: 'nope' }),
            ],
          };
        return { content: 'delegated' };
      }
      return { content: 'hello from worker-a' };
    });
    const run = await cx.invoke('delegator', { request: 'go' });
    expect(run.status, run.text).toBe(200);
    const results = toolResultsOf(llm.hits.at(-1)!);
    expect(results[0]!.content).toMatch(/\[inform\] from worker-a: hello from worker-a$/);
    expect(results[1]).toMatchObject({
      content: 'no team named "nope" here: create it with TeamCreate first (its lead starts the teammates)',
      is_error: true,
    });
  });
});

describe('a team across a restart', () => {
  it("the lead's team and tasks are in the data dir: the restarted server answers them in the same conversation", async () => {
    const KEEPER = `---
name: keeper
description: Keeps a task list
tools: TeamCreate, TaskCreate, TaskList
---
ROLE:keeper.
`;
    llm.reset();
    llm.setScript((hit) => {
      // The conversation's earlier turns come with the request: the last message says what to do.
      const last = messagesOf(hit).at(-1)!;
      if (Array.isArray(last.content) && last.content.some((b: { type?: string }) => b.type === 'tool_result'))
        return { content: `seen: ${toolResultsOf(hit).at(-1)!.content}` };
      return JSON.stringify(last.content).includes('MAKE')
        ? {
            tool_calls: [
              call('k0', 'team_create', { team_name: 'keepers' }),
              call('k1', 'team_task_create', { subject: 'Survive a restart', description: 'Still here after' }),
            ],
          }
        : { tool_calls: [call('k2', 'team_task_list', {})] };
    });
    const config = { llm: { default_provider: 'claude', providers: { claude: anthropicProvider(llm.url) } } };
    let server = await startCaxton({ config });
    try {
      const r = await fetch(`${server.url}/api/v1/agents`, {
        method: 'POST',
        headers: { 'content-type': 'text/markdown' },
        body: KEEPER,
      });
      expect(r.status, await r.text()).toBe(201);
      const made = await server.invoke('keeper', { request: 'MAKE the list', conversation_id: 'conv-keep' });
      expect(made.status, made.text).toBe(200);
      expect((made.json as { content: string }).content).toBe('seen: Task #1 created successfully: Survive a restart');
    } finally {
      await server.close();
    }
    server = await startCaxton({ config, dir: server.dir });
    try {
      const listed = await server.invoke('keeper', { request: 'LIST the tasks', conversation_id: 'conv-keep' });
      expect(listed.status, listed.text).toBe(200);
      expect((listed.json as { content: string }).content).toBe('seen: #1 [pending] Survive a restart');
      // Another conversation of the same agent is not in the team, before or after the restart.
      const other = await server.invoke('keeper', { request: 'LIST the tasks', conversation_id: 'conv-other' });
      expect((other.json as { content: string }).content).toBe('seen: No tasks found');
    } finally {
      await server.close();
    }
  }, 60_000);
});
