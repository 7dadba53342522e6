/**
 * The workspace file tools against real temp dirs: Claude Code's contracts (numbered Read lines,
 * Edit's uniqueness and replace_all, MultiEdit's all or nothing on disk, Glob, LS), the grants
 * (none; read-only) refused naming the setting, and every way out of the workspace refused.
 */
import { mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ToolAuditRecord } from '../../../src/audit/index.js';
import { ctx, tempDir, tools } from './helpers.js';

let root: string;
let outside: string;
beforeEach(() => {
  root = tempDir();
  outside = tempDir('caxton-outside-');
  writeFileSync(join(outside, 'secret.txt'), 'TOP SECRET\n');
});

describe('grants', () => {
  it('without [workspace] path every tool answers an error naming the setting', async () => {
    const t = tools(undefined);
    for (const [name, args] of [
      ['read', { file_path: 'a' }],
      ['write', { file_path: 'a', content: 'x' }],
      ['edit', { file_path: 'a', old_string: 'a', new_string: 'b' }],
      ['multi_edit', { file_path: 'a', edits: [{ old_string: 'a', new_string: 'b' }] }],
      ['glob', { pattern: '*' }],
      ['grep', { pattern: 'x' }],
      ['ls', { path: '.' }],
      ['bash', { command: 'ls' }],
    ] as const) {
      const r = await t(name).invoke({ ...args }, ctx());
      expect(r.is_error, name).toBe(true);
      expect(r.content, name).toContain('[workspace] path');
    }
  });

  it('without write = true, write, edit and multi_edit are refused naming [workspace] write, and the file is unchanged', async () => {
    writeFileSync(join(root, 'a.txt'), 'one\n');
    const t = tools({ path: root });
    for (const [name, args] of [
      ['write', { file_path: 'a.txt', content: 'x' }],
      ['edit', { file_path: 'a.txt', old_string: 'one', new_string: 'two' }],
      ['multi_edit', { file_path: 'a.txt', edits: [{ old_string: 'one', new_string: 'two' }] }],
    ] as const) {
      const r = await t(name).invoke({ ...args }, ctx());
      expect(r.is_error).toBe(true);
      expect(r.content).toContain('[workspace] write = true');
    }
    expect(readFileSync(join(root, 'a.txt'), 'utf8')).toBe('one\n');
    expect((await t('read').invoke({ file_path: 'a.txt' }, ctx())).content).toBe('     1\tone\n');
  });

  it('the config schema names the field of a bad grant', async () => {
    const { serverConfigSchema } = await import('../../../src/config/index.js');
    const r = serverConfigSchema.safeParse({ workspace: { path: root, write: 'yes', bash: { commands: ['rm -rf'] } } });
    expect(r.success).toBe(false);
    const paths = r.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toContain('workspace.write');
    expect(paths).toContain('workspace.bash.commands.0');
  });
});

describe('escapes', () => {
  it('refuses .., an absolute path outside, and symlinks leading out (reading and writing)', async () => {
    symlinkSync(join(outside, 'secret.txt'), join(root, 'link.txt'));
    symlinkSync(outside, join(root, 'dirlink'));
    const t = tools({ path: root, write: true });
    const tries = [
      { file_path: '../' + outside.split('/').pop() + '/secret.txt' },
      { file_path: join(outside, 'secret.txt') },
      { file_path: 'link.txt' },
      { file_path: 'dirlink/secret.txt' },
      { file_path: 'sub/../../x' },
    ];
    for (const a of tries) {
      const r = await t('read').invoke(a, ctx());
      expect(r.is_error, a.file_path).toBe(true);
      expect(r.content).toMatch(/outside the workspace/);
      expect(r.content).not.toContain('TOP SECRET');
    }
    const w = await t('write').invoke({ file_path: 'dirlink/new.txt', content: 'x' }, ctx());
    expect(w.is_error).toBe(true);
    const g = await t('grep').invoke({ pattern: 'TOP', path: 'dirlink' }, ctx());
    expect(g.is_error).toBe(true);
    // Walks do not follow links out either.
    const all = await t('grep').invoke({ pattern: 'TOP SECRET' }, ctx());
    expect(all.content).toBe('No files found');
    expect(readFileSync(join(outside, 'secret.txt'), 'utf8')).toBe('TOP SECRET\n');
  });

  it('accepts absolute paths inside the workspace', async () => {
    writeFileSync(join(root, 'in.txt'), 'inside\n');
    const r = await tools({ path: root })('read').invoke({ file_path: join(root, 'in.txt') }, ctx());
    expect(r).toEqual({ content: '     1\tinside\n' });
  });
});

