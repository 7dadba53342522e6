/**
 * Chat threads per principal: who may list and read which threads of an agent. A thread belongs
 * to the principal that began it (its first turn's); a caller sees its own, an admin may read
 * anyone's (asking for them by `principal`, or `*` for all), and a server without authentication
 * has no owners, so every thread is everyone's. The agent scope is the route policy's (the agent
 * named in the path); this is the one place the ownership rule is decided.
 */
import type { AgentRegistry } from '../agents/agent-registry.js';
import type { Principal } from '../auth/principal.js';
import { readScopeOf } from '../auth/scope-read.js';
import { CaxtonError } from '../shared/errors.js';
import type { HistoryMessage } from './types.js';
import {
  targetOf,
  type ExecutionLog,
  type ExecutionReader,
  type StoredToolCall,
  type ThreadPage,
  type ThreadQuery,
} from './records/index.js';

/** Most earlier turns of a thread given to the model when it is continued (its newest). */
export const HISTORY_TURNS = 50;

/** Anyone's threads (an admin's `principal` filter). */
export const ALL_PRINCIPALS = '*';

export interface ThreadListOptions {
  /** Whose threads: the caller's when absent; another principal's id, or `*`, for an admin. */
  principal?: string | undefined;
  limit?: number | undefined;
  /** A previous page's next_cursor. */
  cursor?: number | undefined;
}

/** One turn of a thread: what was asked, what the agent answered (or the error), and the run that did it. */
export interface ThreadTurn {
  /** The execution's id (its run: GET /api/v1/executions/{id}). */
  run: string;
  request: string;
  answer: string | null;
  status: 'ok' | 'error';
  error: { code: string; message: string } | null;
  tool_calls: StoredToolCall[];
  started_at: string;
  duration_ms: number;
  model: string | null;
  usage: { input_tokens: number; output_tokens: number };
  version: string;
  version_number: number | null;
  /** NAME, or NAME@VERSION when the turn addressed a version. */
  target: string;
}

export interface ThreadView {
  conversation_id: string;
  agent: string;
  principal: string | null;
  turns: ThreadTurn[];
}

/** Whose threads `caller` reads: undefined for everyone's (an admin, or no authentication), else its own id. */
export function threadReaderOf(caller: Principal | undefined): string | undefined {
  return caller === undefined || caller.role === 'admin' ? undefined : caller.id;
}

/**
 * How the execution records narrow for `caller`: its agent scope, and its threads — a chat turn's
 * record (its request, answer, tool calls) is exactly as private as the thread it belongs to, on
 * every surface that reads records (GET /executions, /executions/{id}, /traces/{id}).
 */
export function executionReaderOf(caller: Principal | undefined): ExecutionReader {
  const agents = readScopeOf(caller);
  const owner = threadReaderOf(caller);
  return { ...(agents !== undefined && { agents }), ...(owner !== undefined && { thread_owner: owner }) };
}

/** What of a span decides whether a caller may read it. */
interface TraceSpan {
  span_id: string;
  parent_span_id: string | null;
  attributes: Record<string, unknown>;
}

/**
 * A trace as `caller` may read it: the executions `executionReaderOf` lets it read, and the spans
 * less those of every execution it may not (another principal's thread turn, an agent outside its
 * scope) and everything under them — a span id of a hidden execution is as private as its record.
 */
export async function traceReadBy<S extends TraceSpan>(
  records: ExecutionLog | undefined,
  traceId: string,
  spans: readonly S[],
  caller: Principal | undefined,
): Promise<{ executions: Awaited<ReturnType<ExecutionLog['byTrace']>>; spans: S[]; hidden: number }> {
  if (!records) return { executions: [], spans: [...spans], hidden: 0 };
  const executions = await records.byTrace(traceId, executionReaderOf(caller));
  const readable = new Set(executions.map((e) => e.id));
  const hiddenRuns = new Set((await records.byTrace(traceId)).map((e) => e.id).filter((id) => !readable.has(id)));
  if (hiddenRuns.size === 0) return { executions, spans: [...spans], hidden: 0 };
  const hidden = new Set<string>();
  for (const s of spans) {
    const run = s.attributes['caxton.execution_id'];
    if (typeof run === 'string' && hiddenRuns.has(run)) hidden.add(s.span_id);
  }
  // Spans under a hidden one (model calls, tool calls): until no more are found, however they are ordered.
  for (let grew = true; grew;) {
    grew = false;
    for (const s of spans)
      if (!hidden.has(s.span_id) && s.parent_span_id !== null && hidden.has(s.parent_span_id)) {
        hidden.add(s.span_id);
        grew = true;
      }
  }
  return { executions, spans: spans.filter((s) => !hidden.has(s.span_id)), hidden: hiddenRuns.size };
}

