import { describe, expect, it } from 'vitest';
import { CLAUDE_TOOL_MAP, mapClaudeTool, parseAgent } from '../../src/agents/index.js';

function tools(list: string) {
  const r = parseAgent(`---\nname: t\ncapabilities: [x]\ntools: ${list}\n---\nPrompt\n`, { format: 'markdown' });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.definition;
}

describe('Claude Code tool mapping', () => {
  it('maps Read/Write/Edit to the workspace tools of the same contract', () => {
    const d = tools('Read, Write, Edit, MultiEdit, Glob, Grep, LS');
    expect(d.tools).toEqual([
      'workspace.read',
      'workspace.write',
      'workspace.edit',
      'workspace.multi_edit',
      'workspace.glob',
      'workspace.grep',
      'workspace.ls',
    ]);
    expect(tools('Read, Write, Edit').metadata.claude_tools).toEqual(['Read', 'Write', 'Edit']);
  });

  it('refuses NotebookEdit and the background-shell tools by name, with a warning', () => {
    const r = parseAgent(`---\nname: t\ndescription: d\ntools: Read, NotebookEdit, KillShell\n---\nPrompt\n`, {
      format: 'markdown',
    });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.definition.tools).toEqual(['workspace.read']);
    const warned = r.warnings.filter((w) => w.code === 'unsupported_tool').map((w) => w.message);
    expect(warned).toHaveLength(2);
    expect(warned[0]).toContain('"NotebookEdit" is not offered');
    expect(warned[1]).toContain('background shells are not supported');
  });

  it('maps WebFetch to web.fetch, WebSearch to web.search, Bash to workspace.bash, Task to send_message', () => {
    expect(tools('WebFetch').tools).toEqual(['web.fetch']);
    expect(tools('WebSearch, Bash, Task').tools).toEqual(['web.search', 'workspace.bash', 'send_message']);
  });

  it('maps mcp__server__tool to server.tool and mcp__server to server.*', () => {
    expect(tools('mcp__github__create_issue, mcp__slack').tools).toEqual(['github.create_issue', 'slack.*']);
    expect(mapClaudeTool('mcp__my_server__list_files')).toBe('my_server.list_files');
    expect(mapClaudeTool('mcp__postgres')).toBe('postgres.*');
  });

  it('maps TodoWrite to todo.write, drops TodoRead and records it in metadata', () => {
    const d = tools('Read, TodoWrite, TodoRead, WebFetch');
    expect(d.tools).toEqual(['workspace.read', 'todo.write', 'web.fetch']);
    expect(d.metadata.claude_tools_dropped).toEqual(['TodoRead']);
    expect(d.metadata.claude_tools).toEqual(['Read', 'TodoWrite', 'TodoRead', 'WebFetch']);
  });

  it('keeps names it does not know unchanged', () => {
    expect(tools('csv_parser, http_client').tools).toEqual(['csv_parser', 'http_client']);
  });

  it('maps every tool in the table to a valid Caxton tool name or null', () => {
    for (const [claude, caxton] of Object.entries(CLAUDE_TOOL_MAP)) {
      expect(mapClaudeTool(claude)).toBe(caxton);
      if (caxton !== null) expect(caxton).toMatch(/^[a-z_]+(\.[a-z_]+)?$/);
    }
  });
});