describe('workspace.read', () => {
  it('numbers lines as cat -n, honours offset and limit, cuts long lines, defaults to 2000 lines', async () => {
    const lines = Array.from({ length: 2500 }, (_, i) => `line ${i + 1}`);
    lines[2] = 'x'.repeat(2500);
    writeFileSync(join(root, 'big.txt'), lines.join('\n') + '\n');
    const read = tools({ path: root })('read');
    const all = (await read.invoke({ file_path: 'big.txt' }, ctx())).content.split('\n').filter(Boolean);
    expect(all).toHaveLength(2000);
    expect(all[0]).toBe('     1\tline 1');
    expect(all[1999]).toBe('  2000\tline 2000');
    expect(all[2]).toContain('[line cut at 2000 characters]');
    expect(all[2]!.length).toBeLessThan(2100);
    const part = await read.invoke({ file_path: 'big.txt', offset: 2400, limit: 3 }, ctx());
    expect(part.content).toBe('  2400\tline 2400\n  2401\tline 2401\n  2402\tline 2402\n');
  });

  it('says so for an empty file, an offset past the end, a directory and a binary file', async () => {
    writeFileSync(join(root, 'empty.txt'), '');
    writeFileSync(join(root, 'two.txt'), 'a\nb\n');
    writeFileSync(join(root, 'bin'), Buffer.from([1, 0, 2, 3]));
    mkdirSync(join(root, 'd'));
    const read = tools({ path: root })('read');
    expect((await read.invoke({ file_path: 'empty.txt' }, ctx())).content).toContain('contents are empty');
    expect((await read.invoke({ file_path: 'two.txt', offset: 10 }, ctx())).content).toContain('The file has 2 lines');
    expect((await read.invoke({ file_path: 'd' }, ctx())).is_error).toBe(true);
    expect((await read.invoke({ file_path: 'bin' }, ctx())).content).toContain('binary');
    expect((await read.invoke({ file_path: 'missing.txt' }, ctx())).is_error).toBe(true);
  });
});

describe('workspace.write, .edit, .multi_edit', () => {
  it('write creates directories and replaces files', async () => {
    const t = tools({ path: root, write: true });
    expect((await t('write').invoke({ file_path: 'a/b/c.txt', content: 'hello' }, ctx())).content).toBe(
      `File created successfully at: ${join(root, 'a/b/c.txt')}`,
    );
    expect((await t('write').invoke({ file_path: 'a/b/c.txt', content: 'again' }, ctx())).content).toContain(
      'has been updated successfully',
    );
    expect(readFileSync(join(root, 'a/b/c.txt'), 'utf8')).toBe('again');
  });

  it('edit replaces one exact occurrence; refuses none, several without replace_all, and no change; replace_all replaces every one', async () => {
    writeFileSync(join(root, 'f.ts'), 'let a = 1;\nlet b = 1;\nconst c = 2;\n');
    const edit = tools({ path: root, write: true })('edit');
    const notFound = await edit.invoke({ file_path: 'f.ts', old_string: 'nope', new_string: 'x' }, ctx());
    expect(notFound).toMatchObject({ is_error: true });
    expect(notFound.content).toContain('String to replace not found in file.');
    const several = await edit.invoke({ file_path: 'f.ts', old_string: ' = 1;', new_string: ' = 3;' }, ctx());
    expect(several.is_error).toBe(true);
    expect(several.content).toContain('Found 2 matches of the string to replace, but replace_all is false');
    const same = await edit.invoke({ file_path: 'f.ts', old_string: 'a', new_string: 'a' }, ctx());
    expect(same.content).toContain('No changes to make');
    expect(readFileSync(join(root, 'f.ts'), 'utf8')).toBe('let a = 1;\nlet b = 1;\nconst c = 2;\n');
    expect(
      (await edit.invoke({ file_path: 'f.ts', old_string: 'const c = 2;', new_string: 'const c = $&;' }, ctx()))
        .is_error,
    ).toBeUndefined();
    expect(
      (await edit.invoke({ file_path: 'f.ts', old_string: ' = 1;', new_string: ' = 3;', replace_all: true }, ctx()))
        .content,
    ).toContain('updated successfully');
    expect(readFileSync(join(root, 'f.ts'), 'utf8')).toBe('let a = 3;\nlet b = 3;\nconst c = $&;\n');
  });

  it('multi_edit applies edits in order, and leaves the file untouched on disk when any edit fails', async () => {
    const file = join(root, 'm.txt');
    writeFileSync(file, 'alpha beta gamma\n');
    const multi = tools({ path: root, write: true })('multi_edit');
    const bad = await multi.invoke(
      {
        file_path: 'm.txt',
        edits: [
          { old_string: 'alpha', new_string: 'ALPHA' },
          { old_string: 'missing', new_string: 'x' },
        ],
      },
      ctx(),
    );
    expect(bad.is_error).toBe(true);
    expect(bad.content).toContain('edit 2 of 2');
    expect(readFileSync(file, 'utf8')).toBe('alpha beta gamma\n');
    const ok = await multi.invoke(
      {
        file_path: 'm.txt',
        edits: [
          { old_string: 'alpha', new_string: 'beta' },
          { old_string: 'beta', new_string: 'delta', replace_all: true },
        ],
      },
      ctx(),
    );
    expect(ok.content).toBe(`Applied 2 edits to ${file}`);
    expect(readFileSync(file, 'utf8')).toBe('delta delta gamma\n');
  });
});

