import { describe, expect, it } from 'vitest';
import type { AgentDefinition } from '../../src/agents/index.js';
import { renderTemplate } from '../../src/execution/prompt-template.js';

const def = {
  name: 'writer',
  description: 'writes',
  parameters: { style: 'terse', n: 3 },
} as unknown as AgentDefinition;

describe('renderTemplate', () => {
  it('fills each placeholder, request parameters over the agent’s, unknown ones empty', () => {
    const t =
      'Task for {{ agent.name }} ({{agent.description}}): {{request}} | {{parameters.style}} {{parameters.n}} [{{nope}}]';
    expect(renderTemplate(t, def, { request: 'go', parameters: { style: 'long' } })).toBe(
      'Task for writer (writes): go | long 3 []',
    );
  });

  it('inserts values as written: no replacement patterns, nothing from Object.prototype', () => {
    expect(renderTemplate('{{request}}', def, { request: "$& $1 $$ $'" })).toBe("$& $1 $$ $'");
    expect(renderTemplate('[{{parameters.toString}}][{{parameters.__proto__}}]', def, { request: 'x' })).toBe('[][]');
  });

  it('collapses runs of blank lines and trims the ends, in what the values bring too', () => {
    expect(renderTemplate('\n\n{{context}}\n\n\n\n{{request}}  ', def, { request: 'r', context: 'a\n\n\n\nb' })).toBe(
      'a\n\nb\n\nr',
    );
    expect(renderTemplate('{{context}}', def, { request: 'r', context: { k: 1 } })).toBe('{\n  "k": 1\n}');
  });

  it('renders the same template again for another request with that request’s values', () => {
    const t = 'A {{request}} B {{request}} C';
    expect(renderTemplate(t, def, { request: 'one' })).toBe('A one B one C');
    expect(renderTemplate(t, def, { request: 'two' })).toBe('A two B two C');
    expect(renderTemplate('no placeholders', def, { request: 'x' })).toBe('no placeholders');
  });
});
