import { conversationVisible, messageVisible, readScopeOf, type Principal } from '../auth/index.js';
import { CaxtonError } from '../shared/errors.js';
import type { BusReads } from './bus-port.js';
import type { BusEvent } from './bus-events.js';

/**
 * The message reads as `reader` may see them (src/auth/scope-read.ts): every surface that shows
 * messages, conversations or dead letters to a caller (REST, the conversation stream, MCP
 * resources) reads through this, on one node or in a cluster alike. Lists are narrowed in their
 * query, so their pages and totals count only what is visible; a single item out of scope is
 * "not found", with the same error as a missing one. Each item is checked again here, so the rule
 * holds even where a store's query and the rule could drift apart.
 */
export function readsFor<R extends Partial<BusReads>>(given: R, reader: Pick<Principal, 'scope'> | undefined): R {
  const agents = readScopeOf(reader);
  if (agents === undefined) return given;
  // Only the reads `given` has are called (a surface may hold just some of them).
  const reads = given as unknown as BusReads;
  const scoped: BusReads = {
    async getConversation(id, opts) {
      const got = await reads.getConversation(id, opts);
      if (!conversationVisible(reader, got.conversation))
        throw new CaxtonError('conversation_not_found', `no conversation with id "${id}"`, { id });
      return { conversation: got.conversation, messages: got.messages.filter((m) => messageVisible(reader, m)) };
    },
    async listConversations(q = {}) {
      const page = await reads.listConversations({ ...q, agents });
      return { total: page.total, items: page.items.filter((c) => conversationVisible(reader, c)) };
    },
    async getMessage(id) {
      const m = await reads.getMessage(id);
      return m && messageVisible(reader, m) ? m : undefined;
    },
    async listMessages(q = {}) {
      const page = await reads.listMessages({ ...q, agents });
      return { total: page.total, items: page.items.filter((m) => messageVisible(reader, m)) };
    },
    async deadLetters(q = {}) {
      const page = await reads.deadLetters({ ...q, agents });
      return {
        total: page.total,
        items: page.items.filter((d) => messageVisible(reader, { message: d.message, routed_to: [d.receiver] })),
      };
    },
    async deadLetter(id) {
      const d = await reads.deadLetter(id);
      const routed = (await reads.getMessage(d.message_id))?.routed_to ?? [];
      if (!messageVisible(reader, { message: d.message, routed_to: [d.receiver, ...routed] }))
        throw new CaxtonError('not_found', `no dead letter with id ${id}`, { id });
      return d;
    },
  };
  return Object.fromEntries(
    Object.entries(scoped).filter(([k]) => typeof (given as Record<string, unknown>)[k] === 'function'),
  ) as R;
}

/**
 * Whether `reader` may hear a bus event (a conversation's stream): a message it may read, or the
 * state of a conversation it may read. A conversation that draws in an agent outside the scope
 * stops being visible from then on.
 */
export function eventVisibleTo(reader: Pick<Principal, 'scope'> | undefined): (e: BusEvent) => boolean {
  if (readScopeOf(reader) === undefined) return () => true;
  return (e) => (e.type === 'message' ? messageVisible(reader, e) : conversationVisible(reader, e.conversation));
}
