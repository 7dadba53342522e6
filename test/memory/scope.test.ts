import { describe, expect, it } from 'vitest';
import {
  agentScope,
  checkMemoryScope,
  parseScope,
  permittedScopes,
  SCOPE_KINDS,
  toolScope,
  visibleScopes,
} from '../../src/memory/scope.js';
import { isCaxtonError } from '../../src/shared/errors.js';

/** The error a call throws: its code, message and details. */
function thrown(f: () => unknown): { code: string; message: string; details: unknown } {
  try {
    f();
  } catch (e) {
    if (!isCaxtonError(e)) throw e;
    return { code: e.code, message: e.message, details: e.details };
  }
  throw new Error('expected a CaxtonError, nothing was thrown');
}

describe('memory scopes', () => {
  it('keys an agent scope by the lower-cased name', () => {
    expect(agentScope('Planner')).toBe('agent:planner');
    expect(SCOPE_KINDS).toEqual(['agent', 'workspace', 'global']);
  });

  it('an agent sees its own scope, the workspace and global, in that order', () => {
    expect(visibleScopes('Bob')).toEqual(['agent:bob', 'workspace', 'global']);
  });

  describe('parseScope (trusted callers)', () => {
    it('passes workspace and global through', () => {
      expect(parseScope('workspace')).toBe('workspace');
      expect(parseScope('global')).toBe('global');
    });

    it('reads "agent" and "agent-only" as the given agent, and agent:NAME as that agent', () => {
      expect(parseScope('agent', { agent: 'Alice' })).toBe('agent:alice');
      expect(parseScope('agent-only', { agent: 'alice' })).toBe('agent:alice');
      expect(parseScope('agent:Some.Agent_1-x')).toBe('agent:some.agent_1-x');
      expect(parseScope(`agent:${'a'.repeat(128)}`)).toBe(`agent:${'a'.repeat(128)}`);
    });

    it('refuses a non-string or empty scope, naming the field', () => {
      for (const v of [undefined, null, 3, {}, '']) {
        const e = thrown(() => parseScope(v, { field: 'items[2].scope' }));
        expect(e.code).toBe('invalid_request');
        expect(e.message).toBe('"items[2].scope" must be one of "agent", "workspace", "global" or "agent:NAME"');
        expect(e.details).toEqual({ field: 'items[2].scope' });
      }
      expect(thrown(() => parseScope('')).message).toContain('"scope" must be one of');
    });

    it('refuses "agent" without an agent', () => {
      for (const v of ['agent', 'agent-only']) {
        const e = thrown(() => parseScope(v, { field: 'f' }));
        expect(e.code).toBe('invalid_request');
        expect(e.message).toBe('"f" is "agent" but no agent is named: use "agent:NAME" or give the agent');
        expect(e.details).toEqual({ field: 'f' });
      }
    });

    it('refuses an agent:NAME whose name is not an agent name', () => {
      for (const name of ['', '-lead', '.x', 'a b', 'a/b', `a${'b'.repeat(128)}`, 'x\n']) {
        const e = thrown(() => parseScope(`agent:${name}`, { field: 'scope_in' }));
        expect(e.code).toBe('invalid_request');
        expect(e.message).toBe(`"scope_in": "${name}" is not a valid agent name`);
        expect(e.details).toEqual({ field: 'scope_in' });
      }
    });

    it('refuses anything else, naming the value and the field', () => {
      for (const v of ['Workspace', 'agents:x', 'team', ' global']) {
        const e = thrown(() => parseScope(v));
        expect(e.code).toBe('invalid_request');
        expect(e.message).toBe(
          `unknown scope "${v}" in "scope": expected "agent", "workspace", "global" or "agent:NAME"`,
        );
        expect(e.details).toEqual({ field: 'scope', value: v });
      }
    });
  });

  describe('toolScope (what a model asks for)', () => {
    it('uses the fallback when the model names no scope', () => {
      expect(toolScope(undefined, 'Bob', 'workspace')).toBe('workspace');
      expect(toolScope(null, 'Bob', 'agent')).toBe('agent:bob');
      expect(toolScope(undefined, 'Bob', 'global')).toBe('global');
    });

    it("maps agent and agent-only to the caller's own scope", () => {
      expect(toolScope('agent', 'Bob', 'global')).toBe('agent:bob');
      expect(toolScope('agent-only', 'Bob', 'global')).toBe('agent:bob');
      expect(toolScope('workspace', 'Bob', 'agent')).toBe('workspace');
      expect(toolScope('global', 'Bob', 'agent')).toBe('global');
    });

    it("never reaches another agent's scope", () => {
      for (const v of ['agent:alice', 'Agent', 3, '']) {
        const e = thrown(() => toolScope(v, 'Bob', 'agent'));
        expect(e.code).toBe('invalid_request');
        expect(e.message).toBe(
          `unknown scope ${JSON.stringify(v)}: use "agent" (your private memory), "workspace" or "global"`,
        );
        expect(e.details).toEqual({ field: 'scope' });
      }
    });
  });

  describe("a caller's memory scopes (one rule for REST and MCP)", () => {
    const limited = { id: 'key:dev', scope: { memory: ['workspace', 'agent:team-*'] } };

    it('lets through no caller, a caller without limits, and an allowed scope', () => {
      expect(() => checkMemoryScope(undefined, 'global')).not.toThrow();
      expect(() => checkMemoryScope({ id: 'key:all', scope: {} }, 'global')).not.toThrow();
      expect(() => checkMemoryScope(limited, 'workspace')).not.toThrow();
      expect(() => checkMemoryScope(limited, 'agent:team-a')).not.toThrow();
    });

    it('refuses another scope, naming it, and a request for every scope', () => {
      expect(thrown(() => checkMemoryScope(limited, 'global'))).toMatchObject({
        code: 'forbidden',
        details: { reason: 'memory_scope', scope: 'global' },
      });
      expect(thrown(() => checkMemoryScope(limited, 'global')).message).toContain('"global"');
      expect(thrown(() => checkMemoryScope(limited, undefined))).toMatchObject({
        code: 'forbidden',
        details: { reason: 'memory_scope' },
      });
    });

    it('keeps the allowed ones of a list', () => {
      expect(permittedScopes(limited, visibleScopes('team-a'))).toEqual(['agent:team-a', 'workspace']);
      expect(permittedScopes(undefined, ['global'])).toEqual(['global']);
    });
  });
});
