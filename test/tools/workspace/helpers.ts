import { mkdtempSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverConfigSchema } from '../../../src/config/index.js';
import type { Tool, ToolContext } from '../../../src/tools/index.js';
import type { ToolAuditRecord } from '../../../src/audit/index.js';
import { workspaceTools } from '../../../src/tools/workspace/index.js';

export function tempDir(prefix = 'caxton-ws-'): string {
  return realpathSync(mkdtempSync(join(tmpdir(), prefix)));
}

export function ctx(overrides: Partial<ToolContext> = {}): ToolContext {
  return {
    agent: 'tester',
    execution_id: 'exec-1',
    deadline: Date.now() + 30_000,
    signal: new AbortController().signal,
    ...overrides,
  };
}

/** The workspace tools over `[workspace]` as caxton.toml would give it (validated by the real schema), by short name. */
export function tools(
  workspace: Record<string, unknown> | undefined,
  records: ToolAuditRecord[] = [],
  privateDirs: string[] = [],
) {
  const config = serverConfigSchema.parse(workspace === undefined ? {} : { workspace });
  const list = workspaceTools(config.workspace, { record: (r) => records.push(r) }, privateDirs);
  const by = new Map(list.map((t) => [t.name.replace(/^workspace\./, ''), t]));
  return (name: string): Tool => {
    const t = by.get(name);
    if (!t) throw new Error(`no tool ${name}`);
    return t;
  };
}