export class ChatThreads {
  readonly #records: ExecutionLog | undefined;
  readonly #registry: Pick<AgentRegistry, 'get'> | undefined;

  /** `registry` spells an agent's name as it was deployed (names are case-insensitive; records hold that spelling). */
  constructor(records: ExecutionLog | undefined, registry?: Pick<AgentRegistry, 'get'>) {
    this.#records = records;
    this.#registry = registry;
  }

  #name(agent: string): string {
    return this.#registry?.get(agent)?.definition.name ?? agent;
  }

  #log(): ExecutionLog {
    if (!this.#records)
      throw new CaxtonError(
        'not_found',
        'chat threads are kept in the execution records, which are disabled ([executions] enabled = false in caxton.toml)',
        { reason: 'executions_disabled' },
      );
    return this.#records;
  }

  /** The principal filter `caller` may use: its own id unless an admin (or no authentication) asks for another's. */
  #owner(caller: Principal | undefined, asked: string | undefined): ThreadQuery['principal'] {
    if (!caller) return asked === undefined || asked === ALL_PRINCIPALS ? undefined : asked;
    if (asked === undefined || asked === caller.id) return caller.id;
    if (threadReaderOf(caller) !== undefined)
      throw new CaxtonError(
        'forbidden',
        `principal: only an admin may read another principal's threads; leave it out to list your own (${caller.id})`,
        { reason: 'not_own_threads', field: 'principal' },
      );
    return asked === ALL_PRINCIPALS ? undefined : asked;
  }

  /** Whether `caller` may read and continue a thread `owner` began: its own, or any for an admin or without authentication. */
  #mayRead(caller: Principal | undefined, owner: string | null): boolean {
    const reader = threadReaderOf(caller);
    return reader === undefined || owner === reader;
  }

  /** A page of `agent`'s threads `caller` may see, newest activity first. */
  list(caller: Principal | undefined, agent: string, opts: ThreadListOptions = {}): Promise<ThreadPage> {
    const principal = this.#owner(caller, opts.principal);
    return this.#log().threads({
      agent: this.#name(agent),
      ...(principal !== undefined && { principal }),
      ...(opts.limit !== undefined && { limit: opts.limit }),
      ...(opts.cursor !== undefined && { before: opts.cursor }),
    });
  }

  /**
   * The earlier turns of a thread `caller` continues, as the model's history (each answered
   * request and its answer; failed turns left out): empty for a new thread, or without execution
   * records. A thread another principal began is refused, so its turns never reach another
   * caller's model, nor that caller's turns its thread.
   */
  async history(caller: Principal | undefined, agent: string, conversation: string): Promise<HistoryMessage[]> {
    if (!this.#records) return [];
    const name = this.#name(agent);
    // The thread's owner is its first turn's; the model is given its newest turns.
    const first = await this.#records.firstOfThread(name, conversation);
    if (!first) return [];
    if (!this.#mayRead(caller, first.principal))
      throw new CaxtonError(
        'forbidden',
        `conversation_id: "${conversation}" is a thread another principal began with agent "${agent}"; start a thread of your own (leave conversation_id out, or give a new one)`,
        { reason: 'not_own_thread', field: 'conversation_id' },
      );
    const history: HistoryMessage[] = [];
    for (const v of await this.#records.thread(name, conversation, HISTORY_TURNS)) {
      if (v.status !== 'ok' || v.answer === null) continue;
      history.push({ role: 'user', content: v.request }, { role: 'assistant', content: v.answer });
    }
    return history;
  }

  /** One thread with its turns; a thread `caller` may not read is not found, as one that does not exist. */
  async get(caller: Principal | undefined, agent: string, conversation: string): Promise<ThreadView> {
    const runs = await this.#log().thread(this.#name(agent), conversation);
    const first = runs[0];
    if (!first || first.shadow || !this.#mayRead(caller, first.principal))
      throw new CaxtonError('not_found', `agent "${agent}" has no thread "${conversation}"`, {
        agent,
        conversation_id: conversation,
      });
    return {
      conversation_id: conversation,
      agent: first.agent,
      principal: first.principal,
      turns: runs.map((v) => ({
        run: v.id,
        request: v.request,
        answer: v.answer,
        status: v.status,
        error: v.error,
        tool_calls: v.tool_calls,
        started_at: v.started_at,
        duration_ms: v.duration_ms,
        model: v.model,
        usage: v.usage,
        version: v.version,
        version_number: v.version_number,
        target: targetOf(v),
      })),
    };
  }
}
