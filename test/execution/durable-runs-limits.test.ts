/**
 * A run resumed with no caller present (at start, after an approval) is charged to its principal's
 * limits and its agent's, as the request that started it was: DurableRuns over a real SQLite
 * journal and the real PrincipalLimiter, with a host whose runs the test holds open. And who may
 * see a run (runs/run-access.ts), the rule every run surface applies.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { AgentDefinition } from '../../src/agents/index.js';
import { limitedError, PrincipalLimiter, type LimitSet } from '../../src/auth/index.js';
import type { Principal } from '../../src/auth/index.js';
import {
  DurableRuns,
  RUNS_MIGRATIONS,
  runVisibleTo,
  SqliteRunJournal,
  type AgentResponse,
  type RunHost,
  type RunRecord,
} from '../../src/execution/index.js';
import { CaxtonError } from '../../src/shared/errors.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { removeTempDirs, tempDir } from './helpers/caxton.js';

afterAll(() => removeTempDirs());

const response = (content: string): AgentResponse =>
  ({
    content,
    agent: 'a',
    execution_id: '',
    finish_reason: 'stop',
    turns: 1,
    provider: 'stub',
    model: 'm',
    usage: { input_tokens: 10, output_tokens: 5 },
    tool_calls: [],
  }) as unknown as AgentResponse;

/** Two runs of key:k1 left unfinished by an earlier process, and one of a key revoked since. */
async function journalWithUnfinished(): Promise<SqliteRunJournal> {
  const db = openDatabase(tempDir('caxton-run-limits-'));
  migrate(db, RUNS_MIGRATIONS);
  const j = new SqliteRunJournal({ db, retentionMs: 60_000 });
  for (const [id, principal] of [
    ['exec_1', 'key:k1'],
    ['exec_2', 'key:k1'],
    ['exec_3', 'key:gone'],
  ] as const) {
    await j.open({ id, key: null, agent: 'a', origin: 'invoke', principal, request: { request: id } });
    await j.append(id, [{ kind: 'tool_start', turn: 1, id: 'c', name: 'calculator' }]);
  }
  return j;
}

describe('a run resumed with no caller present', () => {
  it('counts against its principal: one slot, the second run waits for it; a revoked key ends its run', async () => {
    const journal = await journalWithUnfinished();
    // One clock reading for the whole test: token windows are whole clock minutes, and the two
    // charges must land in one of them to be read back as one sum.
    const at = Date.now();
    const limiter = new PrincipalLimiter({ now: () => at });
    const limits: LimitSet = { concurrent_executions: 1 };
    const running: string[] = [];
    let maxAtOnce = 0;
    const release: Record<string, () => void> = {};
    const host: RunHost = {
      run: async (id) => {
        running.push(id);
        maxAtOnce = Math.max(maxAtOnce, running.length);
        await new Promise<void>((r) => (release[id] = r));
        running.splice(running.indexOf(id), 1);
        return response(`done ${id}`);
      },
      resolve: () => Promise.resolve({ name: 'a' } as AgentDefinition),
      admit: (name, limit) => {
        const r = limiter.beginExecution({
          principalId: limit?.principalId,
          principalLimits: limit?.limits,
          agent: name,
          agentLimits: undefined,
        });
        if (!r.ok) throw limitedError(r);
        return r;
      },
      limitsOf: (principal) => {
        if (principal === 'key:gone')
          throw new CaxtonError('forbidden', `${principal} is no longer valid`, { reason: 'principal_unknown' });
        return limits;
      },
      isIdempotent: () => true,
      audit: () => undefined,
    };
    const runs = new DurableRuns(journal, host);
    expect(await runs.resumeUnfinished()).toBe(3);
    await expect.poll(() => running.length).toBe(1);
    const first = running[0]!;
    // The revoked key's run ends with the reason, having run nothing.
    await expect.poll(async () => (await journal.get('exec_3'))?.run.status).toBe('failed');
    expect((await journal.get('exec_3'))?.run.error?.message).toMatch(/no longer valid/);
    // The other run of key:k1 waits for the slot: still running only the first.
    await new Promise((r) => setTimeout(r, 300));
    expect(running).toEqual([first]);
    release[first]!();
    await expect.poll(() => running.length, { timeout: 5_000 }).toBe(1);
    const second = running[0]!;
    expect(second).not.toBe(first);
    release[second]!();
    await expect.poll(async () => (await journal.get(second))?.run.status, { timeout: 5_000 }).toBe('completed');
    expect((await journal.get(first))?.run.status).toBe('completed');
    expect(maxAtOnce).toBe(1);
    // Both were charged: their tokens count against key:k1 (the second's once its run has ended, which
    // a loaded machine may show a turn after its journal says completed).
    await expect.poll(() => limiter.usage('key:k1', { tokens: 1_000 }).tokens.used, { timeout: 5_000 }).toBe(30);
    runs.stopping();
    journal.close();
  });
});

describe('who sees a run', () => {
  const key = (id: string, role: 'admin' | 'operator'): Principal => ({
    id,
    kind: 'key',
    name: id.slice(4),
    role,
    scope: { agents: ['a*'] },
  });
  const run = (o: Partial<Pick<RunRecord, 'origin' | 'principal'>> & { conversation?: string }) => ({
    agent: 'assistant',
    origin: o.origin ?? ('invoke' as const),
    principal: o.principal ?? 'key:owner',
    request: { request: 'hi', ...(o.conversation !== undefined && { conversation_id: o.conversation }) },
  });

  it("a chat thread's run is as private as the thread; other runs follow the agent scope", () => {
    const owner = key('key:owner', 'operator');
    const peer = key('key:peer', 'operator');
    const admin = key('key:admin', 'admin');
    const thread = run({ conversation: 'conv-1' });
    expect(runVisibleTo(owner, thread)).toBe(true);
    expect(runVisibleTo(peer, thread)).toBe(false);
    expect(runVisibleTo(admin, thread)).toBe(true);
    // Not a thread: a plain invoke, a message's delivery in a FIPA conversation.
    expect(runVisibleTo(peer, run({}))).toBe(true);
    expect(runVisibleTo(peer, run({ origin: 'message', conversation: 'conv-2' }))).toBe(true);
    // Outside the agent scope: nobody scoped sees it.
    expect(runVisibleTo(owner, { ...run({}), agent: 'billing' })).toBe(false);
  });
});
