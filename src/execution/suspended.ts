import type { ChatMessage } from '../llm/types.js';

/**
 * Suspended executions (ADR 0029): an execution that stopped because its model called
 * client-defined tools is kept here — its hidden transcript, with the server-side tool calls and
 * results the client never saw — so that the client's follow-up (its tool results) resumes it
 * exactly. Rows expire (`[execution] suspended_ttl`, default 1 h); a follow-up whose row is gone
 * falls back to rebuilding the conversation from the messages the client sent.
 *
 * An interface so that other stores (PostgreSQL) can stand in for SQLite
 * (sqlite-suspended.ts), and so that other APIs (the Responses API's previous_response_id) can
 * keep their own executions under their own ids.
 */
export interface SuspendedExecution {
  /** The store key: `susp_` + a UUID for chat completions; any unique id for other APIs (a response id). */
  id: string;
  /** The agent the execution ran; a follow-up naming another model does not resume it. */
  agent: string;
  /** The principal (Principal.id) that started it; only that principal may resume it. Absent: unauthenticated. */
  principal?: string;
  /** Every message the model saw, up to the turn that called the client tools (InvokeRequest.transcript). */
  transcript: ChatMessage[];
  /** The ids of the client tool calls awaiting results (unique: Caxton assigns them). */
  pending_call_ids: string[];
  /** ms since the epoch; the row is gone (or ignored) after it. */
  expires_at: number;
}

export interface SuspendedExecutionStore {
  /** How long a row lives when its writer has no other idea (`[execution] suspended_ttl`), ms. */
  readonly ttlMs: number;
  /** Stores (or replaces) a suspended execution; its text is scrubbed of the configured secrets first. */
  save(s: SuspendedExecution): Promise<void>;
  /** The execution under that id, unless absent or expired. */
  get(id: string): Promise<SuspendedExecution | undefined>;
  /** The execution one of whose pending tool calls has that id, unless absent or expired. */
  findByCallId(callId: string): Promise<SuspendedExecution | undefined>;
  /** Forgets it (after it was resumed); absent ids are fine. */
  delete(id: string): Promise<void>;
  close(): void;
}

/** The default `[execution] suspended_ttl`. */
export const DEFAULT_SUSPENDED_TTL_MS = 3_600_000;
