import { describe, expect, it } from 'vitest';
import { CLAUDE_TOOL_MAP, mapClaudeTool, parseAgent } from '../../src/agents/index.js';

function tools(list: string) {
  const r = parseAgent(`---\nname: t\ncapabilities: [x]\ntools: ${list}\n---\nPrompt\n`, { format: 'markdown' });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.definition;
}

describe('Claude Code tool mapping', () => {
  it('maps Read/Write/Edit to a single filesystem tool', () => {
    const d = tools('Read, Write, Edit');
    expect(d.tools).toEqual(['filesystem']);
    expect(d.metadata.claude_tools).toEqual(['Read', 'Write', 'Edit']);
  });

  it('maps WebFetch to http_client, WebSearch to web_search, Bash to shell, Task to send_message', () => {
    expect(tools('WebFetch').tools).toEqual(['http_client']);
    expect(tools('WebSearch, Bash, Task').tools).toEqual(['web_search', 'shell', 'send_message']);
  });

  it('maps mcp__server__tool to server.tool and mcp__server to server.*', () => {
    expect(tools('mcp__github__create_issue, mcp__slack').tools).toEqual(['github.create_issue', 'slack.*']);
    expect(mapClaudeTool('mcp__my_server__list_files')).toBe('my_server.list_files');
    expect(mapClaudeTool('mcp__postgres')).toBe('postgres.*');
  });

  it('drops TodoWrite and records it in metadata', () => {
    const d = tools('Read, TodoWrite, WebFetch');
    expect(d.tools).toEqual(['filesystem', 'http_client']);
    expect(d.tools).not.toContain('TodoWrite');
    expect(d.metadata.claude_tools_dropped).toEqual(['TodoWrite']);
    expect(d.metadata.claude_tools).toEqual(['Read', 'TodoWrite', 'WebFetch']);
  });

  it('keeps names it does not know unchanged', () => {
    expect(tools('csv_parser, http_client').tools).toEqual(['csv_parser', 'http_client']);
  });

  it('maps every tool in the table to a valid Caxton tool name or null', () => {
    for (const [claude, caxton] of Object.entries(CLAUDE_TOOL_MAP)) {
      expect(mapClaudeTool(claude)).toBe(caxton);
      if (caxton !== null) expect(caxton).toMatch(/^[a-z_]+$/);
    }
  });
});