describe('workspace.glob and workspace.ls', () => {
  it('glob matches **, braces and a path; newest first; "No files found"', async () => {
    mkdirSync(join(root, 'src/deep'), { recursive: true });
    writeFileSync(join(root, 'src/a.ts'), '');
    writeFileSync(join(root, 'src/deep/b.tsx'), '');
    writeFileSync(join(root, 'src/c.js'), '');
    writeFileSync(join(root, 'top.ts'), '');
    utimesSync(join(root, 'src/a.ts'), new Date(1000), new Date(1000));
    utimesSync(join(root, 'top.ts'), new Date(3000), new Date(3000));
    utimesSync(join(root, 'src/deep/b.tsx'), new Date(2000), new Date(2000));
    const glob = tools({ path: root })('glob');
    expect((await glob.invoke({ pattern: '**/*.{ts,tsx}' }, ctx())).content.split('\n')).toEqual([
      join(root, 'top.ts'),
      join(root, 'src/deep/b.tsx'),
      join(root, 'src/a.ts'),
    ]);
    expect((await glob.invoke({ pattern: '*.js', path: 'src' }, ctx())).content).toBe(join(root, 'src/c.js'));
    expect((await glob.invoke({ pattern: '*.py' }, ctx())).content).toBe('No files found');
    // A pathological pattern is matched without backtracking blow-up.
    writeFileSync(join(root, 'a'.repeat(200)), '');
    const t0 = Date.now();
    await glob.invoke({ pattern: '*a*a*a*a*a*a*a*a*a*a*a*a*b' }, ctx());
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('ls lists a tree, skips hidden entries and the ignore globs', async () => {
    mkdirSync(join(root, 'src'));
    mkdirSync(join(root, '.git'));
    writeFileSync(join(root, 'src/a.ts'), '');
    writeFileSync(join(root, 'src/a.log'), '');
    writeFileSync(join(root, 'README.md'), '');
    const r = await tools({ path: root })('ls').invoke({ path: root, ignore: ['*.log'] }, ctx());
    expect(r.content).toBe([`- ${root}/`, '  - README.md', '  - src/', '    - a.ts'].join('\n'));
  });
});

describe('audit', () => {
  it('writes one record per call, refusals included, under server "workspace"', async () => {
    writeFileSync(join(root, 'a.txt'), 'x\n');
    const records: ToolAuditRecord[] = [];
    const t = tools({ path: root }, records);
    await t('read').invoke({ file_path: 'a.txt' }, ctx({ conversation_id: 'conv-1', principal: 'key:abc' }));
    await t('read').invoke({ file_path: '/etc/passwd' }, ctx());
    await t('write').invoke({ file_path: 'a.txt', content: 'y' }, ctx());
    expect(records.map((r) => [r.server, r.tool, r.outcome])).toEqual([
      ['workspace', 'workspace.read', 'ok'],
      ['workspace', 'workspace.read', 'denied'],
      ['workspace', 'workspace.write', 'denied'],
    ]);
    expect(records[0]).toMatchObject({
      agent: 'tester',
      execution_id: 'exec-1',
      conversation_id: 'conv-1',
      principal: 'key:abc',
      output_bytes: '     1\tx\n'.length,
    });
    expect(records[0]!.args_digest).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("Claude Code's words where the model reads them", () => {
  it('Read and Edit of a missing file: "File does not exist."', async () => {
    const t = tools({ path: root, write: true });
    expect(await t('read').invoke({ file_path: 'nope.txt' }, ctx())).toEqual({
      content: 'File does not exist.',
      is_error: true,
    });
    const e = await t('edit').invoke({ file_path: 'nope.txt', old_string: 'a', new_string: 'b' }, ctx());
    expect(e).toMatchObject({ content: 'File does not exist.', is_error: true });
  });

  it('Glob and LS of a directory that is not there: "Directory does not exist: PATH", as given', async () => {
    const t = tools({ path: root });
    expect(await t('glob').invoke({ pattern: '**/*.ts', path: 'nope' }, ctx())).toEqual({
      content: 'Directory does not exist: nope',
      is_error: true,
    });
    const gone = join(root, 'gone/deeper');
    expect(await t('ls').invoke({ path: gone }, ctx())).toEqual({
      content: `Directory does not exist: ${gone}`,
      is_error: true,
    });
    expect(await t('ls').invoke({ path: 'nope' }, ctx())).toEqual({
      content: 'Directory does not exist: nope',
      is_error: true,
    });
  });

  it('Write and an Edit with an empty old_string say "created" for a new file, "updated" for an existing one', async () => {
    const t = tools({ path: root, write: true });
    const made = await t('write').invoke({ file_path: 'new.txt', content: 'one\n' }, ctx());
    expect(made.content).toBe(`File created successfully at: ${join(root, 'new.txt')}`);
    const again = await t('write').invoke({ file_path: 'new.txt', content: 'two\n' }, ctx());
    expect(again.content).toBe(`The file ${join(root, 'new.txt')} has been updated successfully.`);
    const edited = await t('edit').invoke({ file_path: 'fresh.txt', old_string: '', new_string: 'hi\n' }, ctx());
    expect(edited.content).toBe(`File created successfully at: ${join(root, 'fresh.txt')}`);
    expect(readFileSync(join(root, 'fresh.txt'), 'utf8')).toBe('hi\n');
  });

  it('LS lists symbolic links by name (never followed), a link out of the workspace too', async () => {
    mkdirSync(join(root, 'src'));
    writeFileSync(join(root, 'src/a.ts'), '');
    symlinkSync(join(root, 'src/a.ts'), join(root, 'current.ts'));
    symlinkSync(outside, join(root, 'elsewhere'));
    const r = await tools({ path: root })('ls').invoke({ path: '.' }, ctx());
    expect(r.content).toBe([`- ${root}/`, '  - current.ts', '  - elsewhere', '  - src/', '    - a.ts'].join('\n'));
    expect(r.content).not.toContain('secret');
  });

  it("LS past 1,000 entries says so first, in Claude Code's sentence", async () => {
    for (let i = 0; i < 1005; i++) writeFileSync(join(root, `f${String(i).padStart(4, '0')}.txt`), '');
    const r = await tools({ path: root })('ls').invoke({ path: '.' }, ctx());
    const lines = r.content.split('\n');
    expect(lines[0]).toBe(
      'There are more than 1000 files in the repository. Use the LS tool (passing a specific path), Bash tool, and other tools to explore nested directories. The first 1000 files and directories are included below:',
    );
    expect(lines[1]).toBe('');
    expect(lines[2]).toBe(`- ${root}/`);
    expect(lines.filter((l) => l.startsWith('  - f'))).toHaveLength(1000);
  });
});
