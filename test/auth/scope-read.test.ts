/**
 * The read rule itself (src/auth/scope-read.ts) and its memory side (src/memory/scope.ts): which
 * parties count as agents, when a message, conversation or agent is visible, and `agent:NAME`
 * memory needing NAME in the agents scope. test/auth/scope-reads.test.ts drives every surface.
 */
import { describe, expect, it } from 'vitest';
import {
  agentVisible,
  conversationVisible,
  isAgentParty,
  logLinesVisibleTo,
  messageVisible,
} from '../../src/auth/index.js';
import { checkMemoryScope, permittedScopes } from '../../src/memory/index.js';

const reader = (agents?: string[]) => ({ scope: agents === undefined ? {} : { agents } });
const msg = (sender: string, receivers: string[], routed_to: string[] = receivers) => ({
  message: { sender, receivers },
  routed_to,
});

describe('the read rule', () => {
  it('principals, the platform, mcp and user are not agents; every name without ":" else is', () => {
    for (const p of ['key:ci', 'oidc:alice', 'cert:svc', 'local:admin', 'caxton', 'mcp', 'user'])
      expect(isAgentParty(p), p).toBe(false);
    for (const a of ['a-one', 'b-secret', 'Support Bot', 'users']) expect(isAgentParty(a), a).toBe(true);
  });

  it('a message is visible when every agent it names is in scope: sender, receivers and routing', () => {
    const r = reader(['a-*']);
    expect(messageVisible(r, msg('key:ci', ['a-one']))).toBe(true);
    expect(messageVisible(r, msg('a-one', ['key:ci']))).toBe(true);
    expect(messageVisible(r, msg('caxton', ['a-one', 'a-two']))).toBe(true);
    expect(messageVisible(r, msg('b-secret', ['a-one']))).toBe(false);
    expect(messageVisible(r, msg('key:ci', ['a-one', 'b-secret']))).toBe(false);
    // A capability message: no receivers, routed to a provider out of scope.
    expect(messageVisible(r, msg('key:ci', [], ['b-secret']))).toBe(false);
    // Globs are case-sensitive, as for every other scope check.
    expect(messageVisible(r, msg('key:ci', ['A-one']))).toBe(false);
    expect(messageVisible(reader(), msg('b-secret', ['c']))).toBe(true);
    expect(messageVisible(undefined, msg('b-secret', ['c']))).toBe(true);
    expect(messageVisible(reader([]), msg('key:ci', ['a-one']))).toBe(false);
    expect(messageVisible(reader([]), msg('key:ci', ['caxton']))).toBe(true);
  });

  it('a conversation is visible when all its agent participants are; an agent when it is in scope', () => {
    expect(conversationVisible(reader(['a-*']), { participants: ['oidc:bob', 'a-one', 'caxton'] })).toBe(true);
    expect(conversationVisible(reader(['a-*']), { participants: ['oidc:bob', 'a-one', 'b-secret'] })).toBe(false);
    expect(agentVisible(reader(['a-*', 'c']), 'c')).toBe(true);
    expect(agentVisible(reader(['a-*', 'c']), 'cc')).toBe(false);
  });

  it('a log line is visible when every agent it names is; unscoped readers need no filter', () => {
    const visible = logLinesVisibleTo(reader(['a-*']))!;
    expect(visible({ msg: 'server started' })).toBe(true);
    expect(visible({ agent: 'a-one' })).toBe(true);
    expect(visible({ sender: 'a-one', receiver: 'b-secret' })).toBe(false);
    expect(visible({ receiver: ['a-one', 'b-secret'] })).toBe(false);
    expect(logLinesVisibleTo(reader())).toBeUndefined();
  });
});

describe('agent memory and the agents scope', () => {
  const caller = (scope: { agents?: string[]; memory?: string[] }) => ({ id: 'key:t', scope });

  it('agent:NAME needs NAME in the agents scope, besides the memory scopes', () => {
    expect(() => checkMemoryScope(caller({ agents: ['a-*'] }), 'agent:b-secret')).toThrow(
      expect.objectContaining({ code: 'forbidden', details: expect.objectContaining({ reason: 'agent_scope' }) }),
    );
    expect(() => checkMemoryScope(caller({ agents: ['a-*'] }), 'agent:a-one')).not.toThrow();
    expect(() => checkMemoryScope(caller({ agents: ['a-*'] }), 'workspace')).not.toThrow();
    // Memory keys hold the name lower-cased, matched as the globs are written: folding case could
    // reach an agent the glob does not match, so a glob with capitals reaches no agent memory.
    expect(() => checkMemoryScope(caller({ agents: ['A-*'] }), 'agent:a-one')).toThrow(
      expect.objectContaining({ code: 'forbidden' }),
    );
    // Both lists apply.
    expect(() => checkMemoryScope(caller({ agents: ['*'], memory: ['workspace'] }), 'agent:a-one')).toThrow(
      expect.objectContaining({ code: 'forbidden' }),
    );
    expect(() => checkMemoryScope(caller({ agents: ['a-*'], memory: ['agent:*'] }), 'agent:b-secret')).toThrow(
      expect.objectContaining({ code: 'forbidden' }),
    );
    // Without a scope: every scope it may use (permittedScopes), not a refusal.
    expect(() => checkMemoryScope(caller({ agents: ['a-*'] }), undefined)).not.toThrow();
  });

  it('permittedScopes keeps the shared scopes and the agents in scope', () => {
    const all = ['global', 'workspace', 'agent:a-one', 'agent:b-secret'];
    expect(permittedScopes(caller({ agents: ['a-*'] }), all)).toEqual(['global', 'workspace', 'agent:a-one']);
    expect(permittedScopes(caller({ agents: ['a-*'], memory: ['agent:*'] }), all)).toEqual(['agent:a-one']);
    expect(permittedScopes(caller({}), all)).toEqual(all);
    expect(permittedScopes(undefined, all)).toEqual(all);
  });
});
