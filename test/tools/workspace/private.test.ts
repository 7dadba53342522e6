/**
 * A workspace that holds the server's data directory (a project granted as a whole, as `caxton
 * init` grants it): no workspace tool reaches into that directory — reading, writing, listing,
 * globbing, grepping, and shell commands in the sandbox, which see it empty.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { hasSystem } from '../../helpers/system.js';
import { ctx, tempDir, tools } from './helpers.js';

const SECRET = 'SECRET-ROW-in-caxton-db';
let root: string;
let tool: ReturnType<typeof tools>;

beforeAll(() => {
  root = tempDir();
  mkdirSync(join(root, 'data'));
  writeFileSync(join(root, 'data', 'caxton.db'), `${SECRET}\n`);
  writeFileSync(join(root, 'notes.md'), 'public notes\n');
  tool = tools(
    { path: root, write: true, bash: { enabled: true, commands: ['ls', 'cat', 'grep'] } },
    [],
    [join(root, 'data')],
  );
});

describe("the server's data directory inside the workspace", () => {
  it('is refused by path to read, write, list and search in', async () => {
    for (const [name, args] of [
      ['read', { file_path: 'data/caxton.db' }],
      ['read', { file_path: join(root, 'data', '..', 'data', 'caxton.db') }],
      ['write', { file_path: 'data/new.txt', content: 'x' }],
      ['ls', { path: 'data' }],
      ['grep', { pattern: 'SECRET', path: 'data' }],
    ] as const) {
      const r = await tool(name).invoke({ ...args }, ctx());
      expect(r.is_error, `${name} ${JSON.stringify(args)}: ${r.content}`).toBe(true);
      expect(r.content).toContain("server's data directory");
    }
  });

  it('is left out of glob, grep and ls of the whole workspace', async () => {
    const glob = await tool('glob').invoke({ pattern: '**/*' }, ctx());
    expect(glob.content).toContain('notes.md');
    expect(glob.content).not.toContain('caxton.db');
    const grep = await tool('grep').invoke({ pattern: 'SECRET', output_mode: 'content' }, ctx());
    expect(grep.content).not.toContain(SECRET);
    const ls = await tool('ls').invoke({}, ctx());
    expect(ls.content).toContain('notes.md');
    expect(ls.content).not.toContain('caxton.db');
  });

  it.skipIf(!hasSystem('bwrap'))('is empty to shell commands in the sandbox', async () => {
    const r = await tool('bash').invoke({ command: 'ls data; cat data/caxton.db; grep -r SECRET .' }, ctx());
    expect(r.content).not.toContain(SECRET);
    expect(r.content).toContain('No such file');
  });
});
